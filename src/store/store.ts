/**
 * The store: streams over logs, per-route progress and dead letters, idempotent publish, the
 * global storage guard, and deleting log history no route needs any more. Knows nothing of
 * targets or the route state machine. Owns the data directory:
 *
 *   <dataDir>/LOCK                      the holder: pid, boot id, start time (data-dir-lock.ts)
 *   <dataDir>/streams/<stream>/         a stream (stream.ts) and its log (log/)
 *   <dataDir>/routes/<route>/           progress.state, dead-letters.journal
 */
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import {
  IdempotencyKeyReusedError,
  InvalidArgumentError,
  ShuttingDownError,
  StorageFullError,
  StreamInUseError,
  UnknownMessageError,
  UnknownRouteError,
  UnknownStreamError,
} from '../errors.js';
import {
  type LogOptions,
  nodeFileSystem,
  type StorageFileSystem,
  type StorageWarning,
} from '../log/index.js';
import type {
  KeyedPublishInput,
  MessageStore,
  MessageStorePublishOptions,
  PublishedEach,
} from './backend.js';
import { DataDirLock, dataDirError } from './data-dir-lock.js';
import { DeadLetters } from './dead-letters.js';
import { fingerprintOf } from './fingerprint.js';
import { historyFloor } from './history-floor.js';
import { assertStreamName, parseMessageId, type StoredMessage } from './message.js';
import { RouteProgress } from './route-progress.js';
import { type PublishedRef, type PublishInput, Stream } from './stream.js';

export interface StoreOptions {
  dataDir: string;
  streams: readonly string[];
  routes: readonly { name: string; streams: readonly string[] }[];
  log?: LogOptions;
  /** A repeated Idempotency-Key within this window returns the first publish's ids. Default 2 min. */
  dedupWindowMs?: number;
  /** Publishes are refused (507) once all streams together hold this many bytes. */
  maxBytes?: number;
  /** Publishes are refused (507) while the data directory's filesystem has less free space. */
  minFreeBytes?: number;
  fileSystem?: StorageFileSystem;
  now?: () => number;
  /** Free bytes of the filesystem holding `dir` (injectable for tests). */
  freeBytes?: (dir: string) => Promise<number>;
  /**
   * What could not be done but does not fail the call (an index cache not saved at close, a
   * stale LOCK taken over); the log's warnings too unless `log.onWarning` is set. Log at warn.
   */
  onWarning?: (warning: StorageWarning) => void;
  /** Where procfs is mounted, for the LOCK's holder checks. Default /proc. */
  procDir?: string;
}

/** Options of `Store.publish` (the storage interface's). */
export type PublishOptions = MessageStorePublishOptions;

interface DedupEntry {
  at: number;
  refs: Promise<PublishedRef[]>;
  /** Whether `refs` has settled (a publish still being stored may yet fail and free its key). */
  settled: boolean;
  /** Undefined for keys written before fingerprints were stored: any retry matches. */
  fingerprint: string | undefined;
}

const FREE_SPACE_CACHE_MS = 1000;

export class Store implements MessageStore {
  private readonly streamsByName = new Map<string, Stream>();
  private readonly streamsByIncarnation = new Map<string, Stream>();
  private readonly progress = new Map<string, RouteProgress>();
  private readonly dead = new Map<string, DeadLetters>();
  private readonly dedup = new Map<string, DedupEntry>();
  private readonly holds = new Map<string, () => number>();
  private readonly fs: StorageFileSystem;
  private readonly now: () => number;
  private readonly dedupWindowMs: number;
  private freeSpace: { at: number; bytes: number } | undefined;
  private closing = false;
  private dirLock: DataDirLock | undefined;

  private constructor(private readonly options: StoreOptions) {
    this.fs = options.fileSystem ?? nodeFileSystem;
    this.now = options.now ?? Date.now;
    this.dedupWindowMs = options.dedupWindowMs ?? 120_000;
  }

