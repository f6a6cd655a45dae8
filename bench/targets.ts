/**
 * npm run bench:targets — Waystation's overhead over each real system's own client.
 *
 * For each target (redis, postgres, nats, amqp, mqtt), on the servers on 127.0.0.1:
 *   1. direct: the same client library writes N messages (default 100 000 × 1 KiB) in batches of
 *      1000, the way the target does (pipelined, confirmed). Timed from the first write to the
 *      last confirmation: connecting (and creating the postgres table) happens before, as the
 *      target does it when the route starts;
 *   2. through Waystation: the same N messages stored behind a held route with batch 1000, then
 *      released and drained to the target, timed from release until the last message is
 *      delivered (the wait for delivery of the last id, then checked against the route's count).
 * Before the measured runs each side runs once with N/10 messages (at least one batch), not
 * counted: both start with warm JIT code and an established connection. Then R repeats
 * (default 3), each a direct run and a Waystation run back to back, in alternating order
 * (direct first, then Waystation first, ...) so a slow spell of the shared machine hits both.
 * Every run writes unique message ids (JetStream and postgres would drop duplicates), and the
 * destination is emptied between runs, untimed.
 * Prints every repeat, then per target the median direct and Waystation rates and the median of
 * the per-repeat ratios (Waystation ÷ direct). Last line `RESULT {json}` with `<target>_ratio`
 * and `peak_rss_mb` (this process's, both sides included).
 * Flags: --messages N, --repeats R, --only redis,postgres,...
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, headers as natsHeaders } from '@nats-io/transport-node';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import pg from 'pg';
import { pino } from 'pino';
import { Waystation, type WaystationConfigInput } from '../src/index.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const N = Number(args.get('messages') ?? 100_000);
const REPEATS = Number(args.get('repeats') ?? 3);
const WARMUP = Math.max(1000, Math.round(N / 10));
const BATCH = 1000;
const only = args.get('only')?.split(',');
const repo = fileURLToPath(new URL('..', import.meta.url));
const payload = Buffer.alloc(1024, 0x61);

type TargetInput = NonNullable<WaystationConfigInput['targets']>[string];

interface Case {
  name: string;
  /** Prepares the server for namespace `ns`; returns the target config and a cleanup. */
  prepare(ns: string): Promise<{ target: TargetInput; cleanup: () => Promise<void> }>;
  /**
   * Connects, then writes `n` messages directly in batches of BATCH with ids `<run>-<i>`, timed
   * (by `batches`) until all are confirmed; resolves with the seconds taken.
   */
  direct(ns: string, run: string, n: number): Promise<number>;
  /** Empties what the runs wrote, between runs (untimed). */
  reset?(ns: string): Promise<void>;
}

/** Calls `fn` for each batch of `n` messages; resolves with the seconds the batches took. */
const batches = async (n: number, fn: (from: number, count: number) => Promise<void>) => {
  const started = performance.now();
  for (let from = 0; from < n; from += BATCH) await fn(from, Math.min(BATCH, n - from));
  return (performance.now() - started) / 1000;
};

