/**
 * Child process of the large-payload test. Phase 1 streams SIZE bytes of fresh 256 KiB buffers
 * (as a socket would deliver them) into a checksum only; phase 2 streams the same bytes into the
 * log as one record; phase 3 streams the record back out. Prints the peak RSS of each phase, so
 * the parent can tell the log's own memory from the garbage any producer of 2 GiB leaves behind.
 * Runs as plain JavaScript (bundled by the test), so the loader's memory is not counted.
 */
import { crc32 } from 'node:zlib';
import { Log } from '../../src/log/index.js';

const [dir, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg);
const CHUNK = 256 * 1024;

async function* source(): AsyncGenerator<Buffer> {
  for (let sent = 0; sent < size; sent += CHUNK) {
    const piece = Buffer.alloc(Math.min(CHUNK, size - sent), sent % 251);
    piece.writeDoubleLE(sent, 0);
    yield piece;
  }
}

async function checksum(stream: AsyncIterable<Uint8Array>): Promise<{ crc: number; bytes: number }> {
  let crc = 0;
  let bytes = 0;
  for await (const piece of stream) {
    crc = crc32(piece, crc);
    bytes += piece.byteLength;
  }
  return { crc, bytes };
}

let peak = 0;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
}, 10);
async function phase<T>(run: () => Promise<T>): Promise<{ result: T; peakRssMb: number }> {
  peak = process.memoryUsage().rss;
  const result = await run();
  peak = Math.max(peak, process.memoryUsage().rss);
  return { result, peakRssMb: Math.round(peak / 1048576) };
}

const producer = await phase(() => checksum(source()));
const log = await Log.open(dir!);
const append = await phase(() => log.append([{ payload: source(), meta: Buffer.from('big') }]));
const [record] = await log.read({ fromSeq: append.result.firstSeq });
const readBack = await phase(() => checksum(log.openPayload(record!)));
await log.close();
clearInterval(sampler);
process.stdout.write(
  `${JSON.stringify({
    inCrc: producer.result.crc,
    outCrc: readBack.result.crc,
    bytes: readBack.result.bytes,
    payloadBytes: record!.payloadBytes,
    producerPeakRssMb: producer.peakRssMb,
    appendPeakRssMb: append.peakRssMb,
    readPeakRssMb: readBack.peakRssMb,
  })}\n`,
);