  static async open(options: StoreOptions): Promise<Store> {
    const store = new Store(options);
    await store.lock();
    try {
      await store.load();
    } catch (err) {
      await store.close().catch(() => {});
      // EACCES, EROFS, ENOSPC, ... on a stream or route file: name the data directory's problem.
      throw dataDirError(options.dataDir, err);
    }
    return store;
  }

  get dataDir(): string {
    return this.options.dataDir;
  }

  /** Creates the data directory and takes its LOCK (on the real filesystem only). */
  private async lock(): Promise<void> {
    const { dataDir } = this.options;
    if (this.fs !== nodeFileSystem) return this.fs.mkdir(dataDir);
    this.dirLock = await DataDirLock.acquire(dataDir, {
      procDir: this.options.procDir,
      onTakeover: (message) => this.options.onWarning?.({ file: join(dataDir, 'LOCK'), message }),
    });
  }

  private logOptions(): LogOptions {
    return {
      ...this.options.log,
      onWarning: this.options.log?.onWarning ?? this.options.onWarning,
      now: this.now,
    };
  }

  private async load(): Promise<void> {
    const { dataDir } = this.options;
    for (const name of this.options.streams) {
      assertStreamName(name);
      const stream = await Stream.open(this.fs, join(dataDir, 'streams'), name, this.logOptions());
      this.streamsByName.set(name, stream);
      this.streamsByIncarnation.set(stream.incarnation, stream);
    }
    for (const route of this.options.routes) {
      const dir = join(dataDir, 'routes', route.name);
      const progress = await RouteProgress.open(
        this.fs,
        dir,
        route.streams,
        (s) => this.stream(s).log.firstSeq,
        this.now(),
      );
      // Detail below what the log still holds is history.
      for (const [name, p] of progress.streams) p.trimBelow(this.stream(name).log.firstSeq);
      this.progress.set(route.name, progress);
      this.dead.set(route.name, await DeadLetters.open(this.fs, dir));
    }
    await this.rebuildDedup();
  }

  /** Idempotency keys published within the window, read back newest first from each stream. */
  private async rebuildDedup(): Promise<void> {
    const since = this.now() - this.dedupWindowMs;
    const found = new Map<string, { at: number; refs: PublishedRef[]; fingerprint: string | undefined }>();
    for (const stream of this.streamsByName.values()) {
      let from = stream.log.lastSeq;
      let inWindow = true;
      while (inWindow && from >= stream.log.firstSeq) {
        const messages = await stream.read({ fromSeq: from, direction: 'backward', maxMessages: 1000 });
        if (messages.length === 0) break;
        for (const m of messages) {
          if (m.timestamp < since) {
            inWindow = false;
            break;
          }
          if (m.idempotencyKey === undefined) continue;
          const key = dedupKey(stream.name, m.idempotencyKey);
          const entry = found.get(key) ?? { at: m.timestamp, refs: [], fingerprint: m.fingerprint };
          entry.refs.unshift({ id: m.id, stream: stream.name, seq: m.seq });
          entry.at = m.timestamp;
          found.set(key, entry);
        }
        from = messages.at(-1)!.seq - 1;
      }
    }
    // Oldest first, as expireDedup expects.
    for (const [key, e] of [...found].sort((a, b) => a[1].at - b[1].at)) {
      this.dedup.set(key, {
        at: e.at,
        refs: Promise.resolve(e.refs),
        settled: true,
        fingerprint: e.fingerprint,
      });
    }
  }

  stream(name: string): Stream {
    const s = this.streamsByName.get(name);
    if (!s) throw new UnknownStreamError(name);
    return s;
  }

