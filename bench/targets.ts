/**
 * npm run bench:targets — Waystation's overhead over each real system's own client.
 *
 * For each target (redis, postgres, nats, amqp, mqtt), on the servers on 127.0.0.1:
 *   1. direct: the same client library writes N messages (default 100 000 × 1 KiB) in batches of
 *      1000, the way the target does (pipelined, confirmed), timed;
 *   2. through Waystation: the same N messages stored behind a held route with batch 1000, then
 *      released and drained to the target, timed from release to the last ack.
 * Prints both and the ratio (Waystation ÷ direct), last line `RESULT {json}` with `<target>_ratio`.
 * Flags: --messages N, --only redis,postgres,...
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
const BATCH = 1000;
const only = args.get('only')?.split(',');
const repo = fileURLToPath(new URL('..', import.meta.url));
const payload = Buffer.alloc(1024, 0x61);

type TargetInput = NonNullable<WaystationConfigInput['targets']>[string];

interface Case {
  name: string;
  /** Prepares the server for namespace `ns`; returns the target config and a cleanup. */
  prepare(ns: string): Promise<{ target: TargetInput; cleanup: () => Promise<void> }>;
  /** Writes N messages directly in batches of BATCH; resolves when all are confirmed. */
  direct(ns: string): Promise<void>;
}

const batches = async (fn: (from: number, count: number) => Promise<void>) => {
  for (let from = 0; from < N; from += BATCH) await fn(from, Math.min(BATCH, N - from));
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
    async direct(ns) {
      const r = new Redis('redis://127.0.0.1:6379');
      await batches(async (from, count) => {
        const p = r.pipeline();
        for (let i = 0; i < count; i++) {
          p.xadd(
            `${ns}-d`,
            '*',
            'id',
            `d-${from + i}`,
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
    async direct(ns) {
      const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
      await pool.query(
        `CREATE TABLE "${ns}_d" (id text PRIMARY KEY, stream text NOT NULL, seq bigint NOT NULL, key text, headers jsonb NOT NULL, ts timestamptz NOT NULL, payload bytea NOT NULL)`,
      );
      await batches(async (from, count) => {
        const values: unknown[] = [];
        const rows: string[] = [];
        for (let i = 0; i < count; i++) {
          const n = values.length;
          rows.push(
            `($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}, to_timestamp($${n + 6} / 1000.0), $${n + 7})`,
          );
          values.push(`d-${from + i}`, 'bench', from + i, null, '{}', Date.now(), payload);
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
    async direct(ns) {
      const nc = await natsConnect({ servers: '127.0.0.1:4222' });
      const js = jetstream(nc);
      await batches(async (from, count) => {
        await Promise.all(
          Array.from({ length: count }, (_, i) => {
            // The same headers the target sends.
            const h = natsHeaders();
            h.set('Waystation-Id', `d-${from + i}`);
            h.set('Waystation-Stream', 'bench');
            h.set('Waystation-Seq', String(from + i));
            return js.publish(`${ns}.d`, payload, { msgID: `d-${from + i}`, headers: h });
          }),
        );
      });
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
    async direct(ns) {
      const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
      const ch = await conn.createConfirmChannel();
      await batches(async (from, count) => {
        for (let i = 0; i < count; i++) {
          ch.publish('', `${ns}-d`, payload, {
            persistent: true,
            mandatory: true,
            messageId: `d-${from + i}`,
            timestamp: Math.floor(Date.now() / 1000),
            headers: { 'waystation-stream': 'bench', 'waystation-seq': from + i },
          });
        }
        await ch.waitForConfirms();
      });
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
    async direct(ns) {
      const c = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { protocolVersion: 5 });
      await batches(async (from, count) => {
        await Promise.all(
          Array.from({ length: count }, (_, i) =>
            c.publishAsync(`${ns}/d`, payload, {
              qos: 1,
              properties: {
                userProperties: {
                  'waystation-id': `d-${from + i}`,
                  'waystation-stream': 'bench',
                  'waystation-seq': String(from + i),
                },
              },
            }),
          ),
        );
      });
      await c.endAsync();
    },
  },
];

async function throughWaystation(ns: string, target: TargetInput): Promise<number> {
  const dataDir = join(repo, '.bench-data', `targets-${ns}`);
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
  for (let sent = 0; sent < N; sent += BATCH)
    await ws.publishBatch('bench', batch.slice(0, Math.min(BATCH, N - sent)));
  const started = performance.now();
  route.forward();
  for (;;) {
    const s = await route.snapshot();
    if (s.forwarded >= N) break;
    if (s.deadLettered > 0) throw new Error(`${target.type}: dead letters: ${s.lastError}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const seconds = (performance.now() - started) / 1000;
  await ws.close();
  await rm(dataDir, { recursive: true, force: true });
  return N / seconds;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const result: Record<string, number> = { messages: N };
console.log(`${fmt(N)} x 1 KiB messages per case, batches of ${BATCH}\n`);
console.log('target      direct msgs/s   via waystation msgs/s   ratio');
for (const c of cases) {
  if (only && !only.includes(c.name)) continue;
  const ns = `wsb${randomBytes(4).toString('hex')}`;
  const { target, cleanup } = await c.prepare(ns);
  try {
    const t0 = performance.now();
    await c.direct(ns);
    const direct = N / ((performance.now() - t0) / 1000);
    const via = await throughWaystation(ns, target);
    const ratio = via / direct;
    console.log(
      `${c.name.padEnd(10)} ${fmt(direct).padStart(14)} ${fmt(via).padStart(23)}   ${ratio.toFixed(2)} ${ratio >= 0.8 ? 'PASS' : 'MISS'}`,
    );
    result[`${c.name}_direct_msgs_per_s`] = Math.round(direct);
    result[`${c.name}_waystation_msgs_per_s`] = Math.round(via);
    result[`${c.name}_ratio`] = Number(ratio.toFixed(3));
  } finally {
    await cleanup();
  }
}
console.log(`\n(target: every ratio >= 0.8)\nRESULT ${JSON.stringify(result)}`);
