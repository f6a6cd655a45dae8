/**
 * The composition root of the library: `Waystation.open(config)` parses the configuration,
 * opens the store, builds targets and the delivery engine, and exposes the library API
 * (docs/library.md). The gateway program wraps this object with the HTTP API and the CLI.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { type Logger, pino } from 'pino';
import type { ClusterBackend } from './cluster/cluster-backend.js';
import type { ClusterView, RouteCommand } from './cluster/cluster-node.js';
import { parseConfig, type ResolvedConfig } from './config/resolve.js';
import type { ClusterConfig, WaystationConfig, WaystationConfigInput } from './config/schema.js';
import { parseDuration } from './config/units.js';
import type { Clock } from './delivery/clock.js';
import { DeliveryEngine, type Receipt } from './delivery/engine.js';
import type { RouteRunner, RouteSnapshot } from './delivery/route-runner.js';
import type { Target } from './delivery/target.js';
import {
  ArgumentError,
  ClusterRouteUnownedError,
  ErrorCodes,
  InvalidArgumentError,
  ShuttingDownError,
  UnknownMessageError,
  WaystationError,
} from './errors.js';
import type { LogOptions, StorageFileSystem } from './log/index.js';
import type { MessageStore } from './store/backend.js';
import { DataDirLock } from './store/data-dir-lock.js';
import type { DeadLetter } from './store/dead-letters.js';
import type { StoredMessage } from './store/message.js';
import { assertMqttHeaders } from './store/mqtt-headers.js';
import { checkMessageFields, type PayloadInput, toPayload } from './store/payload-input.js';
import { Store } from './store/store.js';
import type { PublishedRef, PublishInput } from './store/stream.js';
import { createTarget } from './targets/index.js';
import { VERSION } from './version.js';

export interface WaystationOptions {
  /** pino logger; default: JSON to stdout at WAYSTATION_LOG_LEVEL (default info). */
  logger?: Logger;
  /** Target instances by name, used instead of building those targets from the configuration. */
  targets?: Readonly<Record<string, Target>>;
  /** Relative paths in the configuration (dataDir, file and module targets) resolve here. Default cwd. */
  baseDir?: string;
  clock?: Clock;
  random?: () => number;
  fileSystem?: StorageFileSystem;
  /** Measurements for metrics: each delivery attempt, each log commit (seconds). */
  observe?: {
    delivery?: (route: string, seconds: number) => void;
    logCommit?: (seconds: number) => void;
    /** Cluster mode: one route lease renewal (compare-and-set) was answered. */
    leaseRenewal?: (seconds: number) => void;
    /** A route changed state (the dashboard's timeline): from and to, and on whose account (`cause`). */
    stateChange?: (route: string, change: RouteStateChange) => void;
  };
}

export interface PublishOptions {
  /** Ordering key (FIFO per key with `ordering: key`). */
  key?: string;
  /** Message headers; names are stored lower-case. */
  headers?: Readonly<Record<string, string>>;
  /** Time to live: ms or a duration string ("30s"); the message expires after it. */
  ttl?: number | string;
  /** A repeated key within storage.dedupWindow returns the first publish's result. */
  idempotencyKey?: string;
}

export interface BatchMessage {
  /** Bytes, a string (stored as UTF-8), or an async iterable of chunks such as a Readable. */
  payload: PayloadInput;
  key?: string;
  headers?: Readonly<Record<string, string>>;
  ttl?: number | string;
}

export interface MessageStatus {
  id: string;
  stream: string;
  seq: number;
  /** Per route reading the stream: pending, delivered, dead, expired, pruned or purged. */
  routes: Receipt;
}

export interface StreamInfo {
  name: string;
  firstSeq: number;
  lastSeq: number;
  messages: number;
  bytes: number;
  routes: string[];
}

/** What a route handle needs beyond the local engine in cluster mode: the owner, and a way to reach it. */
interface RemoteRoutes {
  readonly nodeId: string;
  readonly leaseTtlMs: number;
  ownerOf(route: string): Promise<string | undefined>;
  request(route: string, owner: string, command: RouteCommand): Promise<unknown>;
}

/** One route state change as `observe.stateChange` reports it. */
export interface RouteStateChange {
  from: RouteSnapshot['state'];
  to: RouteSnapshot['state'];
  cause: RouteSnapshot['cause'];
  lastError: string | undefined;
}