  /** Opens (creating if needed) a stream that was not in the configuration; returns it if it exists. */
  async addStream(name: string): Promise<Stream> {
    const existing = this.streamsByName.get(name);
    if (existing) return existing;
    if (this.closing) throw new ShuttingDownError();
    assertStreamName(name);
    const stream = await Stream.open(this.fs, join(this.options.dataDir, 'streams'), name, this.logOptions());
    this.streamsByName.set(name, stream);
    this.streamsByIncarnation.set(stream.incarnation, stream);
    return stream;
  }

  /**
   * Closes a stream no route reads and deletes its directory (log, blobs, state). Its message
   * ids become unknown. The caller makes sure nothing reads or writes it any more.
   */
  async removeStream(name: string): Promise<void> {
    const stream = this.stream(name);
    const readers = this.options.routes.filter((r) => r.streams.includes(name)).map((r) => r.name);
    if (readers.length > 0) throw new StreamInUseError(name, readers);
    this.streamsByName.delete(name);
    this.streamsByIncarnation.delete(stream.incarnation);
    this.holds.delete(name);
    for (const key of [...this.dedup.keys()]) if (key.startsWith(`${name}\u0000`)) this.dedup.delete(key);
    await stream.close();
    await this.fs.removeTree(join(this.options.dataDir, 'streams', name));
  }

  /**
   * Keeps a stream's history from `floor()` up, whether or not routes need it; with a hold and
   * no route, history below `floor()` is deleted by collectGarbage (store-and-forward topics'
   * retention). One hold per stream.
   */
  holdHistory(stream: string, floor: () => number): void {
    this.stream(stream);
    this.holds.set(stream, floor);
  }

  streams(): Stream[] {
    return [...this.streamsByName.values()];
  }

  routeProgress(route: string): RouteProgress {
    const p = this.progress.get(route);
    if (!p) throw new UnknownRouteError(route);
    return p;
  }

  deadLetters(route: string): DeadLetters {
    const d = this.dead.get(route);
    if (!d) throw new UnknownRouteError(route);
    return d;
  }

  /**
   * Stores messages as one unit and resolves with their ids once durable. With an idempotency
   * key seen within the dedup window, resolves with the first publish's ids and stores nothing.
   */
  async publish(
    streamName: string,
    inputs: readonly PublishInput[],
    options: PublishOptions = {},
  ): Promise<PublishedRef[]> {
    if (this.closing) throw new ShuttingDownError();
    const stream = this.stream(streamName);
    const key =
      options.idempotencyKey === undefined ? undefined : dedupKey(streamName, options.idempotencyKey);
    const fingerprint = key === undefined ? undefined : fingerprintOf(inputs);
    if (key !== undefined) {
      this.expireDedup();
      const seen = this.dedup.get(key);
      if (seen) {
        if (seen.fingerprint !== undefined && seen.fingerprint !== fingerprint)
          throw new IdempotencyKeyReusedError(streamName, options.idempotencyKey!);
        return seen.refs;
      }
    }
    const withKey =
      options.idempotencyKey === undefined
        ? inputs
        : inputs.map((input) => ({ ...input, idempotencyKey: options.idempotencyKey, fingerprint }));
    const refs = this.append(stream, inputs, withKey, options.admit);
    // Taken before the append's awaits, so a concurrent retry with the same key waits for this one.
    if (key !== undefined) this.remember(key, refs, fingerprint);
    return refs;
  }

