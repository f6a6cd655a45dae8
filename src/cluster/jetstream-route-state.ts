/**
 * Route progress and dead letters in JetStream KV buckets (docs/cluster.md, "Route state"):
 *
 *   <prefix>_progress   key `<route>`: the route's progress, JSON in the embedded store's
 *                       progress.state format (version 1), plus `writer` (the node id)
 *   <prefix>_dead       key `<route>.<encoded stream>.<seq>`: one dead letter, JSON
 *
 * Progress writes are compare-and-set on the entry's revision (create when absent), so a node
 * never overwrites state another node wrote since it read it (ClusterWriteConflictError); the
 * route lease's revision will fence these writes later. Both buckets keep one revision per key
 * (`history: 1`), file storage, the configured replicas.
 */

import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { ClusterUnavailableError, ClusterWriteConflictError } from '../errors.js';
import type { DeadLetterStore, RouteProgressStore } from '../store/backend.js';
import type { DeadLetter } from '../store/dead-letters.js';
import {
  type FinalState,
  FinalStates,
  type PersistedRouteState,
  type RouteCounters,
  StreamProgress,
  zeroCounters,
} from '../store/route-progress.js';
import { type SeqRange, SeqSet } from '../store/seq-set.js';
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
  route: PersistedRouteState;
  counters: RouteCounters;
  streams: Record<string, { start: number; wasInFlight: SeqRange[] } & Record<FinalState, SeqRange[]>>;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

export class JetStreamRouteProgress implements RouteProgressStore {
  /** Bytes of a write whose answer never came: it may have committed. */
  private unanswered: Uint8Array | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly name: string,
    private readonly nodeId: string,
    private revision: number,
    public route: PersistedRouteState,
    public counters: RouteCounters,
    readonly streams: Map<string, StreamProgress>,
  ) {}

  static async open(
    kv: KV,
    name: string,
    nodeId: string,
    streams: readonly string[],
    startOf: (stream: string) => number,
    now: number,
  ): Promise<JetStreamRouteProgress> {
    const e = await kv.get(name);
    const saved =
      e && e.operation === 'PUT' ? (JSON.parse(decoder.decode(e.value)) as ProgressValue) : undefined;
    const progress = new Map<string, StreamProgress>();
    for (const s of streams) {
      const p = saved?.streams[s];
      if (!p) {
        progress.set(s, new StreamProgress(startOf(s)));
        continue;
      }
      const sets = Object.fromEntries(FinalStates.map((f) => [f, SeqSet.fromRanges(p[f])])) as Record<
        FinalState,
        SeqSet
      >;
      progress.set(s, new StreamProgress(p.start, sets, SeqSet.fromRanges(p.wasInFlight)));
    }
    const route = saved?.route ?? { state: 'forwarding', since: now, lastError: undefined, probeFailures: 0 };
    const counters = { ...zeroCounters(), ...saved?.counters };
    return new JetStreamRouteProgress(kv, name, nodeId, e?.revision ?? 0, route, counters, progress);
  }

  stream(name: string): StreamProgress {
    const p = this.streams.get(name);
    if (!p) throw new Error(`route progress has no stream ${name}`);
    return p;
  }

  async save(inFlight: ReadonlyMap<string, Iterable<number>>): Promise<void> {
    const streams: ProgressValue['streams'] = {};
    for (const [name, p] of this.streams) {
      const flying = SeqSet.fromRanges(p.wasInFlight.ranges());
      for (const seq of inFlight.get(name) ?? []) flying.add(seq);
      streams[name] = {
        start: p.start,
        delivered: p.sets.delivered.ranges(),
        expired: p.sets.expired.ranges(),
        pruned: p.sets.pruned.ranges(),
        purged: p.sets.purged.ranges(),
        dead: p.sets.dead.ranges(),
        wasInFlight: flying.ranges(),
      };
    }
    const value: ProgressValue = {
      version: 1,
      writer: this.nodeId,
      route: this.route,
      counters: this.counters,
      streams,
    };
    await this.write(encoder.encode(JSON.stringify(value)));
  }

  private async write(bytes: Uint8Array, again = true): Promise<void> {
    const what = `The progress of route "${this.name}"`;
    try {
      this.revision =
        this.revision === 0
          ? await this.kv.create(this.name, bytes)
          : await this.kv.update(this.name, bytes, this.revision);
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
          this.revision = e.revision;
          this.unanswered = undefined;
          if (!sameBytes(e.value, bytes) && again) return this.write(bytes, false);
          return;
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

const letterKey = (route: string, stream: string, seq: number) => `${route}.${encodeName(stream)}.${seq}`;
const mapKey = (stream: string, seq: number) => `${stream}\u0000${seq}`;

/** A route's dead letters, each its own KV entry; all of them are loaded on open. */
export class JetStreamDeadLetters implements DeadLetterStore {
  private readonly letters = new Map<string, DeadLetter>();

  private constructor(
    private readonly kv: KV,
    private readonly route: string,
  ) {}

  static async open(kv: KV, route: string): Promise<JetStreamDeadLetters> {
    const dl = new JetStreamDeadLetters(kv, route);
    const keys: string[] = [];
    for await (const k of await kv.keys(`${route}.>`)) keys.push(k);
    const entries = await Promise.all(keys.map((k) => kv.get(k)));
    for (const e of entries) {
      if (e?.operation !== 'PUT') continue;
      const l = JSON.parse(decoder.decode(e.value)) as DeadLetter;
      dl.letters.set(mapKey(l.stream, l.seq), l);
    }
    return dl;
  }

  has(stream: string, seq: number): boolean {
    return this.letters.has(mapKey(stream, seq));
  }

  get(stream: string, seq: number): DeadLetter | undefined {
    return this.letters.get(mapKey(stream, seq));
  }

  byId(id: string): DeadLetter | undefined {
    for (const l of this.letters.values()) if (l.id === id) return l;
    return undefined;
  }

  list(): DeadLetter[] {
    return [...this.letters.values()].sort((a, b) =>
      a.stream === b.stream ? a.seq - b.seq : a.stream < b.stream ? -1 : 1,
    );
  }

  keysOf(stream: string): Set<string> {
    const keys = new Set<string>();
    for (const l of this.letters.values()) if (l.stream === stream && l.key !== undefined) keys.add(l.key);
    return keys;
  }

  minSeq(stream: string): number | undefined {
    let min: number | undefined;
    for (const l of this.letters.values())
      if (l.stream === stream && (min === undefined || l.seq < min)) min = l.seq;
    return min;
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
    for (const l of letters) this.letters.set(mapKey(l.stream, l.seq), l);
  }

  async remove(letters: readonly DeadLetter[]): Promise<void> {
    await this.guard('removed', () =>
      Promise.all(letters.map((l) => this.kv.purge(letterKey(this.route, l.stream, l.seq)))),
    );
    for (const l of letters) this.letters.delete(mapKey(l.stream, l.seq));
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
