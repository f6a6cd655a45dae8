/**
 * npm run bench:forward — how fast a stored backlog drains.
 *
 * Builds a backlog of N messages (default 1 000 000 × 1 KiB) behind a held route, then in one
 * run on the same disk measures:
 *   1. baseline: reading the same backlog straight from the log (no delivery engine);
 *   2. draining it to a `null` target (batches of 1000, fifo);
 *   3. draining it to a local HTTP receiver (another process) in batch mode (NDJSON), three times
 *      from copies of one backlog: `compression: none`, `gzip` and `br` (issue 12); the receiver
 *      decodes what it gets and counts the body bytes on the wire.
 * Each drain runs in a fresh process on the built gateway (bench/drain-child.mjs: `npm run build`
 * first), so its peak RSS is a restarted gateway's, not this process's with two backlogs built.
 * Prints a table, peak RSS, and last a line `RESULT {json}`.
 *
 * Flags: --messages N, --payload BYTES, --data repeat|random (default repeat: every payload the
 * same letter, as compressible as it gets; random: 1000 distinct random payloads, base64 in the
 * NDJSON, the least), --dedup-window D (storage.dedupWindow, default the gateway's: 2m),
 * --dir DIR (default .bench-data/forward).
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Waystation } from '../src/index.js';
import { Store } from '../src/store/store.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const MESSAGES = Number(args.get('messages') ?? 1_000_000);
const PAYLOAD = Number(args.get('payload') ?? 1024);
const DATA = args.get('data') ?? 'repeat';
// A gateway that starts rereads the messages of the last storage.dedupWindow (2 min by default)
// for their idempotency keys; the backlog here is seconds old, so by default every drain process
// rereads all of it first. A shorter window measures a restart after the backlog has aged.
const DEDUP_WINDOW = args.get('dedup-window');
if (DATA !== 'repeat' && DATA !== 'random') throw new Error('--data is repeat or random');
const repo = fileURLToPath(new URL('..', import.meta.url));
const root = args.get('dir') ?? join(repo, '.bench-data', 'forward');
const silent = pino({ level: 'silent' });

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);

function configFor(dataDir: string, target: Record<string, unknown>) {
  return {
    dataDir,
    storage: { fsync: 'never' as const, ...(DEDUP_WINDOW ? { dedupWindow: DEDUP_WINDOW } : {}) },
    targets: { out: target as { type: 'null' } },
    routes: {
      drain: {
        streams: ['bench'],
        target: 'out',
        batch: { maxMessages: 1000, maxBytes: '4MiB' },
        maxInFlight: 1,
      },
    },
  };
}

/** Publishes the backlog behind a held route; returns when every message is durable. */
async function buildBacklog(dataDir: string): Promise<void> {
  const ws = await Waystation.open(configFor(dataDir, { type: 'null' }), { logger: silent });
  ws.route('drain').store();
  const same = Buffer.alloc(PAYLOAD, 0x61);
  const batch = Array.from({ length: 1000 }, () => ({
    payload: DATA === 'random' ? randomBytes(PAYLOAD) : same,
  }));
  for (let sent = 0; sent < MESSAGES; sent += batch.length) {
    await ws.publishBatch('bench', batch.slice(0, Math.min(batch.length, MESSAGES - sent)));
  }
  await ws.close();
}

async function rawRead(dataDir: string): Promise<number> {
  const store = await Store.open({ dataDir, streams: ['bench'], routes: [] });
  const stream = store.stream('bench');
  const started = performance.now();
  let read = 0;
  for (let from = stream.log.firstSeq; from <= stream.log.lastSeq; ) {
    const messages = await stream.read({ fromSeq: from, maxMessages: 1000, maxBytes: 4 * 1024 * 1024 });
    read += messages.length;
    from = messages.at(-1)!.seq + 1;
  }
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  if (read !== MESSAGES) throw new Error(`raw read saw ${read} of ${MESSAGES}`);
  return MESSAGES / seconds;
}

interface Drained {
  rate: number;
  /** The draining process's peak RSS, start-up included. */
  maxRssMb: number;
}

/** Drains in a fresh process on the built gateway (bench/drain-child.mjs), as a restarted gateway would. */
async function drain(dataDir: string, target: Record<string, unknown>): Promise<Drained> {
  const child = fork(
    join(repo, 'bench', 'drain-child.mjs'),
    [JSON.stringify(configFor(dataDir, target)), String(MESSAGES)],
    // Plain node on dist/: not this process's tsx loader, which a fork would inherit.
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] },
  );
  const result = await new Promise<{ seconds: number; forwarded: number; maxRssMb: number }>(
    (resolve, reject) => {
      child.once('message', (m) => resolve(m as { seconds: number; forwarded: number; maxRssMb: number }));
      child.once('exit', (code) => reject(new Error(`the drain process exited (${code}) before reporting`)));
    },
  );
  if (result.forwarded < MESSAGES) throw new Error(`drained ${result.forwarded} of ${MESSAGES}`);
  return { rate: MESSAGES / result.seconds, maxRssMb: result.maxRssMb };
}

interface ReceiverStats {
  requests: number;
  wireBytes: number;
  decodedBytes: number;
  lines: number;
}

