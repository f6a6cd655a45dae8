/**
 * npm run bench:forward — how fast a stored backlog drains.
 *
 * Builds a backlog of N messages (default 1 000 000 × 1 KiB) behind a held route, then in one
 * run on the same disk measures:
 *   1. baseline: reading the same backlog straight from the log (no delivery engine);
 *   2. draining it to a `null` target (batches of 1000, fifo);
 *   3. draining it to a local HTTP receiver (another process) in batch mode (NDJSON).
 * Prints a table, peak RSS, and last a line `RESULT {json}`.
 *
 * Flags: --messages N, --payload BYTES, --dir DIR (default .bench-data/forward).
 */
import { fork } from 'node:child_process';
import { rm } from 'node:fs/promises';
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
    storage: { fsync: 'never' as const },
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
  const payload = Buffer.alloc(PAYLOAD, 0x61);
  const batch = Array.from({ length: 1000 }, () => ({ payload }));
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

async function drain(dataDir: string, target: Record<string, unknown>): Promise<number> {
  const ws = await Waystation.open(configFor(dataDir, target), { logger: silent });
  const route = ws.route('drain');
  const started = performance.now();
  route.forward();
  for (;;) {
    const snap = await route.snapshot();
    if (snap.inQueue + snap.inFlight === 0 && snap.forwarded >= MESSAGES) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  await ws.close();
  return MESSAGES / seconds;
}

async function startReceiver(): Promise<{ url: string; stop: () => void }> {
  const child = fork(join(repo, 'bench', 'ndjson-receiver.mjs'), [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve(Number(m))));
  return { url: `http://127.0.0.1:${port}/in`, stop: () => child.kill() };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

await rm(root, { recursive: true, force: true });
const t0 = performance.now();
await buildBacklog(join(root, 'null'));
await buildBacklog(join(root, 'http'));
console.log(
  `backlog: ${fmt(MESSAGES)} x ${PAYLOAD} B messages, built twice in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

const buildPeakRssMb = Math.round(peakRss / 1048576);
peakRss = 0; // from here on: reading and draining only
const raw = await rawRead(join(root, 'null'));
const toNull = await drain(join(root, 'null'), { type: 'null' });
const receiver = await startReceiver();
const toHttp = await drain(join(root, 'http'), { type: 'http', url: receiver.url, mode: 'batch' });
receiver.stop();
clearInterval(sampler);
await rm(root, { recursive: true, force: true });

const rows: [string, number, string][] = [
  ['raw log read (baseline)', raw, '1.00'],
  ['drain to null, batch 1000', toNull, (toNull / raw).toFixed(2)],
  ['drain to HTTP (NDJSON batch 1000)', toHttp, (toHttp / raw).toFixed(2)],
];
console.log('\ncase                                   msgs/s      vs raw read');
for (const [name, rate, ratio] of rows)
  console.log(`${name.padEnd(38)} ${fmt(rate).padStart(10)}   ${ratio}`);
const peakRssMb = Math.round(peakRss / 1048576);
console.log(
  `\npeak RSS while draining ${peakRssMb} MB, while building the backlog ${buildPeakRssMb} MB (target drain_null_msgs_per_s >= 200000: ${toNull >= 200_000 ? 'PASS' : 'MISS'})`,
);
console.log(
  `RESULT ${JSON.stringify({
    messages: MESSAGES,
    payload_bytes: PAYLOAD,
    raw_read_msgs_per_s: Math.round(raw),
    drain_null_msgs_per_s: Math.round(toNull),
    drain_http_batch_msgs_per_s: Math.round(toHttp),
    ratio_null_vs_raw_read: Number((toNull / raw).toFixed(3)),
    peak_rss_mb: peakRssMb,
    build_peak_rss_mb: buildPeakRssMb,
  })}`,
);