  /**
   * Stores messages each under its own idempotency key, new ones in one all-or-nothing append
   * (one durable write for the lot, in input order); see MessageStore.publishEach.
   */
  async publishEach(
    streamName: string,
    inputs: readonly KeyedPublishInput[],
    options: Omit<PublishOptions, 'idempotencyKey'> = {},
  ): Promise<PublishedEach> {
    if (this.closing) throw new ShuttingDownError();
    this.stream(streamName);
    if (inputs.length === 0) throw new InvalidArgumentError('A publish needs at least one message.');
    // A key another publish is still storing: wait for its outcome first (it may fail and free
    // the key), so this call's answer is its own and its new messages all or nothing.
    for (;;) {
      const pending = inputs
        .map((i) => this.dedup.get(dedupKey(streamName, i.idempotencyKey)))
        .filter((e): e is DedupEntry => e !== undefined && !e.settled);
      if (pending.length === 0) break;
      await Promise.allSettled(pending.map((e) => e.refs));
      if (this.closing) throw new ShuttingDownError();
    }
    // Looked up after the wait: the stream may have been removed meanwhile.
    const stream = this.stream(streamName);
    this.expireDedup();
    const fresh: { key: string; fingerprint: string; input: PublishInput; record: PublishInput }[] = [];
    // Per input: the first publish's refs (a used key) or the index of its message in `fresh`.
    const answers: (Promise<PublishedRef[]> | number)[] = [];
    const duplicate: boolean[] = [];
    const earlier = new Map<string, { fingerprint: string; at: number }>();
    for (const { idempotencyKey, ...input } of inputs) {
      const key = dedupKey(streamName, idempotencyKey);
      const fingerprint = fingerprintOf([input]);
      const seen = this.dedup.get(key);
      const before = earlier.get(key);
      const used = seen?.fingerprint ?? before?.fingerprint;
      if ((seen || before) && used !== undefined && used !== fingerprint)
        throw new IdempotencyKeyReusedError(streamName, idempotencyKey);
      duplicate.push(seen !== undefined || before !== undefined);
      if (seen) answers.push(seen.refs);
      else if (before) answers.push(before.at);
      else {
        earlier.set(key, { fingerprint, at: fresh.length });
        answers.push(fresh.length);
        fresh.push({ key, fingerprint, input, record: { ...input, idempotencyKey, fingerprint } });
      }
    }
    const appended =
      fresh.length === 0
        ? Promise.resolve([])
        : this.append(
            stream,
            fresh.map((f) => f.input),
            fresh.map((f) => f.record),
            options.admit,
          );
    for (const [j, f] of fresh.entries()) {
      const refs = appended.then((all) => [all[j]!]);
      // Awaited only by a later retry; the failure itself reaches the caller through `appended`.
      refs.catch(() => {});
      this.remember(f.key, refs, f.fingerprint);
    }
    const all = await appended;
    const refs = await Promise.all(
      answers.map(async (a) => (typeof a === 'number' ? all[a]! : (await a)[0]!)),
    );
    return { refs, duplicate };
  }

  /** Storage limits, then admission, then the append; resolves once durable. */
  private async append(
    stream: Stream,
    inputs: readonly PublishInput[],
    records: readonly PublishInput[],
    admit: PublishOptions['admit'],
  ): Promise<PublishedRef[]> {
    const bytes = inputs.reduce(
      (sum, i) => sum + (i.payload instanceof Uint8Array ? i.payload.byteLength : 0),
      0,
    );
    await this.guardStorage(stream.name, inputs);
    const release = await admit?.(stream.name, inputs.length, bytes);
    const refs = stream.append(records);
    if (release) refs.then(release, release);
    return refs;
  }

  private remember(key: string, refs: Promise<PublishedRef[]>, fingerprint: string | undefined): void {
    const entry: DedupEntry = { at: this.now(), refs, settled: false, fingerprint };
    this.dedup.set(key, entry);
    refs.then(
      () => {
        entry.settled = true;
      },
      () => {
        entry.settled = true;
        // A failed publish must not answer later retries with its error.
        if (this.dedup.get(key) === entry) this.dedup.delete(key);
      },
    );
  }

  private expireDedup(): void {
    const cutoff = this.now() - this.dedupWindowMs;
    for (const [k, e] of this.dedup) {
      if (e.at >= cutoff) break; // insertion order is time order
      this.dedup.delete(k);
    }
  }

