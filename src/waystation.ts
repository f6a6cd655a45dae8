/**
 * The composition root of the library: `Waystation.open(config)` parses the configuration,
 * opens the store, builds targets and the delivery engine, and exposes the library API
 * (docs/library.md). The gateway program wraps this object with the HTTP API and the CLI.
 */
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { type Logger, pino } from 'pino';
import { parseConfig } from './config/resolve.js';
import type { WaystationConfigInput } from './config/schema.js';
import { parseDuration } from './config/units.js';
import type { Clock } from './delivery/clock.js';
import { DeliveryEngine, type Receipt } from './delivery/engine.js';
import type { RouteRunner, RouteSnapshot } from './delivery/route-runner.js';
import type { Target } from './delivery/target.js';
import { ArgumentError, InvalidArgumentError, ShuttingDownError } from './errors.js';
import type { StorageFileSystem } from './log/index.js';
import type { MessageStore } from './store/backend.js';
import type { DeadLetter } from './store/dead-letters.js';
import type { StoredMessage } from './store/message.js';
import { assertMqttHeaders } from './store/mqtt-headers.js';
import { checkMessageFields, type PayloadInput, toPayload } from './store/payload-input.js';
import { Store } from './store/store.js';
import type { PublishedRef, PublishInput } from './store/stream.js';
import { createTarget } from './targets/index.js';

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
  observe?: { delivery?: (route: string, seconds: number) => void; logCommit?: (seconds: number) => void };
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

/** Operator handle for one route (deviceWISE's queue tab, IBM's Store/Forward widget). */
export class RouteHandle {
  constructor(private readonly runner: RouteRunner) {}

  get name(): string {
    return this.runner.name;
  }

  /** The streams the route reads. */
  get streams(): readonly string[] {
    return this.runner.options.streams;
  }

  snapshot(): Promise<RouteSnapshot> {
    return this.runner.snapshot();
  }

  /** Forces storing (`held`): nothing is sent until forward(). */
  store(): void {
    this.runner.handle({ type: 'store' });
  }

  /** Leaves `held` (or `storing`) and drains the backlog. */
  forward(): void {
    this.runner.handle({ type: 'forward' });
  }

  /** Purges all pending messages, or the oldest `top`; returns how many. */
  purge(options: { top?: number } = {}): number {
    if (options.top !== undefined && (!Number.isInteger(options.top) || options.top < 1)) {
      throw new InvalidArgumentError(`purge top must be a positive integer, got ${options.top}.`);
    }
    return this.runner.purge(options.top);
  }

  resetCounters(): void {
    this.runner.resetCounters();
  }

  get deadLetters(): {
    list(): DeadLetter[];
    resubmit(ids?: readonly string[]): Promise<number>;
    delete(ids?: readonly string[]): Promise<number>;
  } {
    const runner = this.runner;
    return {
      list: () => runner.deadLetters(),
      resubmit: (ids) => runner.resubmit(ids),
      delete: (ids) => runner.deleteDeadLetters(ids),
    };
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
  ) {}

  static async open(config: WaystationConfigInput, options: WaystationOptions = {}): Promise<Waystation> {
    const resolved = parseConfig(config);
    const c = resolved.config;
    const baseDir = options.baseDir ?? process.cwd();
    const logger = options.logger ?? pino({ level: process.env.WAYSTATION_LOG_LEVEL ?? 'info' });
    for (const w of resolved.warnings)
      logger.warn({ path: w.path }, `config warning: ${w.path}: ${w.message}`);
    const store = await Store.open({
      dataDir: resolve(baseDir, c.dataDir),
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
    });
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
        events: {
          stateChange: (route, from, to) =>
            logger.info(
              { route, from: from.name, to: to.name, cause: to.cause, lastError: to.lastError },
              `route ${route}: ${from.name} -> ${to.name}`,
            ),
          error: (err, context) => logger.error({ err, context }, `internal error in ${context}`),
          overdue: (a) =>
            logger.warn(
              { ...a },
              `route ${a.route}: a delivery attempt (${a.messages} message(s) of ${a.stream} from seq ${a.firstSeq}) is in flight for ${a.ageMs} ms, past its ${a.timeoutMs} ms timeout`,
            ),
          attempt: options.observe?.delivery,
        },
      });
      await engine.start();
      const clock = options.clock;
      return new Waystation(store, engine, logger, c.shutdownTimeout, clock ? () => clock.now() : Date.now);
    } catch (err) {
      await store.close().catch(() => {});
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
    if (this.closed) throw new ShuttingDownError();
    if (typeof stream !== 'string') throw new ArgumentError(`stream must be a string; got ${typeof stream}.`);
    if (!Array.isArray(messages))
      throw new ArgumentError('messages must be an array of { payload, key?, headers?, ttl? }.');
    if (messages.length === 0) throw new InvalidArgumentError('publishBatch needs at least one message.');
    if (options.idempotencyKey !== undefined && typeof options.idempotencyKey !== 'string')
      throw new ArgumentError('idempotencyKey must be a string.');
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
    const refs = await this.store.publish(stream, inputs, {
      idempotencyKey: options.idempotencyKey,
      admit: (s, count, bytes) => this.engine.admit(s, count, bytes),
    });
    this.engine.published(stream);
    for (const listener of this.publishedListeners) listener(stream);
    return refs;
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

  /** The streams a route reads, or undefined when there is no such route. */
  routeStreams(name: string): readonly string[] | undefined {
    return this.engine.routes().find((r) => r.name === name)?.options.streams;
  }

  route(name: string): RouteHandle {
    return new RouteHandle(this.engine.route(name));
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
    const { stream, seq } = this.store.locate(id);
    const routes =
      options.waitFor === 'delivered'
        ? await this.engine.waitUntilSettled(stream.name, seq, id, ttlMs(options.timeout ?? 30_000))
        : this.engine.receipt(stream.name, seq);
    return { id, stream: stream.name, seq, routes };
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
    })();
    return this.closing;
  }
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