/** A route snapshot; in cluster mode with the node that owns the route (null: none right now). */
export type RouteStatus = RouteSnapshot & { owner?: string | null };

/**
 * Operator handle for one route (deviceWISE's queue tab, IBM's Store/Forward widget). In cluster
 * mode an action goes to the node that owns the route, wherever it runs.
 */
export class RouteHandle {
  constructor(
    private readonly engine: DeliveryEngine,
    readonly name: string,
    private readonly remote: RemoteRoutes | undefined,
  ) {
    engine.route(name);
  }

  private get runner(): RouteRunner {
    return this.engine.route(this.name);
  }

  /** The streams the route reads. */
  get streams(): readonly string[] {
    return this.runner.options.streams;
  }

  async snapshot(): Promise<RouteStatus> {
    if (!this.remote) return this.runner.snapshot();
    if (this.engine.owns(this.name)) return { ...(await this.runner.snapshot()), owner: this.remote.nodeId };
    const owner = await this.remote.ownerOf(this.name).catch(() => undefined);
    if (owner !== undefined && owner !== this.remote.nodeId) {
      try {
        return (await this.remote.request(this.name, owner, { type: 'snapshot' })) as RouteStatus;
      } catch {
        // The owner did not answer: what this node last read of the route's saved state.
      }
    }
    return { ...(await this.runner.snapshot()), owner: owner ?? null };
  }

  /** Forces storing (`held`): nothing is sent until forward(). */
  async store(): Promise<void> {
    await this.act({ type: 'store' });
  }

  /** Leaves `held` (or `storing`) and drains the backlog. */
  async forward(): Promise<void> {
    await this.act({ type: 'forward' });
  }

  /** Purges all pending messages, or the oldest `top`; resolves with how many. */
  async purge(options: { top?: number } = {}): Promise<number> {
    if (options.top !== undefined && (!Number.isInteger(options.top) || options.top < 1)) {
      throw new InvalidArgumentError(`purge top must be a positive integer, got ${options.top}.`);
    }
    return (await this.act({ type: 'purge', top: options.top })) as number;
  }

  async resetCounters(): Promise<void> {
    await this.act({ type: 'reset-counters' });
  }

  get deadLetters(): {
    list(): DeadLetter[];
    resubmit(ids?: readonly string[]): Promise<number>;
    delete(ids?: readonly string[]): Promise<number>;
  } {
    return {
      list: () => this.runner.deadLetters(),
      resubmit: async (ids) => (await this.act({ type: 'resubmit', ids: ids && [...ids] })) as number,
      delete: async (ids) => (await this.act({ type: 'delete-dead', ids: ids && [...ids] })) as number,
    };
  }

