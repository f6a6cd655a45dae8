/**
 * npm run bench:cluster — cluster mode (issue 10) on a 3-server nats-server cluster this script
 * starts on free loopback ports (scripts/install-nats-server.sh provides the binary), every
 * stream and bucket at 3 replicas, `sync_interval: always`.
 *
 *   1. baseline: nats.js publishing 1 KiB messages straight to a replicated stream (C publishers,
 *      each waiting for its PubAck), the most a client gets from JetStream here;
 *   2. library: `ws.publish` (one 1 KiB message per call) from C concurrent callers;
 *   3. HTTP batch: `POST /v1/streams/s/messages:batch` with 100 messages, C/4 concurrent clients;
 *   4. drain: a backlog of N behind a held route, released to the null target, against a
 *      nats.js ordered consumer reading the same backlog;
 *   5. failover: two Waystation processes; the one delivering a route is SIGKILLed (K times,
 *      restarted between), timed from the kill to the first delivery by the other node.
 * Prints every figure and its ratio, peak RSS, and last `RESULT {json}`.
 *
 * Flags: --messages N (default 20 000), --concurrency C (default 64), --kills K (default 10).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DeliverPolicy, jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { Gateway } from '../src/gateway.js';
import { Waystation } from '../src/index.js';
import { NatsCluster } from '../test/support/nats-cluster.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const N = Number(args.get('messages') ?? 20_000);
const C = Number(args.get('concurrency') ?? 64);
const KILLS = Number(args.get('kills') ?? 10);
const repo = fileURLToPath(new URL('..', import.meta.url));
const payload = Buffer.alloc(1024, 0x61);
const silent = pino({ level: 'silent' });

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);

/** Under the OS temp directory (left for the OS to clean: a benchmark's few MB). */
const tempDir = (prefix: string) => mkdtemp(join(tmpdir(), prefix));
const rate = (n: number, ms: number) => Math.round((n / ms) * 1000);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Runs `worker` on C lanes until `n` operations are done; resolves with the elapsed ms. */
async function lanes(lanesCount: number, n: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: lanesCount }, async () => {
      for (let i = next++; i < n; i = next++) await op(i);
    }),
  );
  return performance.now() - started;
}

function clusterConfig(nats: NatsCluster, prefix: string, nodeId: string, extra: object = {}) {
  return {
    cluster: { nodeId, prefix, nats: { servers: nats.urls, replicas: 3 }, leaseTtl: '2s' },
    ...extra,
  };
}

async function baselinePublish(nats: NatsCluster): Promise<number> {
  const nc = await connect({ servers: nats.urls });
  const jsm = await jetstreamManager(nc);
  const name = `direct_${randomBytes(3).toString('hex')}`;
  await jsm.streams.add({ name, subjects: [`${name}.in`], storage: StorageType.File, num_replicas: 3 });
  const js = jetstream(nc);
  const ms = await lanes(C, N, () => js.publish(`${name}.in`, payload));
  await jsm.streams.delete(name);
  await nc.close();
  return rate(N, ms);
}

async function libraryPublish(nats: NatsCluster): Promise<number> {
  const ws = await Waystation.open(
    {
      dataDir: './data',
      ...clusterConfig(nats, `b${randomBytes(3).toString('hex')}`, 'bench'),
      streams: { s: {} },
    },
    { baseDir: await tempDir('ws-bench-cluster-'), logger: silent },
  );
  const ms = await lanes(C, N, () => ws.publish('s', payload));
  await ws.close();
  return rate(N, ms);
}

