/**
 * npm run bench:peers — durable intake against what users would pick instead (issue 12, part 1),
 * on this machine, alternating in one run, every acknowledgement checked against what was stored.
 *
 * Batches: C concurrent clients, each sending a batch of B messages (default 100 × 1 KiB) and
 * waiting for its answer before the next, for S seconds per case:
 *   - Waystation: HTTP NDJSON `messages:batch`, 202 after fsync (`storage.fsync: always`);
 *   - PostgreSQL outbox: one INSERT of B rows per statement into a table with a bigserial key,
 *     autocommitted (the commit waits for the WAL fsync: `synchronous_commit` is printed).
 * QoS 1 / confirmed publishes: N messages of 1 KiB, W unacknowledged over C connections:
 *   - Waystation MQTT (3.1.1) into a store-and-forward topic, PUBACK after fsync;
 *   - RabbitMQ: a quorum queue, persistent messages, publisher confirms (C confirm channels);
 *   - NATS JetStream: a file stream on a nats-server >= 2.11 this script starts with
 *     `sync_interval: always` (scripts/install-nats-server.sh provides it), PubAck each.
 * Each pair or trio runs R times (default 3) in turn, Waystation first (after one unmeasured
 * warm-up run of Waystation's, whose process is fresh); the medians and ratios are
 * printed, last line `RESULT {json}`. After every case the stored count must equal the
 * acknowledged count (the stream's messages, `count(*)`, the queue's depth, the stream's state):
 * a mismatch fails the benchmark. A peer that is not running is skipped, saying so.
 * Waystation runs in its own process from dist/ (the npm script builds first), as `npm start` does.
 * Flags: --seconds S (5), --connections C (16), --batch B (100), --messages N (20000),
 * --window W (1000), --repeats R (3), --only batch|qos1, --dir DIR, --profile DIR (a CPU profile
 * of the Waystation process),
 * --postgres URL (postgres://postgres@127.0.0.1:5432/test), --amqp URL (amqp://guest:guest@127.0.0.1:5672).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import amqp from 'amqplib';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import { Pool as HttpPool } from 'undici';
import { NatsCluster } from '../test/support/nats-cluster.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const SECONDS = Number(args.get('seconds') ?? 5);
const CONNECTIONS = Number(args.get('connections') ?? 16);
const BATCH = Number(args.get('batch') ?? 100);
const N = Number(args.get('messages') ?? 20_000);
const WINDOW = Number(args.get('window') ?? 1000);
const REPEATS = Number(args.get('repeats') ?? 3);
const ONLY = args.get('only');
const POSTGRES = args.get('postgres') ?? 'postgres://postgres@127.0.0.1:5432/test';
const AMQP = args.get('amqp') ?? 'amqp://guest:guest@127.0.0.1:5672';
const repo = fileURLToPath(new URL('..', import.meta.url));
const root = args.get('dir') ?? join(repo, '.bench-data', 'peers');
const PROFILE = args.get('profile');

const payload = 'x'.repeat(1024);
const payloadBytes = Buffer.from(payload);
const ndjsonBatch = `${Array.from({ length: BATCH }, () => JSON.stringify({ payload })).join('\n')}\n`;
const pgBatch = Array.from({ length: BATCH }, () => payload);

/** What one case measured: acknowledged messages per second, and the acknowledged count. */
interface Measured {
  msgsPerSecond: number;
  acked: number;
}

/**
 * A peer under test: `run` measures once; `stored` counts what the peer holds from that run (a
 * table, queue or stream of its own, or for Waystation what its stream gained).
 */
interface Contender {
  name: string;
  run(tag: string): Promise<Measured>;
  stored(tag: string): Promise<number>;
  close(): Promise<void>;
}

/** C clients, each repeating `send` (one batch, acknowledged) until S seconds are over. */
async function batchLoad(send: () => Promise<void>): Promise<Measured> {
  const started = performance.now();
  const end = started + SECONDS * 1000;
  let acked = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end) {
        await send();
        acked += BATCH;
      }
    }),
  );
  return { msgsPerSecond: acked / ((performance.now() - started) / 1000), acked };
}

