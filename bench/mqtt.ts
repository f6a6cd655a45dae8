/**
 * npm run bench:mqtt — QoS 1 publish throughput into a store-and-forward topic, each PUBACK sent
 * only once the message is durable (storage.fsync: always), against the Mosquitto broker already
 * running on 127.0.0.1:1883 (QoS 1, not durable per message).
 *
 * In one run, with the same client (MQTT.js, MQTT 3.1.1), the same N messages (default 50 000 ×
 * 1 KiB), the same window of W unacknowledged publishes (default 1000) over C connections
 * (default 4), first Mosquitto then Waystation (in its own process, the build in dist/ as
 * `npm start` runs it; the npm script builds first). Prints both and the ratio;
 * last line `RESULT {json}` with qos1_msgs_per_s, mosquitto_qos1_msgs_per_s, ratio.
 * Flags: --messages N, --window W, --clients C, --mosquitto URL, --dir DIR,
 * --profile DIR (writes a CPU profile of the Waystation process there).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const N = Number(args.get('messages') ?? 50_000);
const WINDOW = Number(args.get('window') ?? 1000);
const CLIENTS = Number(args.get('clients') ?? 4);
const REPEATS = Number(args.get('repeats') ?? 3);
const MOSQUITTO = args.get('mosquitto') ?? 'mqtt://127.0.0.1:1883';
const repo = fileURLToPath(new URL('..', import.meta.url));
const root = args.get('dir') ?? join(repo, '.bench-data', 'mqtt');
const PROFILE = args.get('profile');
const payload = Buffer.alloc(1024, 0x61);

async function connectAll(url: string): Promise<MqttClient[]> {
  return Promise.all(
    Array.from({ length: CLIENTS }, (_, i) => {
      const c = mqtt.connect(url, {
        clientId: `bench-${process.pid}-${i}`,
        reconnectPeriod: 0,
        protocolVersion: 4,
      });
      return new Promise<MqttClient>((resolve, reject) => {
        c.once('connect', () => resolve(c));
        c.once('error', reject);
      });
    }),
  );
}

/** Publishes N messages QoS 1 keeping WINDOW unacknowledged (split over the clients); msgs/s. */
async function load(url: string, topic: string, count: number): Promise<number> {
  const clients = await connectAll(url);
  await Promise.all(clients.map((c) => c.publishAsync(topic, payload, { qos: 1 })));
  const perClient = Math.floor(WINDOW / CLIENTS);
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    clients.map(async (c) => {
      const lane = async () => {
        while (next < count) {
          next++;
          await c.publishAsync(topic, payload, { qos: 1 });
        }
      };
      await Promise.all(Array.from({ length: perClient }, lane));
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await Promise.all(clients.map((c) => c.endAsync()));
  return count / seconds;
}

async function startWaystation(): Promise<{ url: string; proc: ChildProcess }> {
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const config = join(root, 'waystation.yaml');
  await writeFile(
    config,
    [
      'dataDir: ./data',
      'http: { listen: "127.0.0.1:0" }',
      'storage: { fsync: always }',
      'mqtt:',
      '  listen: "127.0.0.1:0"',
      '  allowAnonymous: true',
      '  receiveMaximum: 1000',
      '  storeAndForwardTopics: [{ topic: "bench/#", stream: bench }]',
    ].join('\n'),
  );
  const proc = spawn(
    process.execPath,
    [
      ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`] : []),
      join(repo, 'dist/cli/main.js'),
      'start',
      '--config',
      config,
    ],
    { env: { ...process.env, WAYSTATION_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`waystation exited with ${code}`)));
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const m = /"tcp":"(mqtt:\/\/[^"]+)"/.exec(l);
      if (m) resolve(m[1]!);
    });
  });
  return { url, proc };
}

async function main(): Promise<void> {
  console.log(
    `bench:mqtt — ${N} × 1 KiB QoS 1 publishes, window ${WINDOW} over ${CLIENTS} connections, ${REPEATS} pairs`,
  );
  try {
    await load(MOSQUITTO, `waystation-bench/${process.pid}/warmup`, Math.min(N, 5000));
  } catch (err) {
    throw new Error(
      `Mosquitto at ${MOSQUITTO} is not reachable (${(err as Error).message}); start it: mosquitto -d`,
    );
  }
  const ws = await startWaystation();
  const pairs: { mosquitto: number; waystation: number }[] = [];
  try {
    await load(ws.url, 'bench/warmup', Math.min(N, 5000));
    for (let r = 0; r < REPEATS; r++) {
      // Alternate which side goes first, so drift on a shared machine does not favour one.
      const runMosquitto = () => load(MOSQUITTO, `waystation-bench/${process.pid}/${r}`, N);
      const runWaystation = () => load(ws.url, `bench/${r}`, N);
      let mosquitto: number;
      let waystation: number;
      if (r % 2 === 0) {
        mosquitto = await runMosquitto();
        waystation = await runWaystation();
      } else {
        waystation = await runWaystation();
        mosquitto = await runMosquitto();
      }
      pairs.push({ mosquitto, waystation });
      console.log(
        `pair ${r + 1}: mosquitto ${Math.round(mosquitto)} msgs/s (QoS 1, in memory), waystation ${Math.round(waystation)} msgs/s (QoS 1, durable PUBACK), ratio ${(waystation / mosquitto).toFixed(3)}`,
      );
    }
  } finally {
    ws.proc.kill('SIGTERM');
    await new Promise((r) => ws.proc.once('exit', r));
  }
  const median = pairs.sort((a, b) => a.waystation / a.mosquitto - b.waystation / b.mosquitto)[
    Math.floor(pairs.length / 2)
  ]!;
  const ratio = median.waystation / median.mosquitto;
  console.log(`median pair: ratio ${ratio.toFixed(3)} (target ≥ 0.5)`);
  await rm(root, { recursive: true, force: true });
  console.log(
    `RESULT ${JSON.stringify({
      qos1_msgs_per_s: Math.round(median.waystation),
      mosquitto_qos1_msgs_per_s: Math.round(median.mosquitto),
      ratio: Number(ratio.toFixed(3)),
    })}`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