async function httpBatchPublish(nats: NatsCluster): Promise<number> {
  const dir = await tempDir('ws-bench-cluster-');
  const configPath = join(dir, 'waystation.yaml');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(
    configPath,
    stringify({
      dataDir: './data',
      ...clusterConfig(nats, `b${randomBytes(3).toString('hex')}`, 'bench'),
      streams: { s: {} },
    }),
  );
  const gw = await Gateway.start({ configPath, listen: '127.0.0.1:0', logger: silent });
  const line = `${JSON.stringify({ payload: payload.toString() })}\n`;
  const body = line.repeat(100);
  const batches = Math.ceil(N / 100);
  const ms = await lanes(Math.max(1, C / 4), batches, async () => {
    const res = await fetch(`${gw.url}/v1/streams/s/messages:batch`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-ndjson' },
    });
    if (res.status !== 202) throw new Error(`batch answered ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  });
  await gw.close();
  return rate(batches * 100, ms);
}

async function drain(nats: NatsCluster): Promise<{ waystation: number; baseline: number }> {
  const prefix = `b${randomBytes(3).toString('hex')}`;
  const ws = await Waystation.open(
    {
      dataDir: './data',
      ...clusterConfig(nats, prefix, 'bench'),
      targets: { out: { type: 'null' } },
      routes: { d: { streams: ['s'], target: 'out', batch: { maxMessages: 1000, maxBytes: '4MiB' } } },
    },
    { baseDir: await tempDir('ws-bench-cluster-'), logger: silent },
  );
  await new Promise((r) => setTimeout(r, 500));
  await ws.route('d').store();
  const batch = Array.from({ length: 500 }, () => ({ payload }));
  for (let sent = 0; sent < N; sent += batch.length) await ws.publishBatch('s', batch);
  const started = performance.now();
  await ws.route('d').forward();
  for (;;) {
    if ((await ws.route('d').snapshot()).forwarded >= N) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const waystation = rate(N, performance.now() - started);
  await ws.close();

  // Baseline: N single messages read back with an ordered consumer.
  const nc = await connect({ servers: nats.urls });
  const jsm = await jetstreamManager(nc);
  const name = `read_${randomBytes(3).toString('hex')}`;
  await jsm.streams.add({ name, subjects: [`${name}.in`], storage: StorageType.File, num_replicas: 3 });
  const js = jetstream(nc);
  await lanes(C, N, () => js.publish(`${name}.in`, payload));
  const consumer = await js.consumers.get(name, { deliver_policy: DeliverPolicy.All });
  const t0 = performance.now();
  const messages = await consumer.consume();
  let seen = 0;
  for await (const _m of messages) if (++seen >= N) break;
  const baseline = rate(N, performance.now() - t0);
  await jsm.streams.delete(name);
  await nc.close();
  return { waystation, baseline };
}

interface Proc {
  proc: ChildProcess;
  url: string;
}

async function startNode(config: string): Promise<Proc> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', join(repo, 'src/cli/main.ts'), 'start', '--config', config],
    {
      cwd: repo,
      env: { ...process.env, WAYSTATION_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('node did not start')), 30_000);
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const m = /"url":"([^"]+)"/.exec(l);
      if (m && l.includes('listening')) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  return { proc, url };
}

async function failover(nats: NatsCluster): Promise<number[]> {
  let lastDelivery = 0;
  const receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      lastDelivery = performance.now();
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const port = (receiver.address() as AddressInfo).port;
  const prefix = `f${randomBytes(3).toString('hex')}`;
  const configs = new Map<string, string>();
  const { writeFile } = await import('node:fs/promises');
  for (const id of ['node-a', 'node-b']) {
    const dir = await tempDir('ws-bench-failover-');
    const path = join(dir, 'waystation.yaml');
    await writeFile(
      path,
      stringify({
        dataDir: './data',
        http: { listen: '127.0.0.1:0' },
        ...clusterConfig(nats, prefix, id),
        targets: { sink: { type: 'http', url: `http://127.0.0.1:${port}/in` } },
        routes: { r: { streams: ['s'], target: 'sink' } },
      }),
    );
    configs.set(id, path);
  }
  const nodes = new Map<string, Proc>();
  for (const [id, path] of configs) nodes.set(id, await startNode(path));
  const ownerOf = async (p: Proc): Promise<string | null> => {
    const view = (await (await fetch(`${p.url}/v1/cluster`)).json()) as {
      owners: Record<string, string | null>;
    };
    return view.owners.r ?? null;
  };
  const times: number[] = [];
  for (let k = 0; k < KILLS; k++) {
    let owner: string | null = null;
    while (owner === null) {
      owner = await ownerOf([...nodes.values()][0]!);
      if (owner === null) await new Promise((r) => setTimeout(r, 100));
    }
    const survivorId = [...nodes.keys()].find((id) => id !== owner)!;
    const survivor = nodes.get(survivorId)!;
    const victim = nodes.get(owner)!;
    const exited = new Promise((r) => victim.proc.once('exit', r));
    victim.proc.kill('SIGKILL');
    const killedAt = performance.now();
    await exited;
    nodes.delete(owner);
    // Publish to the survivor every 20 ms until one of those is delivered.
    for (;;) {
      await fetch(`${survivor.url}/v1/streams/s/messages`, { method: 'POST', body: 'tick' });
      if (lastDelivery > killedAt) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    times.push(Math.round(lastDelivery - killedAt));
    process.stdout.write(`  kill ${k + 1}: ${times.at(-1)} ms\n`);
    nodes.set(owner, await startNode(configs.get(owner)!));
    // Let placement settle before the next kill.
    await new Promise((r) => setTimeout(r, 3_000));
  }
  for (const p of nodes.values()) p.proc.kill('SIGKILL');
  receiver.close();
  return times;
}

const nats = await NatsCluster.start();
try {
  process.stdout.write(`nats-server ${nats.version}, 3 servers, R3; ${N} × 1 KiB, concurrency ${C}\n`);
  const baseline = await baselinePublish(nats);
  process.stdout.write(`baseline  nats.js publish (PubAck each)      ${baseline} msgs/s\n`);
  const library = await libraryPublish(nats);
  process.stdout.write(
    `library   ws.publish                          ${library} msgs/s  ratio ${(library / baseline).toFixed(2)}\n`,
  );
  const http = await httpBatchPublish(nats);
  process.stdout.write(
    `http      :batch ×100                         ${http} msgs/s  ratio ${(http / baseline).toFixed(2)}\n`,
  );
  const d = await drain(nats);
  process.stdout.write(
    `drain     null target ${d.waystation} msgs/s; nats.js ordered consumer ${d.baseline} msgs/s  ratio ${(d.waystation / d.baseline).toFixed(2)}\n`,
  );
  const times = KILLS > 0 ? await failover(nats) : [];
  const failoverMs = times.length > 0 ? median(times) : undefined;
  if (failoverMs !== undefined)
    process.stdout.write(`failover  median of ${times.length} kills: ${failoverMs} ms (leaseTtl 2s)\n`);
  clearInterval(sampler);
  const peakRssMb = Math.round(peakRss / 1024 / 1024);
  process.stdout.write(`peak RSS ${peakRssMb} MB\n`);
  process.stdout.write(
    `RESULT ${JSON.stringify({
      baseline_msgs_per_s: baseline,
      library_msgs_per_s: library,
      library_ratio: Number((library / baseline).toFixed(2)),
      http_batch_msgs_per_s: http,
      http_batch_ratio: Number((http / baseline).toFixed(2)),
      drain_msgs_per_s: d.waystation,
      drain_baseline_msgs_per_s: d.baseline,
      drain_ratio: Number((d.waystation / d.baseline).toFixed(2)),
      failover_median_ms: failoverMs,
      failover_ms: times,
      peak_rss_mb: peakRssMb,
    })}\n`,
  );
} finally {
  await nats.stop();
}