const cases: Case[] = [
  {
    name: 'redis',
    async prepare(ns) {
      const r = new Redis('redis://127.0.0.1:6379');
      return {
        target: { type: 'redis', url: 'redis://127.0.0.1:6379', stream: `${ns}-w` },
        cleanup: async () => {
          await r.del(`${ns}-w`, `${ns}-d`);
          r.disconnect();
        },
      };
    },
    async direct(ns, run, n) {
      const r = new Redis('redis://127.0.0.1:6379');
      await r.ping();
      const seconds = await batches(n, async (from, count) => {
        const p = r.pipeline();
        for (let i = 0; i < count; i++) {
          p.xadd(
            `${ns}-d`,
            '*',
            'id',
            `${run}-${from + i}`,
            'stream',
            'bench',
            'seq',
            String(from + i),
            'key',
            '',
            'headers',
            '{}',
            'timestamp',
            String(Date.now()),
            'payload',
            payload,
          );
        }
        await p.exec();
      });
      r.disconnect();
      return seconds;
    },
    async reset(ns) {
      const r = new Redis('redis://127.0.0.1:6379');
      await r.del(`${ns}-w`, `${ns}-d`);
      r.disconnect();
    },
  },
  {
    name: 'postgres',
    async prepare(ns) {
      const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
      return {
        target: {
          type: 'postgres',
          connectionString: 'postgres://postgres@127.0.0.1:5432/test',
          table: `${ns}_w`,
        },
        cleanup: async () => {
          await pool.query(`DROP TABLE IF EXISTS "${ns}_w"; DROP TABLE IF EXISTS "${ns}_d"`);
          await pool.end();
        },
      };
    },
    async direct(ns, run, n) {
      const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
      await pool.query(
        `CREATE TABLE IF NOT EXISTS "${ns}_d" (id text PRIMARY KEY, stream text NOT NULL, seq bigint NOT NULL, key text, headers jsonb NOT NULL, ts timestamptz NOT NULL, payload bytea NOT NULL)`,
      );
      const seconds = await batches(n, async (from, count) => {
        const values: unknown[] = [];
        const rows: string[] = [];
        for (let i = 0; i < count; i++) {
          const n = values.length;
          rows.push(
            `($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}, to_timestamp($${n + 6} / 1000.0), $${n + 7})`,
          );
          values.push(`${run}-${from + i}`, 'bench', from + i, null, '{}', Date.now(), payload);
        }
        const client = await pool.connect();
        await client.query('BEGIN');
        await client.query(
          `INSERT INTO "${ns}_d" (id, stream, seq, key, headers, ts, payload) VALUES ${rows.join(', ')} ON CONFLICT (id) DO NOTHING`,
          values,
        );
        await client.query('COMMIT');
        client.release();
      });
      await pool.end();
      return seconds;
    },
    async reset(ns) {
      const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
      for (const t of [`${ns}_w`, `${ns}_d`])
        await pool.query(
          `DO $$ BEGIN IF to_regclass('"${t}"') IS NOT NULL THEN TRUNCATE "${t}"; END IF; END $$`,
        );
      await pool.end();
    },
  },
  {
    name: 'nats',
    async prepare(ns) {
      const nc = await natsConnect({ servers: '127.0.0.1:4222' });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: ns, subjects: [`${ns}.>`] });
      return {
        target: { type: 'nats', servers: '127.0.0.1:4222', subject: `${ns}.w` },
        cleanup: async () => {
          await jsm.streams.delete(ns);
          await nc.close();
        },
      };
    },
    async direct(ns, run, n) {
      const nc = await natsConnect({ servers: '127.0.0.1:4222' });
      const js = jetstream(nc);
      const seconds = await batches(n, async (from, count) => {
        await Promise.all(
          Array.from({ length: count }, (_, i) => {
            // The same headers the target sends.
            const h = natsHeaders();
            h.set('Waystation-Id', `${run}-${from + i}`);
            h.set('Waystation-Stream', 'bench');
            h.set('Waystation-Seq', String(from + i));
            return js.publish(`${ns}.d`, payload, { msgID: `${run}-${from + i}`, headers: h });
          }),
        );
      });
      await nc.close();
      return seconds;
    },
    async reset(ns) {
      const nc = await natsConnect({ servers: '127.0.0.1:4222' });
      await (await jetstreamManager(nc)).streams.purge(ns);
      await nc.close();
    },
  },
  {
    name: 'amqp',
    async prepare(ns) {
      const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
      const ch = await conn.createChannel();
      for (const q of [`${ns}-w`, `${ns}-d`]) await ch.assertQueue(q, { durable: true });
      return {
        target: { type: 'amqp', url: 'amqp://guest:guest@127.0.0.1:5672', routingKey: `${ns}-w` },
        cleanup: async () => {
          for (const q of [`${ns}-w`, `${ns}-d`]) await ch.deleteQueue(q);
          await conn.close();
        },
      };
    },
    async direct(ns, run, n) {
      const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
      const ch = await conn.createConfirmChannel();
      const seconds = await batches(n, async (from, count) => {
        for (let i = 0; i < count; i++) {
          ch.publish('', `${ns}-d`, payload, {
            persistent: true,
            mandatory: true,
            messageId: `${run}-${from + i}`,
            timestamp: Math.floor(Date.now() / 1000),
            headers: { 'waystation-stream': 'bench', 'waystation-seq': from + i },
          });
        }
        await ch.waitForConfirms();
      });
      await conn.close();
      return seconds;
    },
    async reset(ns) {
      const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
      const ch = await conn.createChannel();
      for (const q of [`${ns}-w`, `${ns}-d`]) await ch.purgeQueue(q);
      await conn.close();
    },
  },
  {
    name: 'mqtt',
    async prepare(ns) {
      return {
        target: { type: 'mqtt', url: 'mqtt://127.0.0.1:1883', topic: `${ns}/w`, qos: 1 },
        cleanup: async () => {},
      };
    },
    async direct(ns, run, n) {
      const c = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { protocolVersion: 5 });
      const seconds = await batches(n, async (from, count) => {
        await Promise.all(
          Array.from({ length: count }, (_, i) =>
            c.publishAsync(`${ns}/d`, payload, {
              qos: 1,
              properties: {
                userProperties: {
                  'waystation-id': `${run}-${from + i}`,
                  'waystation-stream': 'bench',
                  'waystation-seq': String(from + i),
                },
              },
            }),
          ),
        );
      });
      await c.endAsync();
      return seconds;
    },
  },
];

