/**
 * Route progress and dead letters in JetStream KV buckets (docs/cluster.md, "Route state"):
 *
 *   <prefix>_progress   key `<route>`: the route's progress, JSON in the embedded store's
 *                       progress.state format (version 1), plus `writer` (the node id)
 *   <prefix>_dead       key `<route>.<encoded stream>.<seq>`: one dead letter, JSON
 *
 * Progress writes are compare-and-set on the entry's revision (create when absent), so a node
 * never overwrites state another node wrote since it read it (ClusterWriteConflictError); in a
 * gateway, the route lease's revision fences them (`lease` in the value, JetStreamStore.fenceProgress). Both buckets keep one revision per key
 * (`history: 1`), file storage, the configured replicas.
 */

import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { ClusterUnavailableError, ClusterWriteConflictError } from '../errors.js';
import type { DeadLetterStore, RouteProgressStore } from '../store/backend.js';
import { type DeadLetter, DeadLetterIndex } from '../store/dead-letters.js';
import {
  initialRouteState,
  type PersistedRouteState,
  type RouteCounters,
  restoreStreamProgress,
  type SavedStreamProgress,
  type StreamProgress,
  saveStreamProgress,
  zeroCounters,
} from '../store/route-progress.js';
import { encodeName, isUnavailable } from './jetstream-stream.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const isConflict = (err: unknown) =>
  err instanceof JetStreamApiError &&
  (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
    err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

/** The saved progress, as in the embedded store's progress.state (DO NOT RENAME FIELDS). */
interface ProgressValue {
  version: 1;
  writer: string;
  /** The writer's route lease revision (the fencing token), when routes have owners. */
  lease?: number;
  route: PersistedRouteState;
  counters: RouteCounters;
  streams: Record<string, SavedStreamProgress>;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

export class JetStreamRouteProgress implements RouteProgressStore {
  /** Bytes of a write whose answer never came: it may have committed. */
  private unanswered: Uint8Array | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly name: string,
    private readonly nodeId: string,
    private entryRevision: number,
    public route: PersistedRouteState,
    public counters: RouteCounters,
    readonly streams: Map<string, StreamProgress>,
    private readonly fence: (() => { token: number | undefined } | undefined) | undefined,
  ) {}

  static async open(
    kv: KV,
    name: string,
    nodeId: string,
    streams: readonly string[],
    startOf: (stream: string) => number,
    now: number,
    /** The route's lease fence, once the route has one: its token while this node owns the lease. */
    fence?: () => { token: number | undefined } | undefined,
  ): Promise<JetStreamRouteProgress> {
    const e = await kv.get(name);
    const saved =
      e && e.operation === 'PUT' ? (JSON.parse(decoder.decode(e.value)) as ProgressValue) : undefined;
    const progress = restoreStreamProgress(saved?.streams, streams, startOf);
    const route = saved?.route ?? initialRouteState(now);
    const counters = { ...zeroCounters(), ...saved?.counters };
    return new JetStreamRouteProgress(kv, name, nodeId, e?.revision ?? 0, route, counters, progress, fence);
  }

  /** The KV revision of the entry this node last read or wrote (0: none yet). */
  get revision(): number {
    return this.entryRevision;
  }

  stream(name: string): StreamProgress {
    const p = this.streams.get(name);
    if (!p) throw new Error(`route progress has no stream ${name}`);
    return p;
  }

  async save(inFlight: ReadonlyMap<string, Iterable<number>>): Promise<void> {
    const fence = this.fence?.();
    const lease = fence?.token;
    if (fence && lease === undefined)
      throw new ClusterWriteConflictError(
        `The progress of route "${this.name}" (this node does not own the route's lease)`,
      );
    const streams = saveStreamProgress(this.streams, inFlight);
    const value: ProgressValue = {
      version: 1,
      writer: this.nodeId,
      ...(lease === undefined ? {} : { lease }),
      route: this.route,
      counters: this.counters,
      streams,
    };
    await this.write(encoder.encode(JSON.stringify(value)), lease);
  }

  private async write(bytes: Uint8Array, lease: number | undefined, again = true): Promise<void> {
    const what = `The progress of route "${this.name}"`;
    try {
      this.entryRevision =
        this.entryRevision === 0
          ? await this.kv.create(this.name, bytes)
          : await this.kv.update(this.name, bytes, this.entryRevision);
      this.unanswered = undefined;
    } catch (err) {
      if (isConflict(err)) {
        // Our own earlier write that went unanswered may be what moved the revision.
        const e = await this.kv.get(this.name);
        if (
          e &&
          e.operation === 'PUT' &&
          (sameBytes(e.value, bytes) || (this.unanswered && sameBytes(e.value, this.unanswered)))
        ) {
          this.entryRevision = e.revision;
          this.unanswered = undefined;
          if (!sameBytes(e.value, bytes) && again) return this.write(bytes, lease, false);
          return;
        }
        // Written under an older lease (the previous owner's last save, landing late): this
        // node owns the route now and overwrites it. Under a newer lease: this node is stale.
        if (e && lease !== undefined && again && leaseOf(e) < lease) {
          this.entryRevision = e.revision;
          return this.write(bytes, lease, false);
        }
        throw new ClusterWriteConflictError(what);
      }
      if (isUnavailable(err)) {
        this.unanswered = bytes;
        throw new ClusterUnavailableError(`${what} could not be saved`, {
          cause: err,
          mayHaveCommitted: true,
        });
      }
      throw err;
    }
  }
}

/** The lease revision an entry was written under (0: none, or deleted). */
function leaseOf(e: { operation: string; value: Uint8Array }): number {
  if (e.operation !== 'PUT') return 0;
  return (JSON.parse(decoder.decode(e.value)) as ProgressValue).lease ?? 0;
}

const letterKey = (route: string, stream: string, seq: number) => `${route}.${encodeName(stream)}.${seq}`;

/** A route's dead letters, each its own KV entry; all of them are loaded on open. */
export class JetStreamDeadLetters extends DeadLetterIndex implements DeadLetterStore {
  private constructor(
    private readonly kv: KV,
    private readonly route: string,
  ) {
    super();
  }

  static async open(kv: KV, route: string): Promise<JetStreamDeadLetters> {
    const dl = new JetStreamDeadLetters(kv, route);
    const keys: string[] = [];
    for await (const k of await kv.keys(`${route}.>`)) keys.push(k);
    const entries = await Promise.all(keys.map((k) => kv.get(k)));
    for (const e of entries) {
      if (e?.operation !== 'PUT') continue;
      const l = JSON.parse(decoder.decode(e.value)) as DeadLetter;
      dl.letters.set(DeadLetterIndex.keyOf(l.stream, l.seq), l);
    }
    return dl;
  }

  /** Durable once resolved; on failure some letters may be stored: adding them again is harmless. */
  async add(letters: readonly DeadLetter[]): Promise<void> {
    await this.guard('stored', () =>
      Promise.all(
        letters.map((l) =>
          this.kv.put(letterKey(this.route, l.stream, l.seq), encoder.encode(JSON.stringify(l))),
        ),
      ),
    );
    for (const l of letters) this.letters.set(DeadLetterIndex.keyOf(l.stream, l.seq), l);
  }

  async remove(letters: readonly DeadLetter[]): Promise<void> {
    await this.guard('removed', () =>
      Promise.all(letters.map((l) => this.kv.purge(letterKey(this.route, l.stream, l.seq)))),
    );
    for (const l of letters) this.letters.delete(DeadLetterIndex.keyOf(l.stream, l.seq));
  }

  private async guard(what: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (isUnavailable(err))
        throw new ClusterUnavailableError(`Dead letters of route "${this.route}" could not be ${what}`, {
          cause: err,
          mayHaveCommitted: true,
        });
      throw err;
    }
  }
}