  /** storage.maxBytes and storage.minFreeBytes: refuse new data, touch nothing stored. */
  private async guardStorage(stream: string, inputs: readonly PublishInput[]): Promise<void> {
    const { maxBytes, minFreeBytes } = this.options;
    if (maxBytes !== undefined) {
      const used = this.usedBytes();
      if (used >= maxBytes) {
        throw new StorageFullError(
          `Storage holds ${used} bytes, at its storage.maxBytes limit of ${maxBytes}; the message for stream "${stream}" was not stored. Routes draining or retention will free space; acceptance resumes by itself.`,
          inputs,
        );
      }
    }
    if (minFreeBytes !== undefined) {
      const now = this.now();
      if (!this.freeSpace || now - this.freeSpace.at > FREE_SPACE_CACHE_MS) {
        const measure = this.options.freeBytes ?? freeBytesOf;
        this.freeSpace = { at: now, bytes: await measure(this.options.dataDir) };
      }
      if (this.freeSpace.bytes < minFreeBytes) {
        throw new StorageFullError(
          `The filesystem of ${this.options.dataDir} has ${this.freeSpace.bytes} bytes free, below storage.minFreeBytes (${minFreeBytes}); the message for stream "${stream}" was not stored. Free disk space; acceptance resumes by itself.`,
          inputs,
        );
      }
    }
  }

  usedBytes(): number {
    let used = 0;
    for (const s of this.streamsByName.values()) used += s.log.stats().bytes;
    return used;
  }

  /** Stream and seq of a message id issued by this data directory. */
  locate(id: string): { stream: Stream; seq: number } {
    const parsed = parseMessageId(id);
    const stream = parsed && this.streamsByIncarnation.get(parsed.incarnation);
    if (!parsed || !stream || parsed.seq > stream.log.lastSeq) throw new UnknownMessageError(id);
    return { stream, seq: parsed.seq };
  }

  async readMessage(streamName: string, seq: number): Promise<StoredMessage | undefined> {
    const [m] = await this.stream(streamName).read({ fromSeq: seq, maxMessages: 1, untilSeq: seq });
    return m?.seq === seq ? m : undefined;
  }

  /**
   * Deletes log history that no route needs: below every reading route's lowest non-final
   * message and its lowest dead letter, and below a stream's hold. Streams no route reads and
   * without a hold keep their history.
   */
  async collectGarbage(): Promise<void> {
    for (const stream of this.streamsByName.values()) {
      const keepFrom = historyFloor(
        stream.name,
        this.progress,
        (route) => this.deadLetters(route),
        this.holds.get(stream.name),
      );
      if (keepFrom === undefined || keepFrom <= stream.log.firstSeq) continue;
      await stream.log.deleteBelow(keepFrom);
      const first = stream.log.firstSeq;
      for (const progress of this.progress.values()) progress.streams.get(stream.name)?.trimBelow(first);
    }
  }

  /** Refuses new publishes from now on (shutdown has begun). */
  stopIntake(): void {
    this.closing = true;
  }

  /**
   * Closes every stream even if one fails (what could be saved is saved; an index cache that
   * could not be is a warning), then releases the LOCK; rethrows the first failure.
   */
  async close(): Promise<void> {
    this.closing = true;
    let failure: { err: unknown } | undefined;
    try {
      for (const d of this.dead.values()) await d.close().catch(() => {});
      for (const s of this.streamsByName.values()) {
        await s.close().catch((err: unknown) => {
          failure ??= { err };
        });
      }
    } finally {
      await this.dirLock?.release().catch((err: unknown) =>
        this.options.onWarning?.({
          file: join(this.options.dataDir, 'LOCK'),
          message: `could not remove the LOCK of ${this.options.dataDir}: ${(err as Error).message}`,
          cause: err,
        }),
      );
      this.dirLock = undefined;
    }
    if (failure) throw failure.err;
  }
}

function dedupKey(stream: string, key: string): string {
  return `${stream}\u0000${key}`;
}

async function freeBytesOf(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}
