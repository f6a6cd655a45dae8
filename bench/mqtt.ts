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
 *
 * Then the routing case (issue 13): the same load on an ordinary topic
 * (`devices/bench-<r>/telemetry`, which no subscription matches) against two fresh Waystation
 * processes, one with 10 idle sessions and one with S (default 100 000), each session holding a
 * distinct subscription (`devices/<i>/cmd` or `devices/<i>/+/config`). The sessions are
 * persistent (3.1.1, clean: false) and disconnected: each is one CONNECT + SUBSCRIBE + DISCONNECT
 * on its own socket, cheaper than S open sockets. R pairs alternate between the two processes,
 * each run bounded to --scale-seconds (default 15); prints the median throughput ratio S / 10,
 * the same by the broker's CPU time per message (less sensitive to other load on the machine),
 * the broker's RSS per idle session (VmRSS before and after creating them) and its peak RSS
 * (VmHWM); RESULT adds scale_ratio, scale_cpu_ratio, rss_per_session_bytes, peak_rss_mb, and the
 * headline broker's peak as headline_peak_rss_mb.
 * Flags: --messages N, --window W, --clients C, --repeats R, --mosquitto URL, --dir DIR,
 * --sessions S, --scale-seconds T, --only headline|scale, --fsync always|never (never: the
 * cost of the durable PUBACK, for diagnosis),
 * --profile DIR (writes a CPU profile of the Waystation process there).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';

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
const SESSIONS = Number(args.get('sessions') ?? 100_000);
const SCALE_SECONDS = Number(args.get('scale-seconds') ?? 15);
const ONLY = args.get('only');
// never: what the PUBACK's wait for the fdatasync costs (diagnosis; the headline is always).
const FSYNC = args.get('fsync') ?? 'always';
if (FSYNC !== 'always' && FSYNC !== 'never') throw new Error('--fsync is always or never');
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

/**
 * Publishes N messages QoS 1 keeping WINDOW unacknowledged (split over the clients); msgs/s.
 * With `seconds`, no publish starts after that long (a slow broker ends the run early).
 */
async function load(
  url: string,
  topic: string,
  count: number,
  seconds = Number.POSITIVE_INFINITY,
): Promise<number> {
  const { published, took } = await timedLoad(url, topic, count, seconds);
  return published / took;
}

async function timedLoad(
  url: string,
  topic: string,
  count: number,
  seconds: number,
): Promise<{ published: number; took: number }> {
  const clients = await connectAll(url);
  await Promise.all(clients.map((c) => c.publishAsync(topic, payload, { qos: 1 })));
  const perClient = Math.floor(WINDOW / CLIENTS);
  let next = 0;
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  await Promise.all(
    clients.map(async (c) => {
      const lane = async () => {
        while (next < count && elapsed() < seconds) {
          next++;
          await c.publishAsync(topic, payload, { qos: 1 });
        }
      };
      await Promise.all(Array.from({ length: perClient }, lane));
    }),
  );
  const took = elapsed();
  await Promise.all(clients.map((c) => c.endAsync()));
  return { published: next, took };
}

/**
 * Leaves persistent sessions `idle-<from>` … `idle-<to - 1>` behind, each with one distinct
 * subscription: CONNECT (3.1.1, clean: false), SUBSCRIBE, DISCONNECT on a socket of its own, 200
 * at a time. The broker closes the connection after DISCONNECT; answering its FIN with a reset
 * leaves no socket in TIME_WAIT, so 100 000 of them do not exhaust the loopback's ports.
 */
async function createIdleSessions(url: string, from: number, to: number): Promise<void> {
  const { hostname, port } = new URL(url);
  const one = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const socket = tcpConnect({ host: hostname, port: Number(port), allowHalfOpen: true });
      const topic = i % 2 === 0 ? `devices/${i}/cmd` : `devices/${i}/+/config`;
      socket.once('connect', () =>
        socket.write(
          Buffer.concat([
            mqttPacket.generate({
              cmd: 'connect',
              protocolVersion: 4,
              clientId: `idle-${i}`,
              clean: false,
              keepalive: 0,
            }),
            mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] }),
            mqttPacket.generate({ cmd: 'disconnect' }),
          ]),
        ),
      );
      socket.resume();
      socket.once('end', () => socket.resetAndDestroy());
      socket.once('close', () => resolve());
      socket.once('error', reject);
    });
  let next = from;
  const worker = async () => {
    while (next < to) await one(next++);
  };
  await Promise.all(Array.from({ length: 200 }, worker));
}

/** CPU time of a process, all its threads (V8's GC helpers included), in seconds. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": utime and stime are the 12th and 13th, in USER_HZ (100 on Linux).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A field of /proc/<pid>/status in MB (VmRSS: now, VmHWM: peak). */
async function procMb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return kb / 1024;
}

