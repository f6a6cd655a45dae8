// HTTP receiver for bench/forward.ts, run in its own process: accepts NDJSON batches (decoding
// Content-Encoding gzip and br as they stream in, as a real receiver must), counts lines and the
// body bytes that crossed the wire, answers 200. Reports its port to the parent over IPC and
// answers the message 'stats' with { requests, wireBytes, decodedBytes, lines }.
import { createServer } from 'node:http';
import { createBrotliDecompress, createGunzip } from 'node:zlib';

const stats = { requests: 0, wireBytes: 0, decodedBytes: 0, lines: 0 };
const server = createServer((req, res) => {
  stats.requests++;
  req.on('data', (chunk) => {
    stats.wireBytes += chunk.length;
  });
  const encoding = req.headers['content-encoding'];
  const body =
    encoding === 'gzip'
      ? req.pipe(createGunzip())
      : encoding === 'br'
        ? req.pipe(createBrotliDecompress())
        : req;
  body.on('data', (chunk) => {
    stats.decodedBytes += chunk.length;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) stats.lines++;
  });
  body.on('error', () => res.writeHead(400).end('bad encoding'));
  body.on('end', () => res.writeHead(200).end(String(stats.lines)));
});
process.on('message', (m) => {
  if (m === 'stats') process.send?.({ stats });
});
server.listen(0, '127.0.0.1', () => process.send?.(server.address().port));
