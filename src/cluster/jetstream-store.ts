/**
 * The cluster backend: the storage interface (src/store/backend.ts) on NATS JetStream, so
 * several Waystation nodes share streams, route progress and dead letters (SPEC §3, issue 10).
 * What each Waystation object becomes (docs/cluster.md, "Storage on JetStream"):
 *
 *   stream <name>        JetStream stream `<prefix>_s_<encoded name>`, subject
 *                        `<prefix>.s.<encoded name>`, file storage, R = replicas,
 *                        duplicate_window = dedupWindowMs; one JetStream message per publish
 *                        (jetstream-stream.ts, batch-codec.ts); the message ids' incarnation in
 *                        the stream's metadata (`waystation_incarnation`)
 *   route progress       KV bucket `<prefix>_progress`, key = route (jetstream-route-state.ts)
 *   dead letters         KV bucket `<prefix>_dead`, key = `<route>.<encoded stream>.<seq>`
 *   idempotency          Nats-Msg-Id `i:<key>` within the stream's duplicate window, with the
 *                        request's fingerprint in the batch's headers
 *
 * `dataDir` holds only node-local files (adapters' state); nothing of the store lives there.
 */
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  StorageType,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import {
  ClusterPayloadTooLargeError,
  ClusterUnavailableError,
  IdempotencyKeyReusedError,
  InvalidArgumentError,
  ShuttingDownError,
  StreamInUseError,
  UnknownMessageError,
  UnknownRouteError,
  UnknownStreamError,
} from '../errors.js';
import type {
  KeyedPublishInput,
  MessageStore,
  MessageStorePublishOptions,
  PublishedEach,
} from '../store/backend.js';
import { fingerprintOf } from '../store/fingerprint.js';
import { historyFloor } from '../store/history-floor.js';
import { assertStreamName, encodeMeta, parseMessageId, type StoredMessage } from '../store/message.js';
import type { PublishedRef, PublishInput } from '../store/stream.js';
import { type BatchRecord, encodedBatchBytes } from './batch-codec.js';
import { JetStreamDeadLetters, JetStreamRouteProgress } from './jetstream-route-state.js';
import {
  encodeName,
  isUnavailable,
  JetStreamMessageStream,
  type JetStreamStreamContext,
} from './jetstream-stream.js';
import { assertServerVersion } from './server-version.js';

export interface JetStreamStoreOptions {
  /** A connection to use (not closed by `close()`); otherwise one is made to `servers`. */
  nc?: NatsConnection;
  servers?: string | string[];
  /** Names of every JetStream object start with it; `[A-Za-z0-9_-]+`. Default `waystation`. */
  prefix?: string;
  /** This node's id (written with route progress). Default the host name. */
  nodeId?: string;
  /** Replicas of every stream and bucket (cluster.nats.replicas). Default 3. */
  replicas?: number;
  /** Where node-local files live (adapters' state); the store writes nothing there. */
  dataDir: string;
  streams: readonly string[];
  routes: readonly { name: string; streams: readonly string[] }[];
  /** A repeated Idempotency-Key within this window answers the first publish (stream duplicate_window). Default 2 min. */
  dedupWindowMs?: number;
  /** How long a publish keeps trying through reconnects and leader elections before 503. Default 10 000 ms. */
  publishTimeoutMs?: number;
  /** How long one PubAck is waited for before the publish is sent again. Default 2 000 ms. */
  ackTimeoutMs?: number;
  /** How often first/last seqs are caught up with what other nodes published and purged. Default 1 000 ms; 0 never. */
  refreshIntervalMs?: number;
  now?: () => number;
  /** Wraps the JetStream client publishes go through (fault injection in tests: lost PubAcks). */
  wrapJetStream?: (js: JetStreamClient) => JetStreamClient;
}

const PREFIX = /^[A-Za-z0-9_-]{1,32}$/;
/** Room for the batch's headers (Nats-Msg-Id, Ws-*, expectations) in max_payload. */
const HEADER_ALLOWANCE = 1024;