async function throughWaystation(ns: string, target: TargetInput, n: number): Promise<number> {
  const dataDir = join(repo, '.bench-data', `targets-${ns}`);
  await rm(dataDir, { recursive: true, force: true });
  const ws = await Waystation.open(
    {
      dataDir,
      storage: { fsync: 'never' },
      targets: { t: target },
      routes: { r: { streams: ['bench'], target: 't', batch: { maxMessages: BATCH, maxBytes: '4MiB' } } },
    },
    { logger: pino({ level: 'silent' }) },
  );
  const route = ws.route('r');
  route.store();
  const batch = Array.from({ length: BATCH }, () => ({ payload }));
  let lastId = '';
  for (let sent = 0; sent < n; sent += BATCH)
    lastId = (await ws.publishBatch('bench', batch.slice(0, Math.min(BATCH, n - sent)))).at(-1)!.id;
  const started = performance.now();
  route.forward();
  // fifo: the last message is delivered last. The count check catches anything else.
  await ws.messageStatus(lastId, { waitFor: 'delivered', timeout: 600_000 });
  let ended = performance.now();
  for (;;) {
    const s = await route.snapshot();
    if (s.deadLettered > 0) throw new Error(`${target.type}: dead letters: ${s.lastError}`);
    if (s.forwarded >= n) break;
    await new Promise((r) => setTimeout(r, 10));
    ended = performance.now();
  }
  await ws.close();
  await rm(dataDir, { recursive: true, force: true });
  return n / ((ended - started) / 1000);
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const result: Record<string, number> = { messages: N, repeats: REPEATS };
const summary: string[] = [];
console.log(
  `${fmt(N)} x 1 KiB messages per run, batches of ${BATCH}; warm-up ${fmt(WARMUP)} each way, then ${REPEATS} repeats\n`,
);
console.log('target     run       direct msgs/s   via waystation msgs/s   ratio');
for (const c of cases) {
  if (only && !only.includes(c.name)) continue;
  const ns = `wsb${randomBytes(4).toString('hex')}`;
  const { target, cleanup } = await c.prepare(ns);
  try {
    const runDirect = async (run: string, n: number) => {
      const seconds = await c.direct(ns, run, n);
      await c.reset?.(ns);
      return n / seconds;
    };
    const runVia = async (n: number) => {
      const rate = await throughWaystation(ns, target, n);
      await c.reset?.(ns);
      return rate;
    };
    await runDirect('warm', WARMUP);
    await runVia(WARMUP);
    const directs: number[] = [];
    const vias: number[] = [];
    const ratios: number[] = [];
    for (let r = 1; r <= REPEATS; r++) {
      let direct: number;
      let via: number;
      if (r % 2 === 1) {
        direct = await runDirect(`d${r}`, N);
        via = await runVia(N);
      } else {
        via = await runVia(N);
        direct = await runDirect(`d${r}`, N);
      }
      directs.push(direct);
      vias.push(via);
      ratios.push(via / direct);
      console.log(
        `${c.name.padEnd(10)} ${String(r).padEnd(5)} ${fmt(direct).padStart(14)} ${fmt(via).padStart(23)}   ${(via / direct).toFixed(2)}`,
      );
    }
    const ratio = median(ratios);
    summary.push(
      `${c.name.padEnd(10)} median ${fmt(median(directs)).padStart(14)} ${fmt(median(vias)).padStart(23)}   ${ratio.toFixed(2)} ${ratio >= 0.8 ? 'PASS' : 'MISS'}  (ratios ${ratios.map((x) => x.toFixed(2)).join(' / ')})`,
    );
    result[`${c.name}_direct_msgs_per_s`] = Math.round(median(directs));
    result[`${c.name}_waystation_msgs_per_s`] = Math.round(median(vias));
    result[`${c.name}_ratio`] = Number(ratio.toFixed(3));
    result[`${c.name}_ratio_min`] = Number(Math.min(...ratios).toFixed(3));
  } finally {
    await cleanup();
  }
}
console.log(`\n${summary.join('\n')}`);
// Waystation and the direct clients share this process: its peak covers both.
result.peak_rss_mb = Math.round(process.resourceUsage().maxRSS / 1024);
console.log(`\npeak RSS of the bench process (Waystation and the direct clients) ${result.peak_rss_mb} MB`);
console.log(`\n(target: every median ratio >= 0.8)\nRESULT ${JSON.stringify(result)}`);
