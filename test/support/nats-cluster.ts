/**
 * A real nats-server JetStream cluster for tests: N servers (default 3) on free loopback ports
 * (client, cluster route and HTTP monitoring port each), each with its own store directory in
 * a temporary directory and `jetstream { sync_interval: always }` (docs/cluster.md says why).
 *
 * The binary must be nats-server >= 2.11: `$WAYSTATION_NATS_SERVER`, else the one
 * scripts/install-nats-server.sh caches. Missing or too old, `NatsCluster.start` fails naming
 * the script to run. Every server is SIGKILLed when the test process exits, so a failed or
 * interrupted test never leaves servers behind; call `stop()` in `afterAll` all the same.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export const MIN_NATS_SERVER_VERSION = '2.11.0';
const INSTALL_HINT =
  'run scripts/install-nats-server.sh (or set WAYSTATION_NATS_SERVER to a nats-server >= 2.11)';

export interface NatsServerNode {
  readonly index: number;
  /** `server_name`, as JetStream reports it in cluster and leader info. */
  readonly name: string;
  readonly clientPort: number;
  readonly clusterPort: number;
  readonly httpPort: number;
  readonly url: string;
  readonly storeDir: string;
  readonly configFile: string;
  readonly logFile: string;
}

export interface NatsClusterOptions {
  /** Number of servers. Default 3. */
  size?: number;
  /** Path of the nats-server binary. Default: see `natsServerBinary()`. */
  binary?: string;
  /** How long to wait for the servers and a JetStream meta leader. Default 20 000 ms. */
  readyTimeoutMs?: number;
  /** Clients must connect with TLS, the servers presenting this certificate (PEM paths). */
  tls?: { cert: string; key: string };
}