export class JetStreamStore implements MessageStore {
  private readonly streamsByName = new Map<string, JetStreamMessageStream>();
  private readonly streamsByIncarnation = new Map<string, JetStreamMessageStream>();
  private readonly progress = new Map<string, JetStreamRouteProgress>();
  private readonly dead = new Map<string, JetStreamDeadLetters>();
  private readonly holds = new Map<string, () => number>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private closing = false;
  private timer: NodeJS.Timeout | undefined;
  private refreshing = false;
  private readonly fences = new Map<string, () => number | undefined>();
  private readonly growthListeners = new Set<(stream: string) => void>();
  private readonly catchingUp = new Map<string, 'running' | 'again'>();
  private notifications: { unsubscribe(): void } | undefined;
  private nodeId = '';

  private constructor(
    private readonly options: JetStreamStoreOptions,
    private readonly nc: NatsConnection,
    private readonly ownConnection: boolean,
    private readonly ctx: JetStreamStreamContext,
    private readonly progressKv: KV,
    private readonly deadKv: KV,
  ) {}

  static async open(options: JetStreamStoreOptions): Promise<JetStreamStore> {
    const prefix = options.prefix ?? 'waystation';
    if (!PREFIX.test(prefix))
      throw new InvalidArgumentError(`cluster prefix "${prefix}" must be 1-32 letters, digits, '_' or '-'.`);
    const replicas = options.replicas ?? 3;
    const dedupWindowMs = options.dedupWindowMs ?? 120_000;
    const publishTimeoutMs = options.publishTimeoutMs ?? 10_000;
    // A retry of an unanswered attempt must still find it in the duplicate window.
    if (dedupWindowMs < publishTimeoutMs)
      throw new InvalidArgumentError(
        `dedupWindowMs (${dedupWindowMs}) must be at least publishTimeoutMs (${publishTimeoutMs}): a publish retried after an unanswered PubAck could otherwise be stored twice.`,
      );
    const servers = options.servers;
    if (!options.nc && !servers) throw new InvalidArgumentError('JetStreamStore.open needs nc or servers.');
    let nc: NatsConnection;
    if (options.nc) nc = options.nc;
    else {
      try {
        nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 5_000 });
      } catch (err) {
        throw new ClusterUnavailableError(`Could not connect to NATS at ${servers}`, { cause: err });
      }
    }
    try {
      assertServerVersion(nc);
      const jsm = await jetstreamManager(nc, { timeout: 5_000 });
      const ctx: JetStreamStreamContext = {
        jsm,
        js: (options.wrapJetStream ?? ((js) => js))(
          jetstream(nc, { timeout: options.ackTimeoutMs ?? 2_000 }),
        ),
        prefix,
        replicas,
        dedupWindowMs,
        publishTimeoutMs,
        ackTimeoutMs: options.ackTimeoutMs ?? 2_000,
        maxBatchBytes: () => (nc.info?.max_payload ?? 1024 * 1024) - HEADER_ALLOWANCE,
      };
      const kvm = new Kvm(nc);
      const [progressKv, deadKv] = await Promise.all([
        bucket(kvm, `${prefix}_progress`, replicas),
        bucket(kvm, `${prefix}_dead`, replicas),
      ]);
      const store = new JetStreamStore(options, nc, !options.nc, ctx, progressKv, deadKv);
      await store.load();
      store.startRefresh();
      store.listenForPublishes();
      return store;
    } catch (err) {
      if (!options.nc) await nc.close().catch(() => {});
      if (isUnavailable(err))
        throw new ClusterUnavailableError('Cluster storage could not be opened', { cause: err });
      throw err;
    }
  }

  get dataDir(): string {
    return this.options.dataDir;
  }

  get jetstreamManager(): JetStreamManager {
    return this.ctx.jsm;
  }

  private async load(): Promise<void> {
    for (const name of this.options.streams) await this.openStream(name);
    const now = (this.options.now ?? Date.now)();
    const nodeId = this.options.nodeId ?? (await import('node:os')).hostname();
    this.nodeId = nodeId;
    for (const route of this.options.routes) await this.loadRoute(route, now);
  }

  /**
   * Reads a route's dead letters, then its progress, as saved in KV. In that order: a resubmit
   * saves the message as pending before it removes the dead letter (route-runner.ts), so a view
   * read this way never has a message neither pending nor dead-lettered that the route still
   * needs, and collection on it stays safe.
   */
  private async loadRoute(route: { name: string; streams: readonly string[] }, now: number): Promise<void> {
    const dead = await JetStreamDeadLetters.open(this.deadKv, route.name);
    const progress = await JetStreamRouteProgress.open(
      this.progressKv,
      route.name,
      this.nodeId,
      route.streams,
      (s) => this.stream(s).firstSeq,
      now,
      () => {
        const fence = this.fences.get(route.name);
        return fence && { token: fence() };
      },
    );
    for (const [name, p] of progress.streams) p.trimBelow(this.stream(name).firstSeq);
    this.progress.set(route.name, progress);
    this.dead.set(route.name, dead);
  }

  /**
   * Reads a route's progress and dead letters again from KV: the view another node saved. After
   * this, `routeProgress(route)` and `deadLetters(route)` return new objects (the cluster node
   * reloads a route it takes over, and the routes other nodes own, before the engine rebuilds
   * their runners). With `ifChanged`, only when the saved progress has another revision than
   * the one held; resolves with whether it read anything.
   */
  async reloadRoute(route: string, options: { ifChanged?: boolean } = {}): Promise<boolean> {
    const r = this.options.routes.find((x) => x.name === route);
    if (!r) throw new UnknownRouteError(route);
    if (options.ifChanged) {
      const e = await this.progressKv.get(route);
      if ((e?.revision ?? 0) === this.routeProgress(route).revision) return false;
    }
    await Promise.all(r.streams.map((s) => this.stream(s).refresh()));
    await this.loadRoute(r, (this.options.now ?? Date.now)());
    return true;
  }

  /**
   * Fences a route's progress writes with its lease: `token()` is the lease's revision while this
   * node owns the route, else undefined (then saving is refused). A write that finds the entry
   * overtaken by a writer with an older lease overwrites it (this node owns the route now); one
   * overtaken by a newer lease is refused (ClusterWriteConflictError).
   */
  fenceProgress(route: string, token: () => number | undefined): void {
    this.fences.set(route, token);
  }

  /** Calls `listener(stream)` when this node learns that another node stored messages in `stream`. */
  onGrowth(listener: (stream: string) => void): () => void {
    this.growthListeners.add(listener);
    return () => this.growthListeners.delete(listener);
  }

  /**
   * Every publish is followed by a small core-NATS notice on `<prefix>.n.<stream>`; other nodes
   * catch the stream up at once instead of at the next refresh, so a route owned elsewhere starts
   * sending within milliseconds. A lost notice costs at most one refresh interval.
   */
  private listenForPublishes(): void {
    const sub = this.nc.subscribe(`${this.ctx.prefix}.n.*`, {
      callback: (err, msg) => {
        if (err) return;
        const from = msg.headers?.get('Ws-Node');
        if (from === this.nodeId) return;
        const encoded = msg.subject.slice(this.ctx.prefix.length + 3);
        for (const stream of this.streamsByName.values())
          if (encodeName(stream.name) === encoded) this.catchUp(stream);
      },
    });
    this.notifications = sub;
  }

  /** One refresh at a time per stream; a notice during one asks for another after it. */
  private catchUp(stream: JetStreamMessageStream): void {
    if (this.catchingUp.has(stream.name)) {
      this.catchingUp.set(stream.name, 'again');
      return;
    }
    this.catchingUp.set(stream.name, 'running');
    const before = stream.lastSeq;
    stream
      .refresh()
      .catch(() => {})
      .finally(() => {
        const again = this.catchingUp.get(stream.name) === 'again';
        this.catchingUp.delete(stream.name);
        if (stream.lastSeq > before) this.grew(stream.name);
        if (again && !this.closing) this.catchUp(stream);
      });
  }

  private grew(stream: string): void {
    for (const listener of this.growthListeners) listener(stream);
  }

  private async openStream(name: string): Promise<JetStreamMessageStream> {
    assertStreamName(name);
    const stream = await JetStreamMessageStream.open(this.ctx, name);
    this.streamsByName.set(name, stream);
    this.streamsByIncarnation.set(stream.incarnation, stream);
    return stream;
  }

  /** Catches every stream up with other nodes' publishes and purges, one round at a time. */
  private startRefresh(): void {
    const every = this.options.refreshIntervalMs ?? 1_000;
    if (every <= 0) return;
    this.timer = setInterval(() => {
      if (this.refreshing || this.closing) return;
      this.refreshing = true;
      const streams = [...this.streamsByName.values()];
      const before = streams.map((s) => s.lastSeq);
      Promise.allSettled(streams.map((s) => s.refresh())).finally(() => {
        this.refreshing = false;
        streams.forEach((s, i) => {
          if (s.lastSeq > before[i]!) this.grew(s.name);
        });
      });
    }, every);
    this.timer.unref();
  }

  stream(name: string): JetStreamMessageStream {
    const s = this.streamsByName.get(name);
    if (!s) throw new UnknownStreamError(name);
    return s;
  }

  streams(): JetStreamMessageStream[] {
    return [...this.streamsByName.values()];
  }

  async addStream(name: string): Promise<JetStreamMessageStream> {
    const existing = this.streamsByName.get(name);
    if (existing) return existing;
    if (this.closing) throw new ShuttingDownError();
    return this.openStream(name);
  }

  async removeStream(name: string): Promise<void> {
    const stream = this.stream(name);
    const readers = this.options.routes.filter((r) => r.streams.includes(name)).map((r) => r.name);
    if (readers.length > 0) throw new StreamInUseError(name, readers);
    this.streamsByName.delete(name);
    this.streamsByIncarnation.delete(stream.incarnation);
    this.holds.delete(name);
    await stream.destroy();
  }

  holdHistory(stream: string, floor: () => number): void {
    this.stream(stream);
    this.holds.set(stream, floor);
  }

  routeProgress(route: string): JetStreamRouteProgress {
    const p = this.progress.get(route);
    if (!p) throw new UnknownRouteError(route);
    return p;
  }

  deadLetters(route: string): JetStreamDeadLetters {
    const d = this.dead.get(route);
    if (!d) throw new UnknownRouteError(route);
    return d;
  }

  /**
   * Stores the messages as one JetStream message and resolves with their ids once the stream's
   * PubAck arrived. Streamed payloads are read into memory first (a failing one stores
   * nothing); the whole batch must fit in the server's max_payload (413 otherwise).
   */
  async publish(
    streamName: string,
    inputs: readonly PublishInput[],
    options: MessageStorePublishOptions = {},
  ): Promise<PublishedRef[]> {
    if (this.closing) throw new ShuttingDownError();
    const stream = this.stream(streamName);
    if (inputs.length === 0) throw new InvalidArgumentError('A publish needs at least one message.');
    const idem =
      options.idempotencyKey === undefined
        ? undefined
        : { key: options.idempotencyKey, fingerprint: fingerprintOf(inputs) };
    const bytes = inputs.reduce(
      (sum, i) => sum + (i.payload instanceof Uint8Array ? i.payload.byteLength : 0),
      0,
    );
    const release = await options.admit?.(streamName, inputs.length, bytes);
    const run = (async () => {
      const records = await this.collect(streamName, inputs);
      const refs = await stream.append(records, idem);
      this.announce(stream);
      return refs;
    })();
    this.inFlight.add(run);
    try {
      return await run;
    } finally {
      this.inFlight.delete(run);
      release?.();
    }
  }

  /**
   * One JetStream message per input, one after the other (each key is its own Nats-Msg-Id), so
   * unlike the embedded store's this is not all-or-nothing: a failure, or a key used earlier for
   * another message, leaves the inputs before it stored, and a retry stores each once. A key
   * doubled within `inputs` for different messages is refused before anything is stored.
   */
  async publishEach(
    streamName: string,
    inputs: readonly KeyedPublishInput[],
    options: Omit<MessageStorePublishOptions, 'idempotencyKey'> = {},
  ): Promise<PublishedEach> {
    if (inputs.length === 0) throw new InvalidArgumentError('A publish needs at least one message.');
    const stream = this.stream(streamName);
    const seen = new Map<string, string>();
    for (const { idempotencyKey, ...input } of inputs) {
      const fingerprint = fingerprintOf([input]);
      const first = seen.get(idempotencyKey);
      if (first !== undefined && first !== fingerprint)
        throw new IdempotencyKeyReusedError(streamName, idempotencyKey);
      seen.set(idempotencyKey, fingerprint);
    }
    const answer: PublishedEach = { refs: [], duplicate: [] };
    for (const { idempotencyKey, ...input } of inputs) {
      const before = stream.lastSeq;
      const [ref] = await this.publish(streamName, [input], { ...options, idempotencyKey });
      answer.refs.push(ref!);
      // A used key answers the first publish's ref, which is not above what the stream held.
      answer.duplicate.push(ref!.seq <= before);
    }
    return answer;
  }

  private announce(stream: JetStreamMessageStream): void {
    if (this.nc.isClosed()) return;
    const h = natsHeaders();
    h.set('Ws-Node', this.nodeId);
    try {
      this.nc.publish(`${this.ctx.prefix}.n.${encodeName(stream.name)}`, undefined, { headers: h });
    } catch {
      // A notice is an optimisation: the periodic refresh finds the publish anyway.
    }
  }

  /** The batch's records in memory, refused (413) once it cannot fit in one JetStream message. */
  private async collect(streamName: string, inputs: readonly PublishInput[]): Promise<BatchRecord[]> {
    const maxPayload = (this.nc.info?.max_payload ?? 1024 * 1024) - HEADER_ALLOWANCE;
    const metaBytes = inputs.map(
      (i) => encodeMeta({ key: i.key, headers: i.headers ?? {}, expiresAt: i.expiresAt }).byteLength,
    );
    let total = encodedBatchBytes(metaBytes.map((m) => ({ metaBytes: m, payloadBytes: 0 })));
    const records: BatchRecord[] = [];
    for (const input of inputs) {
      let payload: Uint8Array;
      if (input.payload instanceof Uint8Array) {
        payload = input.payload;
        total += payload.byteLength;
      } else {
        const parts: Uint8Array[] = [];
        for await (const chunk of input.payload) {
          parts.push(chunk);
          total += chunk.byteLength;
          if (total > maxPayload) break;
        }
        payload = Buffer.concat(parts);
      }
      if (total > maxPayload)
        throw new ClusterPayloadTooLargeError(
          streamName,
          total + HEADER_ALLOWANCE,
          maxPayload + HEADER_ALLOWANCE,
        );
      records.push({
        meta: { key: input.key, headers: input.headers ?? {}, expiresAt: input.expiresAt },
        payload,
      });
    }
    return records;
  }

  usedBytes(): number {
    let used = 0;
    for (const s of this.streamsByName.values()) used += s.heldBytes;
    return used;
  }

  /**
   * Catches a stream up with the leader when `id` names one of its seqs beyond what this node has
   * seen (another node just stored it), so `locate(id)` knows it afterwards.
   */
  async catchUpWith(id: string): Promise<void> {
    const parsed = parseMessageId(id);
    const stream = parsed && this.streamsByIncarnation.get(parsed.incarnation);
    if (parsed && stream && parsed.seq > stream.lastSeq) await stream.refresh();
  }

  /** Stream and seq of a message id, up to the last seq this node has seen. */
  locate(id: string): { stream: JetStreamMessageStream; seq: number } {
    const parsed = parseMessageId(id);
    const stream = parsed && this.streamsByIncarnation.get(parsed.incarnation);
    if (!parsed || !stream || parsed.seq > stream.lastSeq) throw new UnknownMessageError(id);
    return { stream, seq: parsed.seq };
  }

  async readMessage(streamName: string, seq: number): Promise<StoredMessage | undefined> {
    const [m] = await this.stream(streamName).read({ fromSeq: seq, maxMessages: 1, untilSeq: seq });
    return m?.seq === seq ? m : undefined;
  }

  /**
   * Purges each JetStream stream below the lowest floor of every route reading it (their
   * non-final messages and dead letters, as this node knows them) and below its hold; the batch
   * holding that floor, and always the last batch, are kept. Streams without readers or a hold
   * keep their history.
   */
  async collectGarbage(): Promise<void> {
    for (const stream of this.streamsByName.values()) {
      const keepFrom = historyFloor(
        stream.name,
        this.progress,
        (route) => this.deadLetters(route),
        this.holds.get(stream.name),
      );
      if (keepFrom === undefined || keepFrom <= stream.firstSeq) continue;
      await stream.purgeBelow(keepFrom);
      const first = stream.firstSeq;
      for (const progress of this.progress.values()) progress.streams.get(stream.name)?.trimBelow(first);
    }
  }

  stopIntake(): void {
    this.closing = true;
  }

  /** Waits for publishes in flight (their PubAcks), then closes the connection it made. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.notifications?.unsubscribe();
    await Promise.allSettled([...this.inFlight]);
    if (this.ownConnection) await this.nc.close().catch(() => {});
  }
}

async function bucket(kvm: Kvm, name: string, replicas: number): Promise<KV> {
  try {
    return await kvm.create(name, { replicas, history: 1, storage: StorageType.File });
  } catch (err) {
    return kvm.open(name).catch(() => Promise.reject(err));
  }
}