  /**
   * Runs an action here when this node delivers the route, else on its owner. While the route
   * changes hands (no owner, or the named owner just gave it up) it tries again for up to one
   * lease TTL, then fails with ClusterRouteUnownedError; nothing was changed then.
   */
  private async act(command: RouteCommand): Promise<unknown> {
    const remote = this.remote;
    if (this.engine.owns(this.name) || !remote) return runRouteCommand(this.runner, command);
    const deadline = performance.now() + remote.leaseTtlMs;
    for (;;) {
      if (this.engine.owns(this.name)) return runRouteCommand(this.runner, command);
      const owner = await remote.ownerOf(this.name);
      if (owner !== undefined && owner !== remote.nodeId) {
        try {
          return await remote.request(this.name, owner, command);
        } catch (err) {
          if (!(err instanceof WaystationError && err.code === ErrorCodes.ClusterRouteUnowned)) throw err;
        }
      }
      if (performance.now() > deadline) throw new ClusterRouteUnownedError(this.name, remote.leaseTtlMs);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** One route action on the local runner (the operator's, or one another node sent here). */
function runRouteCommand(runner: RouteRunner, command: RouteCommand): unknown {
  switch (command.type) {
    case 'store':
      runner.handle({ type: 'store' });
      return null;
    case 'forward':
      runner.handle({ type: 'forward' });
      return null;
    case 'purge':
      return runner.purge(command.top);
    case 'reset-counters':
      runner.resetCounters();
      return null;
    case 'snapshot':
      return runner.snapshot();
    case 'resubmit':
      return runner.resubmit(command.ids);
    case 'delete-dead':
      return runner.deleteDeadLetters(command.ids);
  }
}

export class Waystation {
  private closed = false;
  private readonly publishedListeners = new Set<(stream: string) => void>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly store: MessageStore,
    private readonly engine: DeliveryEngine,
    readonly logger: Logger,
    private readonly shutdownTimeoutMs: number,
    private readonly now: () => number,
    private readonly cluster: OpenCluster | undefined,
    /** How node-local logs of adapters (the MQTT session journal) write: the storage settings. */
    readonly localLogOptions: LogOptions,
  ) {
    const node = cluster?.backend.node;
    if (node) {
      this.remote = {
        nodeId: node.nodeId,
        leaseTtlMs: cluster.leaseTtlMs,
        ownerOf: (route) => node.ownerOf(route),
        request: (route, owner, command) => node.request(route, owner, command),
      };
      node.serve(async (route, command) =>
        command.type === 'snapshot'
          ? { ...(await engine.route(route).snapshot()), owner: node.nodeId }
          : runRouteCommand(engine.route(route), command),
      );
    }
  }

  private readonly remote: RemoteRoutes | undefined;

  static async open(config: WaystationConfigInput, options: WaystationOptions = {}): Promise<Waystation> {
    const resolved = parseConfig(config);
    const c = resolved.config;
    const baseDir = options.baseDir ?? process.cwd();
    const logger = options.logger ?? pino({ level: process.env.WAYSTATION_LOG_LEVEL ?? 'info' });
    for (const w of resolved.warnings)
      logger.warn({ path: w.path }, `config warning: ${w.path}: ${w.message}`);
    const dataDir = resolve(baseDir, c.dataDir);
    const cluster = c.cluster
      ? await openCluster(c.cluster, c, resolved, dataDir, baseDir, logger, options)
      : undefined;
    const store: MessageStore =
      cluster?.backend.store ??
      (await Store.open({
        dataDir,
        streams: resolved.streams,
        routes: resolved.routes,
        log: {
          fsync: c.storage.fsync,
          fsyncIntervalMs: c.storage.fsyncInterval,
          segmentBytes: c.storage.segmentBytes,
          blobThreshold: c.storage.blobThreshold,
          writeTimeoutMs: c.storage.writeTimeout,
          onCorruption: (r) => logger.error({ ...r }, 'damaged record found in the log; it was skipped'),
          onCommit: options.observe?.logCommit,
        },
        dedupWindowMs: c.storage.dedupWindow,
        maxBytes: c.storage.maxBytes,
        minFreeBytes: c.storage.minFreeBytes,
        fileSystem: options.fileSystem,
        onWarning: (w) => logger.warn({ file: w.file, err: w.cause }, w.message),
        now: options.clock ? () => options.clock!.now() : undefined,
      }));
    try {
      const targets = new Map<string, Target>();
      for (const [name, t] of Object.entries(c.targets)) {
        targets.set(name, options.targets?.[name] ?? (await createTarget(name, t, { logger, baseDir })));
      }
      const engine = new DeliveryEngine({
        store,
        routes: resolved.routes,
        targets,
        clock: options.clock,
        random: options.random,
        ownership: cluster?.backend.node,
        events: {
          stateChange: (route, from, to) => {
            logger.info(
              { route, from: from.name, to: to.name, cause: to.cause, lastError: to.lastError },
              `route ${route}: ${from.name} -> ${to.name}`,
            );
            options.observe?.stateChange?.(route, {
              from: from.name,
              to: to.name,
              cause: to.cause,
              lastError: to.lastError,
            });
          },
          error: (err, context) => logger.error({ err, context }, `internal error in ${context}`),
          overdue: (a) =>
            logger.warn(
              { ...a },
              `route ${a.route}: a delivery attempt (${a.messages} message(s) of ${a.stream} from seq ${a.firstSeq}) is in flight for ${a.ageMs} ms, past its ${a.timeoutMs} ms timeout`,
            ),
          attempt: options.observe?.delivery,
        },
      });
      if (cluster) {
        const js = cluster.backend.store;
        js.onGrowth((stream) => engine.published(stream));
      }
      const clock = options.clock;
      const ws = new Waystation(
        store,
        engine,
        logger,
        c.shutdownTimeout,
        clock ? () => clock.now() : Date.now,
        cluster,
        {
          fsync: c.storage.fsync,
          fsyncIntervalMs: c.storage.fsyncInterval,
          writeTimeoutMs: c.storage.writeTimeout,
          fileSystem: options.fileSystem,
        },
      );
      await engine.start();
      return ws;
    } catch (err) {
      await store.close().catch(() => {});
      await cluster?.close();
      throw err;
    }
  }

  /** Stores one message; resolves with its id once durable. */
  async publish(stream: string, payload: PayloadInput, options: PublishOptions = {}): Promise<PublishedRef> {
    const [ref] = await this.publishBatch(stream, [{ payload, ...options }], {
      idempotencyKey: options.idempotencyKey,
    });
    return ref!;
  }

  /** Stores messages all-or-nothing; resolves with their ids once durable. */
  async publishBatch(
    stream: string,
    messages: readonly BatchMessage[],
    options: { idempotencyKey?: string } = {},
  ): Promise<PublishedRef[]> {
    if (options.idempotencyKey !== undefined && typeof options.idempotencyKey !== 'string')
      throw new ArgumentError('idempotencyKey must be a string.');
    const inputs = this.publishInputs(stream, messages);
    const refs = await this.store.publish(stream, inputs, {
      idempotencyKey: options.idempotencyKey,
      admit: (s, count, bytes) => this.engine.admit(s, count, bytes),
    });
    this.published(stream);
    return refs;
  }

  /**
   * Stores messages each under its own idempotency key, in order (what `waystation import`
   * sends): a message whose key was used within storage.dedupWindow answers the first publish's
   * id and is not stored again (`duplicate`). In the embedded store the new ones are one
   * all-or-nothing append; in cluster mode one JetStream message each.
   */
  async publishEach(
    stream: string,
    messages: readonly (BatchMessage & { idempotencyKey: string })[],
  ): Promise<{ refs: PublishedRef[]; duplicate: boolean[] }> {
    const inputs = this.publishInputs(stream, messages);
    const keyed = inputs.map((input, i) => {
      const key = messages[i]!.idempotencyKey;
      if (typeof key !== 'string') throw new ArgumentError(`messages[${i}].idempotencyKey must be a string.`);
      return { ...input, idempotencyKey: key };
    });
    const answer = await this.store.publishEach(stream, keyed, {
      admit: (s, count, bytes) => this.engine.admit(s, count, bytes),
    });
    if (answer.duplicate.includes(false)) this.published(stream);
    return answer;
  }

  /** Checks the messages of a publish and turns them into the store's inputs. */
  private publishInputs(stream: string, messages: readonly BatchMessage[]): PublishInput[] {
    if (this.closed) throw new ShuttingDownError();
    if (typeof stream !== 'string') throw new ArgumentError(`stream must be a string; got ${typeof stream}.`);
    if (!Array.isArray(messages))
      throw new ArgumentError('messages must be an array of { payload, key?, headers?, ttl? }.');
    if (messages.length === 0) throw new InvalidArgumentError('A publish needs at least one message.');
    const now = this.now();
    const single = messages.length === 1;
    const inputs: PublishInput[] = messages.map((m, i) => {
      const name = single ? 'payload' : `messages[${i}].payload`;
      checkMessageFields(m, single ? 'options' : `messages[${i}]`);
      return {
        payload: toPayload(m.payload, name),
        key: m.key,
        headers: lowerCaseKeys(m.headers ?? {}),
        expiresAt: m.ttl === undefined ? undefined : now + ttlMs(m.ttl),
      };
    });
    // Headers the MQTT broker interprets must be sendable (400 otherwise); nothing of the batch is stored.
    for (const input of inputs) assertMqttHeaders(input.headers ?? {}, input.payload);
    return inputs;
  }

  private published(stream: string): void {
    this.engine.published(stream);
    for (const listener of this.publishedListeners) listener(stream);
  }

  /** The data directory (absolute). Adapters keep their own state under it. */
  get dataDir(): string {
    return this.store.dataDir;
  }

  /** Calls `listener(stream)` after each durable publish; returns the unsubscribe function. */
  onPublished(listener: (stream: string) => void): () => void {
    this.publishedListeners.add(listener);
    return () => this.publishedListeners.delete(listener);
  }

  /** Opens a stream that is not in the configuration (created on first use; kept across restarts only if re-created). */
  async createStream(name: string): Promise<void> {
    await this.store.addStream(name);
  }

  /** Deletes a stream no route reads, with all its data (StreamInUseError otherwise). */
  removeStream(name: string): Promise<void> {
    return this.store.removeStream(name);
  }

  /**
   * Keeps `stream`'s history from `floor()` up; below it, history no route needs is deleted by the
   * periodic collection (a store-and-forward topic's retention).
   */
  holdHistory(stream: string, floor: () => number): void {
    this.store.holdHistory(stream, floor);
  }

  /** Messages of a stream in seq order from `fromSeq` (payloads above the blob threshold stay on disk: openPayload). */
  readMessages(
    stream: string,
    options: { fromSeq: number; maxMessages?: number; maxBytes?: number },
  ): Promise<StoredMessage[]> {
    return this.store.stream(stream).read(options);
  }

  /** A message's payload as a byte stream. */
  openPayload(message: StoredMessage): Readable {
    return this.store.stream(message.stream).openPayload(message);
  }

  /** First and last seq a stream holds (firstSeq > lastSeq when empty). */
  streamBounds(stream: string): { firstSeq: number; lastSeq: number } {
    const { firstSeq, lastSeq } = this.store.stream(stream);
    return { firstSeq, lastSeq };
  }

  async routes(): Promise<RouteSnapshot[]> {
    return Promise.all(this.engine.routes().map((r) => r.snapshot()));
  }

  /**
   * Where a route's oldest pending messages are: per stream it reads with messages pending, the
   * lowest pending seq (empty when nothing is pending; UnknownRouteError for no such route).
   */
  oldestPending(route: string): { stream: string; seq: number }[] {
    return this.engine.route(route).oldestPending();
  }

  /** The streams a route reads, or undefined when there is no such route. */
  routeStreams(name: string): readonly string[] | undefined {
    return this.engine.routes().find((r) => r.name === name)?.options.streams;
  }

  route(name: string): RouteHandle {
    return new RouteHandle(this.engine, name, this.remote);
  }

  /** Cluster mode: the nodes, their heartbeats and the routes' owners; undefined on one node. */
  clusterView(): Promise<ClusterView> | undefined {
    return this.cluster?.backend.node.view();
  }

  /** Cluster mode: lease counters and membership for metrics; undefined on one node. */
  clusterCounters():
    | { held: number; acquired: number; lost: number; handedOver: number; nodes: number; connected: boolean }
    | undefined {
    const node = this.cluster?.backend.node;
    return (
      node && {
        held: node.ownedRoutes().length,
        ...node.counters,
        nodes: node.liveNodes.length,
        connected: node.connected,
      }
    );
  }

  /**
   * Snapshots of the routes this node delivers: all of them on one node, those it owns in
   * cluster mode (metrics: each route is reported by one node, so sums across nodes are right).
   */
  localRoutes(): Promise<RouteSnapshot[]> {
    return Promise.all(
      this.engine
        .routes()
        .filter((r) => this.engine.owns(r.name))
        .map((r) => r.snapshot()),
    );
  }

  streams(): StreamInfo[] {
    return this.store.streams().map((s) => {
      const stats = s.stats();
      return {
        name: s.name,
        firstSeq: stats.firstSeq,
        lastSeq: stats.lastSeq,
        messages: stats.records,
        bytes: stats.bytes,
        routes: this.engine.routesOf(s.name).map((r) => r.name),
      };
    });
  }

  /**
   * Per-route status of a message. With `waitFor: 'delivered'`, waits until every route reached
   * a final state (or `timeout`, default 30 s, passes: WaitTimeoutError).
   */
  async messageStatus(
    id: string,
    options: { waitFor?: 'delivered'; timeout?: number | string } = {},
  ): Promise<MessageStatus> {
    const { stream, seq } = await this.locate(id);
    const routes =
      options.waitFor === 'delivered'
        ? await this.engine.waitUntilSettled(stream.name, seq, id, ttlMs(options.timeout ?? 30_000))
        : this.engine.receipt(stream.name, seq);
    return { id, stream: stream.name, seq, routes };
  }

  /** Where a message is; in cluster mode also one another node stored a moment ago. */
  private async locate(id: string): Promise<{ stream: { name: string }; seq: number }> {
    try {
      return this.store.locate(id);
    } catch (err) {
      const js = this.cluster?.backend.store;
      if (!js || !(err instanceof UnknownMessageError)) throw err;
      await js.catchUpWith(id);
      return this.store.locate(id);
    }
  }

  /** Refuses new publishes (ShuttingDownError, 503) and ends waits for delivery; close() follows. */
  stopIntake(): void {
    this.closed = true;
    this.store.stopIntake();
    this.engine.rejectWaiters(new ShuttingDownError());
  }

  /** Stops intake, lets in-flight deliveries finish (up to shutdownTimeout), saves, fsyncs, closes. */
  async close(): Promise<void> {
    if (this.closing) return this.closing;
    this.stopIntake();
    this.closing = (async () => {
      await this.engine.stop(this.shutdownTimeoutMs);
      await this.store.close();
      await this.cluster?.close();
    })();
    return this.closing;
  }
}

interface OpenCluster {
  backend: ClusterBackend;
  leaseTtlMs: number;
  close(): Promise<void>;
}

/** Cluster mode: the data directory is locked for node-local files; everything else is in JetStream. */
async function openCluster(
  cluster: ClusterConfig,
  c: WaystationConfig,
  resolved: ResolvedConfig,
  dataDir: string,
  baseDir: string,
  logger: Logger,
  options: WaystationOptions,
): Promise<OpenCluster> {
  const lock = await DataDirLock.acquire(dataDir);
  try {
    // Imported here so a single-node gateway never loads the NATS client.
    const { openClusterBackend } = await import('./cluster/cluster-backend.js');
    const backend = await openClusterBackend({
      nodeId: cluster.nodeId,
      prefix: cluster.prefix,
      nats: {
        ...cluster.nats,
        tls: cluster.nats.tls && {
          ca: cluster.nats.tls.ca && resolve(baseDir, cluster.nats.tls.ca),
          cert: cluster.nats.tls.cert && resolve(baseDir, cluster.nats.tls.cert),
          key: cluster.nats.tls.key && resolve(baseDir, cluster.nats.tls.key),
        },
      },
      leaseTtlMs: cluster.leaseTtl,
      publishTimeoutMs: cluster.publishTimeout,
      dedupWindowMs: c.storage.dedupWindow,
      dataDir,
      streams: resolved.streams,
      routes: resolved.routes,
      version: VERSION,
      configDigest: configDigest(c),
      onConfigMismatch: (peer) =>
        logger.warn(
          { peer },
          `cluster: node ${peer} runs another configuration (streams, targets, routes or leaseTtl differ); every node must run the same one (docs/cluster.md)`,
        ),
      onLeaseChange: (route, owned, reason) =>
        logger.info({ route, owned, reason }, `route ${route}: lease ${reason}`),
      onRenewal: (ms) => options.observe?.leaseRenewal?.(ms / 1000),
      onError: (err, context) => logger.warn({ err, context }, `cluster: ${context} failed; retrying`),
      onServerTooOld: (err) => logger.error({ err }, err.message),
    });
    logger.info(
      { nodeId: backend.node.nodeId, server: backend.nc.getServer(), version: backend.nc.info?.version },
      'cluster mode: connected to NATS JetStream',
    );
    return {
      backend,
      leaseTtlMs: cluster.leaseTtl,
      close: async () => {
        await backend.close();
        await lock.release();
      },
    };
  } catch (err) {
    await lock.release();
    throw err;
  }
}

/** What must be the same on every node of a cluster, hashed (secrets in targets included, never shown). */
function configDigest(c: WaystationConfig): string {
  const shared = { streams: c.streams, targets: c.targets, routes: c.routes, leaseTtl: c.cluster?.leaseTtl };
  return createHash('sha256').update(canonicalJson(shared)).digest('hex').slice(0, 16);
}

/** JSON with object keys sorted, so the same configuration written in another order hashes alike. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function ttlMs(value: number | string): number {
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new InvalidArgumentError(`"${value}" is not a duration; write e.g. 30000, "30s" or "5m".`);
  return ms;
}

function lowerCaseKeys(headers: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  let lower = true;
  for (const k in headers) if (k !== k.toLowerCase()) lower = false;
  if (lower) return headers;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = v;
  return out;
}
