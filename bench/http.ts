/**
 * npm run bench:http — publish throughput of the gateway's HTTP API, durable (fsync: always).
 *
 * In one run, each server in its own process, load from autocannon in this one:
 *   1. baseline: a bare Fastify handler that answers 202 without storing (bench/bare-server.mjs);
 *   2. the gateway, single-message publish (1 KiB bodies), answered 202 once fsynced;
 *   3. the gateway, NDJSON batch publish (100 messages of 1 KiB per request).
 * Prints a table and last `RESULT {json}` with single_req_per_s, bare_req_per_s,
 * batch_msgs_per_s, ratio_single_vs_bare, peak_rss_mb (the gateway's VmHWM; bare_peak_rss_mb the baseline's).
 * Flags: --seconds S (default 10), --connections C (default 64), --dir DIR.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const SECONDS = Number(args.get('seconds') ?? 10);
const CONNECTIONS = Number(args.get('connections') ?? 64);
const repo = fileURLToPath(new URL('..', import.meta.url));
const root = args.get('dir') ?? join(repo, '.bench-data', 'http');

const payload = 'x'.repeat(1024);
const batchBody = `${Array.from({ length: 100 }, () => JSON.stringify({ payload })).join('\n')}\n`;

async function startBare(): Promise<{ url: string; proc: ChildProcess }> {
  const proc = fork(join(repo, 'bench', 'bare-server.mjs'), [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve) => proc.once('message', (m) => resolve(Number(m))));
  return { url: `http://127.0.0.1:${port}`, proc };
}

async function startGateway(): Promise<{ url: string; proc: ChildProcess }> {
  await mkdir(root, { recursive: true });
  const config = join(root, 'waystation.yaml');
  await writeFile(
    config,
    [
      'dataDir: ./data',
      'http: { listen: "127.0.0.1:0" }',
      'storage: { fsync: always }',
      'targets: { sink: { type: "null" } }',
      'routes: { drain: { streams: [bench], target: sink, batch: { maxMessages: 1000 } } }',
    ].join('\n'),
  );
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', join(repo, 'src/cli/main.ts'), 'start', '--config', config],
    {
      env: { ...process.env, WAYSTATION_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const url = await new Promise<string>((resolve) => {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const m = /"url":"([^"]+)"/.exec(l);
      if (m && l.includes('listening')) resolve(m[1]!);
    });
  });
  return { url, proc };
}

async function load(
  url: string,
  path: string,
  body: string,
  contentType: string,
): Promise<{ rps: number; p99: number; errors: number }> {
  const result = await autocannon({
    url: `${url}${path}`,
    method: 'POST',
    body,
    headers: { 'content-type': contentType },
    connections: CONNECTIONS,
    duration: SECONDS,
  });
  const non2xx = result.non2xx + result.errors + result.timeouts;
  return { rps: result.requests.average, p99: result.latency.p99, errors: non2xx };
}

/** A process's peak resident set (VmHWM), MB. */
async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]) / 1024);
}

await rm(root, { recursive: true, force: true });
const bare = await startBare();
const bareResult = await load(bare.url, '/v1/streams/bench/messages', payload, 'application/octet-stream');
const barePeakMb = await peakRssMb(bare.proc.pid!);
bare.proc.kill();

const gw = await startGateway();
const single = await load(gw.url, '/v1/streams/bench/messages', payload, 'application/octet-stream');
const batch = await load(gw.url, '/v1/streams/bench/messages:batch', batchBody, 'application/x-ndjson');
const gatewayPeakMb = await peakRssMb(gw.proc.pid!);
gw.proc.kill('SIGTERM');
await new Promise((r) => gw.proc.once('exit', r));
await rm(root, { recursive: true, force: true });

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
console.log(`\n${CONNECTIONS} connections, ${SECONDS} s per case, 1 KiB payloads, fsync: always`);
console.log('case                                  req/s     msgs/s   p99 ms   non-2xx');
const row = (name: string, r: { rps: number; p99: number; errors: number }, perReq: number) =>
  console.log(
    `${name.padEnd(36)} ${fmt(r.rps).padStart(7)} ${fmt(r.rps * perReq).padStart(10)} ${String(r.p99).padStart(8)} ${String(r.errors).padStart(9)}`,
  );
row('bare Fastify 202 (baseline)', bareResult, 1);
row('gateway single publish (durable)', single, 1);
row('gateway NDJSON batch x100 (durable)', batch, 100);
const ratio = single.rps / bareResult.rps;
console.log(`\nratio_single_vs_bare ${ratio.toFixed(3)} (target >= 0.5: ${ratio >= 0.5 ? 'PASS' : 'MISS'})`);
console.log(`peak RSS: gateway ${gatewayPeakMb} MB, bare Fastify ${barePeakMb} MB`);
console.log(
  `RESULT ${JSON.stringify({
    connections: CONNECTIONS,
    seconds: SECONDS,
    single_req_per_s: Math.round(single.rps),
    bare_req_per_s: Math.round(bareResult.rps),
    batch_msgs_per_s: Math.round(batch.rps * 100),
    ratio_single_vs_bare: Number(ratio.toFixed(3)),
    single_p99_ms: single.p99,
    errors: single.errors + batch.errors + bareResult.errors,
    peak_rss_mb: gatewayPeakMb,
    bare_peak_rss_mb: barePeakMb,
  })}`,
);
