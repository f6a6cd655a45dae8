// HTTP receiver for bench/forward.ts, run in its own process: accepts NDJSON batches, counts
// lines, answers 200. Reports its port to the parent over IPC.
import { createServer } from 'node:http';

let lines = 0;
const server = createServer((req, res) => {
  req.on('data', (chunk) => {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
  });
  req.on('end', () => res.writeHead(200).end(String(lines)));
});
server.listen(0, '127.0.0.1', () => process.send?.(server.address().port));