async function startWaystation(dir: string): Promise<{ url: string; proc: ChildProcess }> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'waystation.yaml');
  await writeFile(
    config,
    [
      'dataDir: ./data',
      'http: { listen: "127.0.0.1:0" }',
      `storage: { fsync: ${FSYNC} }`,
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

/** The durable headline: Mosquitto / Waystation pairs; the median pair's figures. */
async function headline(): Promise<Record<string, number>> {
  let headlinePeakMb = 0;
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
  const ws = await startWaystation(join(root, 'headline'));
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
    headlinePeakMb = await procMb(ws.proc.pid!, 'VmHWM');
  } finally {
    await stop(ws.proc);
  }
  console.log(`Waystation peak RSS ${headlinePeakMb.toFixed(0)} MB`);
  const median = pairs.sort((a, b) => a.waystation / a.mosquitto - b.waystation / b.mosquitto)[
    Math.floor(pairs.length / 2)
  ]!;
  const ratio = median.waystation / median.mosquitto;
  console.log(`median pair: ratio ${ratio.toFixed(3)} (target ≥ 0.5)`);
  return {
    qos1_msgs_per_s: Math.round(median.waystation),
    mosquitto_qos1_msgs_per_s: Math.round(median.mosquitto),
    ratio: Number(ratio.toFixed(3)),
    headline_peak_rss_mb: Math.round(headlinePeakMb),
  };
}

/**
 * Routing with 10 idle sessions against SESSIONS, in two gateway processes side by side: the
 * runs alternate between them, so a slow spell of the shared machine hits both. Per pair the
 * throughput ratio and the broker's CPU per message; RSS per idle session from the second.
 */
async function scale(): Promise<Record<string, number>> {
  console.log(
    `routing: QoS 1 publishes to a topic no subscription matches, 10 against ${SESSIONS} idle persistent sessions, ${REPEATS} pairs of at most ${N} messages or ${SCALE_SECONDS} s`,
  );
  const few = await startWaystation(join(root, 'scale-10'));
  const many = await startWaystation(join(root, 'scale-many')).catch(async (err: unknown) => {
    await stop(few.proc);
    throw err;
  });
  const run = async (ws: { url: string; proc: ChildProcess }, r: number) => {
    const cpu = await cpuSeconds(ws.proc.pid!);
    const { published, took } = await timedLoad(ws.url, `devices/bench-${r}/telemetry`, N, SCALE_SECONDS);
    return { rate: published / took, cpuUs: (((await cpuSeconds(ws.proc.pid!)) - cpu) * 1e6) / published };
  };
  try {
    await createIdleSessions(few.url, 0, 10);
    await createIdleSessions(many.url, 0, 10);
    const rssBefore = await procMb(many.proc.pid!, 'VmRSS');
    const started = Date.now();
    await createIdleSessions(many.url, 10, SESSIONS);
    const rssAfter = await procMb(many.proc.pid!, 'VmRSS');
    console.log(
      `created ${SESSIONS - 10} sessions in ${((Date.now() - started) / 1000).toFixed(1)} s; broker RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MB`,
    );
    // Untimed, as in the headline; on the second it also collects what the connections left.
    for (const ws of [few, many])
      await load(ws.url, 'devices/bench-warmup/telemetry', Math.min(N, 5000), SCALE_SECONDS);
    const pairs: { ratio: number; cpuRatio: number }[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const a = r % 2 === 0 ? await run(few, r) : undefined;
      const b = await run(many, r);
      const f = a ?? (await run(few, r));
      pairs.push({ ratio: b.rate / f.rate, cpuRatio: f.cpuUs / b.cpuUs });
      console.log(
        `pair ${r + 1}: 10 sessions ${Math.round(f.rate)} msgs/s (${f.cpuUs.toFixed(1)} µs CPU/msg), ${SESSIONS} sessions ${Math.round(b.rate)} msgs/s (${b.cpuUs.toFixed(1)} µs CPU/msg), ratio ${(b.rate / f.rate).toFixed(3)}`,
      );
    }
    const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const ratio = median(pairs.map((p) => p.ratio));
    const cpuRatio = median(pairs.map((p) => p.cpuRatio));
    const peak = await procMb(many.proc.pid!, 'VmHWM');
    const perSession = ((rssAfter - rssBefore) * 1024 * 1024) / (SESSIONS - 10);
    console.log(
      `median ratio ${SESSIONS} / 10 sessions ${ratio.toPrecision(3)} (target ≥ 0.8), by broker CPU per message ${cpuRatio.toPrecision(3)}; RSS per idle session ${Math.round(perSession)} bytes; peak RSS ${peak.toFixed(0)} MB`,
    );
    return {
      scale_ratio: Number(ratio.toPrecision(3)),
      scale_cpu_ratio: Number(cpuRatio.toPrecision(3)),
      rss_per_session_bytes: Math.round(perSession),
      peak_rss_mb: Math.round(peak),
    };
  } finally {
    await Promise.all([stop(few.proc), stop(many.proc)]);
  }
}

async function stop(proc: ChildProcess): Promise<void> {
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
}

async function main(): Promise<void> {
  const result = {
    ...(ONLY === 'scale' ? {} : await headline()),
    ...(ONLY === 'headline' ? {} : await scale()),
  };
  await rm(root, { recursive: true, force: true });
  console.log(`RESULT ${JSON.stringify(result)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
