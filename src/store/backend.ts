/**
 * The storage interface the delivery engine and the library run on (SPEC §3, issue 10): streams,
 * routes' progress and dead letters, idempotent publish, history collection. The embedded
 * backend (`Store` over the segmented log) implements it; a cluster backend on NATS JetStream is
 * to implement the same interface and pass the same contract suite
 * (`test/store/contract.ts`, `describeStoreContract`). Nothing above this layer may reach
 * behind it (to a log, a file or a JetStream object).
 *
 * What each backend must guarantee is the contract suite's to say; in short: `publish` resolves
 * only once the messages are durable (the configured fsync, or a replicated PubAck) and is
 * all-or-nothing; seqs of a stream are dense and ascending from 1 within an incarnation;
 * `save`d progress and `add`ed dead letters survive a restart; collection never removes a
 * message a route still needs.
 */
import type { Readable } from 'node:stream';
import type { DeadLetter } from './dead-letters.js';
import type { StoredMessage } from './message.js';
import type { PersistedRouteState, RouteCounters, StreamProgress } from './route-progress.js';
import type { PublishedRef, PublishInput, ReadMessagesOptions } from './stream.js';

/** A run of seqs with the time bounds of its messages, oldest first (log segments, in the embedded backend). */
export interface StreamChunk {
  baseSeq: number;
  lastSeq: number;
  bytes: number;
  /** ms; greater than maxTimestamp when the chunk holds no message. */
  minTimestamp: number;
  maxTimestamp: number;
}

export interface StreamStats {
  firstSeq: number;
  lastSeq: number;
  records: number;
  bytes: number;
}

/** One stream as the engine reads it. */
export interface MessageStream {
  readonly name: string;
  /** First seq still held (firstSeq > lastSeq when empty). */
  readonly firstSeq: number;
  /** Last seq durably stored. */
  readonly lastSeq: number;
  idOf(seq: number): string;
  read(options: ReadMessagesOptions): Promise<StoredMessage[]>;
  /** A message's payload as a byte stream (also when it lives outside the record). */
  openPayload(message: StoredMessage): Readable;
  /** The stream's seqs in chunks with their time bounds, oldest first: age retention walks these. */
  chunks(): Promise<StreamChunk[]>;
  /** Bytes held from `seq` on (approximate where the backend cannot tell exactly). */
  bytesFrom(seq: number): Promise<number>;
  stats(): StreamStats;
}

/** A route's durable progress: final states per stream, route state and counters. */
export interface RouteProgressStore {
  route: PersistedRouteState;
  counters: RouteCounters;
  readonly streams: ReadonlyMap<string, StreamProgress>;
  stream(name: string): StreamProgress;
  /** Writes everything atomically; `inFlight` is what is at the target now (to count redeliveries). */
  save(inFlight: ReadonlyMap<string, Iterable<number>>): Promise<void>;
}

/** A route's dead letters, durable once `add` resolves. */
export interface DeadLetterStore {
  has(stream: string, seq: number): boolean;
  get(stream: string, seq: number): DeadLetter | undefined;
  byId(id: string): DeadLetter | undefined;
  list(): DeadLetter[];
  keysOf(stream: string): Set<string>;
  minSeq(stream: string): number | undefined;
  add(letters: readonly DeadLetter[]): Promise<void>;
  remove(letters: readonly DeadLetter[]): Promise<void>;
}

/** A message with its own idempotency key. */
export interface KeyedPublishInput extends PublishInput {
  idempotencyKey: string;
}

/** What publishEach did with each input, in input order. */
export interface PublishedEach {
  refs: PublishedRef[];
  /** True where the key had been used: the ref is the first publish's and nothing was stored. */
  duplicate: boolean[];
}

export interface MessageStorePublishOptions {
  idempotencyKey?: string | undefined;
  /**
   * Called before the append with the stream, message count and payload bytes (streamed
   * payloads count as 0 here); throws to refuse (e.g. a route full with reject-new). May return
   * a function, called once the append settled (a reservation's release).
   */
  admit?: (
    stream: string,
    count: number,
    bytes: number,
  ) => Promise<(() => void) | undefined> | (() => void) | undefined;
}

export interface MessageStore {
  /** Where node-local files live (adapters keep their state under it). */
  readonly dataDir: string;
  /** The stream, or UnknownStreamError. */
  stream(name: string): MessageStream;
  streams(): MessageStream[];
  /** Opens (creating if needed) a stream that is not in the configuration. */
  addStream(name: string): Promise<MessageStream>;
  /** Deletes a stream no route reads, with all its data (StreamInUseError otherwise). */
  removeStream(name: string): Promise<void>;
  /** Keeps a stream's history from `floor()` up (a store-and-forward topic's retention). */
  holdHistory(stream: string, floor: () => number): void;
  routeProgress(route: string): RouteProgressStore;
  deadLetters(route: string): DeadLetterStore;
  /** Stores messages all-or-nothing; resolves once durable. A used idempotency key answers the first publish. */
  publish(
    stream: string,
    inputs: readonly PublishInput[],
    options?: MessageStorePublishOptions,
  ): Promise<PublishedRef[]>;
  /**
   * Stores messages each under its own idempotency key (`waystation import`), in order. A message
   * whose key was used within the dedup window (or earlier in `inputs`) answers the first
   * publish's ref and is not stored again (`duplicate` true); a key reused for a different
   * message is refused (IdempotencyKeyReusedError) before anything is stored.
   */
  publishEach(
    stream: string,
    inputs: readonly KeyedPublishInput[],
    options?: Omit<MessageStorePublishOptions, 'idempotencyKey'>,
  ): Promise<PublishedEach>;
  /** Bytes all streams hold. */
  usedBytes(): number;
  /** Where a message id points (UnknownMessageError when malformed or not here). */
  locate(id: string): { stream: MessageStream; seq: number };
  readMessage(stream: string, seq: number): Promise<StoredMessage | undefined>;
  /** Deletes history no route, dead letter or hold needs any more. */
  collectGarbage(): Promise<void>;
  /** Refuses new publishes from now on. */
  stopIntake(): void;
  close(): Promise<void>;
}