/** N single-message publishes, W unacknowledged at a time over `lanes` senders; `send(lane)`. */
async function windowLoad(lanes: number, send: (lane: number) => Promise<void>): Promise<Measured> {
  const perLane = Math.max(1, Math.floor(WINDOW / lanes));
  let next = 0;
  let acked = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, (_, lane) =>
      Promise.all(
        Array.from({ length: perLane }, async () => {
          while (next < N) {
            next++;
            await send(lane);
            acked++;
          }
        }),
      ),
    ),
  );
  return { msgsPerSecond: acked / ((performance.now() - started) / 1000), acked };
}

async function startWaystation(dir: string): Promise<{ http: string; mqtt: string; proc: ChildProcess }> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'waystation.yaml');
  await writeFile(
    config,
    [
      'dataDir: ./data',
      'http: { listen: "127.0.0.1:0" }',
      'storage: { fsync: always }',
      'streams: { peershttp: {} }',
      'mqtt:',
      '  listen: "127.0.0.1:0"',
      '  allowAnonymous: true',
      `  receiveMaximum: ${WINDOW}`,
      '  storeAndForwardTopics: [{ topic: "peers/#", stream: peersmqtt }]',
    ].join('\n'),
  );
  const cli = [join(repo, 'dist/cli/main.js'), 'start', '--config', config];
  const profile = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`] : [];
  const proc = spawn(process.execPath, [...profile, ...cli], {
    env: { ...process.env, WAYSTATION_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const urls = await new Promise<{ http: string; mqtt: string }>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`waystation exited with ${code}`)));
    let mqttUrl: string | undefined;
    let httpUrl: string | undefined;
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      mqttUrl ??= /"tcp":"(mqtt:\/\/[^"]+)"/.exec(l)?.[1];
      if (l.includes('listening')) httpUrl ??= /"url":"(http:\/\/[^"]+)"/.exec(l)?.[1];
      if (httpUrl && mqttUrl) resolve({ http: httpUrl, mqtt: mqttUrl });
    });
  });
  return { ...urls, proc };
}

async function streamMessages(http: string, stream: string): Promise<number> {
  const res = await fetch(`${http}/v1/streams/${encodeURIComponent(stream)}`);
  if (res.status === 404) return 0;
  if (!res.ok) throw new Error(`GET /v1/streams/${stream}: ${res.status}`);
  return ((await res.json()) as { messages: number }).messages;
}

function waystationHttp(gw: { http: string }): Contender {
  const pool = new HttpPool(gw.http, { connections: CONNECTIONS, pipelining: 1 });
  let base = 0;
  return {
    name: `Waystation HTTP NDJSON ×${BATCH}`,
    async run() {
      base = await streamMessages(gw.http, 'peershttp');
      return batchLoad(async () => {
        const res = await pool.request({
          path: '/v1/streams/peershttp/messages:batch',
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body: ndjsonBatch,
        });
        const text = await res.body.text();
        if (res.statusCode !== 202) throw new Error(`batch publish answered ${res.statusCode}: ${text}`);
      });
    },
    stored: async () => (await streamMessages(gw.http, 'peershttp')) - base,
    close: () => pool.close(),
  };
}

async function postgresOutbox(): Promise<{ contender: Contender; settings: string }> {
  const pool = new pg.Pool({ connectionString: POSTGRES, max: CONNECTIONS });
  const settings = await Promise.all(
    ['fsync', 'synchronous_commit', 'wal_sync_method'].map(
      async (s) => `${s}=${(await pool.query(`SHOW ${s}`)).rows[0][s]}`,
    ),
  );
  const tables: string[] = [];
  return {
    settings: settings.join(' '),
    contender: {
      name: `PostgreSQL outbox INSERT ×${BATCH}`,
      async run(tag) {
        const table = `waystation_bench_outbox_${tag}`;
        tables.push(table);
        await pool.query(`DROP TABLE IF EXISTS ${table}`);
        await pool.query(
          `CREATE TABLE ${table} (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)`,
        );
        return batchLoad(async () => {
          await pool.query(`INSERT INTO ${table} (payload) SELECT unnest($1::text[])`, [pgBatch]);
        });
      },
      async stored(tag) {
        return Number(
          (await pool.query(`SELECT count(*) AS n FROM waystation_bench_outbox_${tag}`)).rows[0].n,
        );
      },
      async close() {
        for (const t of tables) await pool.query(`DROP TABLE IF EXISTS ${t}`);
        await pool.end();
      },
    },
  };
}

function waystationMqtt(gw: { http: string; mqtt: string }): Contender {
  let base = 0;
  return {
    name: 'Waystation MQTT QoS 1 (durable PUBACK)',
    async run(tag) {
      base = await streamMessages(gw.http, 'peersmqtt');
      const clients = await Promise.all(
        Array.from(
          { length: CONNECTIONS },
          (_, i) =>
            new Promise<MqttClient>((resolve, reject) => {
              const c = mqtt.connect(gw.mqtt, {
                clientId: `peers-${tag}-${i}`,
                reconnectPeriod: 0,
                protocolVersion: 4,
              });
              c.once('connect', () => resolve(c));
              c.once('error', reject);
            }),
        ),
      );
      try {
        return await windowLoad(CONNECTIONS, async (lane) => {
          await clients[lane]!.publishAsync(`peers/${tag}`, payloadBytes, { qos: 1 });
        });
      } finally {
        await Promise.all(clients.map((c) => c.endAsync()));
      }
    },
    stored: async () => (await streamMessages(gw.http, 'peersmqtt')) - base,
    close: async () => {},
  };
}

async function rabbitQuorum(): Promise<Contender> {
  const conn = await amqp.connect(AMQP);
  const channels = await Promise.all(Array.from({ length: CONNECTIONS }, () => conn.createConfirmChannel()));
  const queues: string[] = [];
  const ch0 = channels[0]!;
  return {
    name: 'RabbitMQ quorum queue, confirms',
    async run(tag) {
      const queue = `waystation-bench-peers-${tag}`;
      queues.push(queue);
      await ch0.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      return windowLoad(
        CONNECTIONS,
        (lane) =>
          new Promise<void>((resolve, reject) => {
            channels[lane]!.sendToQueue(queue, payloadBytes, { persistent: true }, (err) =>
              err ? reject(err) : resolve(),
            );
          }),
      );
    },
    async stored(tag) {
      return (await ch0.checkQueue(`waystation-bench-peers-${tag}`)).messageCount;
    },
    async close() {
      for (const q of queues) await ch0.deleteQueue(q);
      await conn.close();
    },
  };
}

async function jetStreamSync(): Promise<{ contender: Contender; version: string }> {
  const server = await NatsCluster.start({ size: 1 });
  const nc = await natsConnect({ servers: server.urls });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  return {
    version: server.version,
    contender: {
      name: 'NATS JetStream, sync_interval: always',
      async run(tag) {
        await jsm.streams.add({
          name: `PEERS_${tag}`,
          subjects: [`peers.${tag}`],
          storage: StorageType.File,
        });
        return windowLoad(CONNECTIONS, async () => {
          await js.publish(`peers.${tag}`, payloadBytes);
        });
      },
      async stored(tag) {
        return (await jsm.streams.info(`PEERS_${tag}`)).state.messages;
      },
      async close() {
        await nc.close();
        await server.stop();
      },
    },
  };
}

/** Tries to set up a peer; undefined (and a line saying why) when its server is not there. */
async function optional<T>(what: string, setUp: () => Promise<T>): Promise<T | undefined> {
  try {
    return await setUp();
  } catch (err) {
    console.log(`skipped: ${what} (${(err as Error).message})`);
    return undefined;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Runs the contenders in turn R times, checking stored = acknowledged after each run; medians. */
async function compare(group: string, contenders: Contender[]): Promise<Map<string, number>> {
  const rates = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  // One unmeasured run first: the Waystation process is fresh (its JIT cold), the peers are not.
  await contenders[0]!.run(`${group}w${Date.now().toString(36)}`);
  for (let r = 0; r < REPEATS; r++) {
    for (const c of contenders) {
      const tag = `${group}${r}x${Date.now().toString(36)}`;
      const m = await c.run(tag);
      const stored = await c.stored(tag);
      if (stored !== m.acked)
        throw new Error(`${c.name}: ${m.acked} acknowledged but ${stored} stored (run ${r + 1})`);
      rates.get(c.name)!.push(m.msgsPerSecond);
      console.log(
        `  run ${r + 1}  ${c.name.padEnd(40)} ${Math.round(m.msgsPerSecond).toLocaleString('en-US').padStart(9)} msgs/s  (${m.acked} acknowledged = stored)`,
      );
    }
  }
  return new Map([...rates].map(([name, xs]) => [name, median(xs)]));
}

function report(medians: Map<string, number>, ours: string): Record<string, number> {
  const base = medians.get(ours)!;
  const out: Record<string, number> = {};
  for (const [name, rate] of medians) {
    const vs = name === ours ? '' : `  Waystation ${(base / rate).toFixed(2)}×`;
    console.log(
      `  median  ${name.padEnd(40)} ${Math.round(rate).toLocaleString('en-US').padStart(9)} msgs/s${vs}`,
    );
    out[name] = Math.round(rate);
  }
  return out;
}

const gw = await startWaystation(root);
const result: Record<string, unknown> = {
  connections: CONNECTIONS,
  repeats: REPEATS,
  payload_bytes: payloadBytes.length,
};
try {
  if (ONLY !== 'qos1') {
    console.log(
      `\nbatches of ${BATCH} × 1 KiB, ${CONNECTIONS} clients, ${SECONDS} s per case, ${REPEATS} rounds`,
    );
    const ws = waystationHttp(gw);
    const postgres = await optional(`PostgreSQL at ${POSTGRES}`, postgresOutbox);
    if (postgres) console.log(`  PostgreSQL ${postgres.settings}`);
    const medians = await compare('b', [ws, ...(postgres ? [postgres.contender] : [])]);
    const rates = report(medians, ws.name);
    result.http_batch_msgs_per_s = rates[ws.name];
    if (postgres) {
      result.postgres_outbox_msgs_per_s = rates[postgres.contender.name];
      result.ratio_http_batch_vs_postgres = Number(
        (medians.get(ws.name)! / medians.get(postgres.contender.name)!).toFixed(3),
      );
      await postgres.contender.close();
    }
    await ws.close();
  }
  if (ONLY !== 'batch') {
    console.log(
      `\nQoS 1 / confirmed: ${N} × 1 KiB, window ${WINDOW} over ${CONNECTIONS} connections, ${REPEATS} rounds`,
    );
    const ws = waystationMqtt(gw);
    const rabbit = await optional(`RabbitMQ at ${AMQP}`, rabbitQuorum);
    const js = await optional('nats-server >= 2.11 (scripts/install-nats-server.sh)', jetStreamSync);
    if (js) console.log(`  nats-server ${js.version}`);
    const peers = [...(rabbit ? [rabbit] : []), ...(js ? [js.contender] : [])];
    const medians = await compare('q', [ws, ...peers]);
    const rates = report(medians, ws.name);
    result.mqtt_qos1_msgs_per_s = rates[ws.name];
    if (rabbit) {
      result.rabbitmq_quorum_msgs_per_s = rates[rabbit.name];
      result.ratio_mqtt_vs_rabbitmq = Number((medians.get(ws.name)! / medians.get(rabbit.name)!).toFixed(3));
    }
    if (js) {
      result.jetstream_sync_msgs_per_s = rates[js.contender.name];
      result.ratio_mqtt_vs_jetstream = Number(
        (medians.get(ws.name)! / medians.get(js.contender.name)!).toFixed(3),
      );
    }
    for (const p of peers) await p.close();
  }
  const status = await readFile(`/proc/${gw.proc.pid}/status`, 'utf8');
  result.peak_rss_mb = Math.round(Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]) / 1024);
  console.log(`\nWaystation peak RSS ${result.peak_rss_mb} MB`);
} finally {
  gw.proc.kill('SIGTERM');
  await new Promise((r) => gw.proc.once('exit', r));
  await rm(root, { recursive: true, force: true });
}
console.log(`RESULT ${JSON.stringify(result)}`);