/** `nats-server: v2.15.1` → `[2, 15, 1]`. */
function parseVersion(text: string): number[] | undefined {
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

function versionAtLeast(v: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    const a = v[i] ?? 0;
    const b = min[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

/** The cluster tests' nats-server binary and its version; throws naming the install script. */
export function natsServerBinary(): { path: string; version: string } {
  const cache =
    process.env.WAYSTATION_NATS_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'waystation', 'nats-server');
  const path = process.env.WAYSTATION_NATS_SERVER ?? join(cache, 'bin', 'nats-server');
  if (!existsSync(path)) throw new Error(`nats-server not found at ${path}: ${INSTALL_HINT}`);
  let out: string;
  try {
    out = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  } catch (err) {
    throw new Error(`${path} --version failed (${(err as Error).message}): ${INSTALL_HINT}`);
  }
  const v = parseVersion(out);
  const min = parseVersion(MIN_NATS_SERVER_VERSION)!;
  if (!v || !versionAtLeast(v, min)) {
    throw new Error(
      `${path} is ${out.trim()}, the cluster tests need >= ${MIN_NATS_SERVER_VERSION}: ${INSTALL_HINT}`,
    );
  }
  return { path, version: v.join('.') };
}

/** `count` distinct free loopback ports (all held open until all are chosen). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<import('node:net').Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const addr = s.address();
    if (addr === null || typeof addr === 'string') throw new Error('no port');
    return addr.port;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function httpJson(port: number, path: string): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) });
  return res.json();
}

export class NatsCluster {
  readonly nodes: readonly NatsServerNode[];
  readonly version: string;
  private readonly binary: string;
  private readonly root: string;
  private readonly readyTimeoutMs: number;
  private readonly procs: (ChildProcess | undefined)[];

  private constructor(
    binary: string,
    version: string,
    root: string,
    nodes: NatsServerNode[],
    readyMs: number,
  ) {
    this.binary = binary;
    this.version = version;
    this.root = root;
    this.nodes = nodes;
    this.readyTimeoutMs = readyMs;
    this.procs = nodes.map(() => undefined);
  }

  /** Starts the servers and resolves once every one is healthy and a meta leader is elected. */
  static async start(options: NatsClusterOptions = {}): Promise<NatsCluster> {
    const size = options.size ?? 3;
    const { path, version } = options.binary ? { path: options.binary, version: '?' } : natsServerBinary();
    const root = await mkdtemp(join(tmpdir(), 'ws-nats-cluster-'));
    const ports = await freePorts(size * 3);
    const nodes: NatsServerNode[] = [];
    for (let i = 0; i < size; i++) {
      const dir = join(root, `n${i + 1}`);
      nodes.push({
        index: i,
        name: `n${i + 1}`,
        clientPort: ports[i * 3]!,
        clusterPort: ports[i * 3 + 1]!,
        httpPort: ports[i * 3 + 2]!,
        url: `nats://127.0.0.1:${ports[i * 3]}`,
        storeDir: join(dir, 'jetstream'),
        configFile: join(dir, 'server.conf'),
        logFile: join(dir, 'server.log'),
      });
    }
    const routes = nodes.map((n) => `nats-route://127.0.0.1:${n.clusterPort}`);
    for (const n of nodes) {
      await mkdir(n.storeDir, { recursive: true });
      await writeFile(n.configFile, NatsCluster.config(n, routes, options.tls));
    }
    const cluster = new NatsCluster(path, version, root, nodes, options.readyTimeoutMs ?? 20_000);
    try {
      for (const n of nodes) cluster.spawn(n.index);
      await cluster.waitReady();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  private static config(n: NatsServerNode, routes: string[], tls?: { cert: string; key: string }): string {
    return [
      `server_name: ${n.name}`,
      `listen: 127.0.0.1:${n.clientPort}`,
      ...(tls
        ? ['tls {', `  cert_file: ${JSON.stringify(tls.cert)}`, `  key_file: ${JSON.stringify(tls.key)}`, '}']
        : []),
      `http: 127.0.0.1:${n.httpPort}`,
      'jetstream {',
      `  store_dir: ${JSON.stringify(n.storeDir)}`,
      '  sync_interval: always',
      '}',
      // One server alone runs without a cluster block (it would wait for routes forever).
      ...(routes.length < 2
        ? []
        : [
            'cluster {',
            '  name: waystation-test',
            `  listen: 127.0.0.1:${n.clusterPort}`,
            `  routes: [${routes.map((r) => JSON.stringify(r)).join(', ')}]`,
            '}',
          ]),
      '',
    ].join('\n');
  }

  /** Client URLs of all servers (also those currently down). */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  isRunning(index: number): boolean {
    return this.procs[index] !== undefined;
  }

  private spawn(index: number): void {
    const n = this.nodes[index]!;
    const child = spawn(this.binary, ['-c', n.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(n.logFile, { flags: 'a' });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    live.add(child);
    child.once('exit', () => {
      live.delete(child);
      if (this.procs[index] === child) this.procs[index] = undefined;
    });
    // 'close' comes after the child's output is drained ('exit' may come before it): only then
    // can the log end without a late write after its end.
    child.once('close', () => log.end());
    this.procs[index] = child;
  }

  /** The last lines of a server's log (for failure messages). */
  async logTail(index: number, lines = 20): Promise<string> {
    const text = await readFile(this.nodes[index]!.logFile, 'utf8').catch(() => '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** The meta leader's server name as a running server sees it, if one is elected. */
  async metaLeader(): Promise<string | undefined> {
    for (const n of this.nodes) {
      if (!this.isRunning(n.index)) continue;
      try {
        const jsz = (await httpJson(n.httpPort, '/jsz')) as { meta_cluster?: { leader?: string } };
        if (jsz.meta_cluster?.leader) return jsz.meta_cluster.leader;
      } catch {
        // not up yet
      }
    }
    return undefined;
  }

  /** Resolves once every running server answers /healthz ok and a meta leader is elected. */
  async waitReady(timeoutMs = this.readyTimeoutMs): Promise<void> {
    const end = Date.now() + timeoutMs;
    let last = 'no server answered';
    for (;;) {
      let healthy = true;
      for (const n of this.nodes) {
        if (!this.isRunning(n.index)) continue;
        try {
          const h = (await httpJson(n.httpPort, '/healthz')) as { status?: string; error?: string };
          if (h.status !== 'ok') {
            healthy = false;
            last = `${n.name}: ${h.error ?? h.status}`;
          }
        } catch (err) {
          healthy = false;
          last = `${n.name}: ${(err as Error).message}`;
        }
      }
      if (healthy && (this.nodes.length < 2 || (await this.metaLeader()) !== undefined)) return;
      if (Date.now() > end) {
        const tails = await Promise.all(
          this.nodes.map(async (n) => `--- ${n.name}\n${await this.logTail(n.index)}`),
        );
        throw new Error(`nats cluster not ready after ${timeoutMs} ms (${last})\n${tails.join('\n')}`);
      }
      await sleep(100);
    }
  }

  /** SIGKILLs one server and resolves once it has exited. */
  async kill(index: number): Promise<void> {
    const child = this.procs[index];
    if (!child) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts a stopped (killed) server again on the same ports and store; waits until ready. */
  async restart(index: number): Promise<void> {
    if (this.isRunning(index)) throw new Error(`${this.nodes[index]!.name} is running`);
    this.spawn(index);
    await this.waitReady();
  }

  /** The index of the node with this `server_name`. */
  indexOf(name: string): number {
    const i = this.nodes.findIndex((n) => n.name === name);
    if (i < 0) throw new Error(`no server named ${name}`);
    return i;
  }

  /** Stops every server (SIGTERM, SIGKILL after 5 s) and removes the temporary directory. */
  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(async (child) => {
        if (!child) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }),
    );
    await rm(this.root, { recursive: true, force: true });
  }
}