async function startReceiver(): Promise<{
  url: string;
  stats: () => Promise<ReceiverStats>;
  stop: () => void;
}> {
  const child = fork(join(repo, 'bench', 'ndjson-receiver.mjs'), [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve(Number(m))));
  const stats = () =>
    new Promise<ReceiverStats>((resolve) => {
      child.once('message', (m) => resolve((m as { stats: ReceiverStats }).stats));
      child.send('stats');
    });
  return { url: `http://127.0.0.1:${port}/in`, stats, stop: () => child.kill() };
}

interface HttpCase {
  compression: 'none' | 'gzip' | 'br';
  rate: number;
  maxRssMb: number;
  wireBytes: number;
  decodedBytes: number;
}

/** Drains a copy of the http backlog to a fresh receiver with the given compression. */
async function drainHttp(template: string, compression: HttpCase['compression']): Promise<HttpCase> {
  const dataDir = join(root, `http-${compression}`);
  await cp(template, dataDir, { recursive: true });
  const receiver = await startReceiver();
  const { rate, maxRssMb } = await drain(dataDir, {
    type: 'http',
    url: receiver.url,
    mode: 'batch',
    compression,
  });
  const stats = await receiver.stats();
  receiver.stop();
  await rm(dataDir, { recursive: true, force: true });
  if (stats.lines !== MESSAGES)
    throw new Error(`receiver saw ${stats.lines} of ${MESSAGES} lines (${compression})`);
  return { compression, rate, maxRssMb, wireBytes: stats.wireBytes, decodedBytes: stats.decodedBytes };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

await rm(root, { recursive: true, force: true });
const t0 = performance.now();
await buildBacklog(join(root, 'null'));
await buildBacklog(join(root, 'http'));
console.log(
  `backlog: ${fmt(MESSAGES)} x ${PAYLOAD} B messages (${DATA}), built twice in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

const raw = await rawRead(join(root, 'null'));
const nullDrain = await drain(join(root, 'null'), { type: 'null' });
const toNull = nullDrain.rate;
const http: Record<HttpCase['compression'], HttpCase> = {
  none: await drainHttp(join(root, 'http'), 'none'),
  gzip: await drainHttp(join(root, 'http'), 'gzip'),
  br: await drainHttp(join(root, 'http'), 'br'),
};
for (const c of [http.gzip, http.br])
  if (c.decodedBytes !== http.none.decodedBytes)
    throw new Error(
      `${c.compression}: the receiver decoded ${c.decodedBytes} bytes, not ${http.none.decodedBytes}`,
    );
const toHttp = http.none.rate;
clearInterval(sampler);
await rm(root, { recursive: true, force: true });

const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;
const rows: [string, number, string, string][] = [
  ['raw log read (baseline)', raw, '1.00', ''],
  ['drain to null, batch 1000', toNull, (toNull / raw).toFixed(2), ''],
  ...Object.values(http).map((c): [string, number, string, string] => [
    `drain to HTTP (NDJSON batch 1000, ${c.compression})`,
    c.rate,
    (c.rate / raw).toFixed(2),
    `${mb(c.wireBytes).padStart(10)}  ${(c.wireBytes / MESSAGES).toFixed(0).padStart(6)} B/msg  ${(c.wireBytes / http.none.wireBytes).toFixed(3)}`,
  ]),
];
console.log(
  '\ncase                                           msgs/s   vs raw read   body bytes on the wire  per msg  vs none',
);
for (const [name, rate, ratio, wire] of rows)
  console.log(`${name.padEnd(44)} ${fmt(rate).padStart(10)}   ${ratio.padStart(6)}      ${wire}`);
// Each drain ran in its own process; this one built the backlogs and did the raw read.
const peakRssMb = Math.max(nullDrain.maxRssMb, ...Object.values(http).map((c) => c.maxRssMb));
const buildPeakRssMb = Math.round(peakRss / 1048576);
console.log(
  `\npeak RSS of the draining gateway process: null ${nullDrain.maxRssMb} MB, HTTP ${Object.values(http)
    .map((c) => `${c.compression} ${c.maxRssMb} MB`)
    .join(', ')} (target < 150 MB: ${peakRssMb < 150 ? 'PASS' : 'MISS'})`,
);
console.log(
  `peak RSS of the bench process (building the backlogs, the raw read) ${buildPeakRssMb} MB (target drain_null_msgs_per_s >= 200000: ${toNull >= 200_000 ? 'PASS' : 'MISS'})`,
);
console.log(
  `RESULT ${JSON.stringify({
    messages: MESSAGES,
    payload_bytes: PAYLOAD,
    raw_read_msgs_per_s: Math.round(raw),
    drain_null_msgs_per_s: Math.round(toNull),
    data: DATA,
    drain_http_batch_msgs_per_s: Math.round(toHttp),
    drain_http_batch_gzip_msgs_per_s: Math.round(http.gzip.rate),
    drain_http_batch_br_msgs_per_s: Math.round(http.br.rate),
    http_wire_bytes_none: http.none.wireBytes,
    http_wire_bytes_gzip: http.gzip.wireBytes,
    http_wire_bytes_br: http.br.wireBytes,
    ratio_http_gzip_vs_raw_read: Number((http.gzip.rate / raw).toFixed(3)),
    ratio_http_br_vs_raw_read: Number((http.br.rate / raw).toFixed(3)),
    ratio_null_vs_raw_read: Number((toNull / raw).toFixed(3)),
    peak_rss_mb: peakRssMb,
    build_peak_rss_mb: buildPeakRssMb,
  })}`,
);
