/**
 * Child process of the large-payload test, run twice on the same log directory, so that each side
 * is measured in a process of its own (RSS rarely shrinks: a reader sharing the writer's process
 * would inherit the writer's peak).
 * - `write DIR SIZE`: phase 1 streams SIZE bytes of fresh 64 KiB buffers (what a socket delivers
 *   per read) into a checksum only; phase 2 streams the same bytes into the log as one record.
 * - `read DIR`: streams the record back out of a freshly opened log.
 * Prints the peak RSS of each phase, so the parent can tell the log's own memory from the garbage
 * any producer of 2 GiB leaves behind. Runs as plain JavaScript (bundled by the test), so the
 * loader's memory is not counted, and with the V8 settings of the gateway process.
 */
import { crc32 } from 'node:zlib';
import { tuneYoungGenerationForStreaming } from '../../src/cli/v8-tuning.js';
import { Log } from '../../src/log/index.js';

// As `waystation start` runs: on Node 24 the garbage of the producer alone would otherwise
// reach ~130 MB before V8 collects it (src/cli/v8-tuning.ts).
tuneYoungGenerationForStreaming();

const [mode, dir, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg);
const CHUNK = 64 * 1024;

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

const log = await Log.open(dir!);
let report: Record<string, number>;
if (mode === 'write') {
  const producer = await phase(() => checksum(source()));
  const append = await phase(() => log.append([{ payload: source(), meta: Buffer.from('big') }]));
  report = {
    inCrc: producer.result.crc,
    producerPeakRssMb: producer.peakRssMb,
    appendPeakRssMb: append.peakRssMb,
  };
} else {
  const [record] = await log.read({ fromSeq: log.firstSeq });
  const readBack = await phase(() => checksum(log.openPayload(record!)));
  report = {
    outCrc: readBack.result.crc,
    bytes: readBack.result.bytes,
    payloadBytes: record!.payloadBytes,
    readPeakRssMb: readBack.peakRssMb,
  };
}
await log.close();
clearInterval(sampler);
process.stdout.write(`${JSON.stringify(report)}\n`);
