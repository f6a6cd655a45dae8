/**
 * The durable progress of one route: per stream it reads, which sequence numbers reached which
 * final state (delivered, expired, pruned, purged, dead), the route's state-machine state
 * (including an operator's `held`), and its counters. Persisted atomically to
 * `routes/<name>/progress.state`; the delivery engine decides when (coalesced after acks,
 * immediately on state changes). After a crash, acks since the last save are delivered again
 * (at-least-once); the messages that were in flight at the last save are counted as redeliveries.
 */

import { join } from 'node:path';
import { readAtomicJson, type StorageFileSystem, writeAtomicJson } from '../log/index.js';
import type { RouteProgressStore } from './backend.js';
import { type SeqRange, SeqSet } from './seq-set.js';

export const FinalStates = ['delivered', 'expired', 'pruned', 'purged', 'dead'] as const;
export type FinalState = (typeof FinalStates)[number];
export type MessageState = FinalState | 'pending';

export const RouteStates = ['forwarding', 'storing', 'draining', 'held'] as const;
export type RouteStateName = (typeof RouteStates)[number];

export interface RouteCounters {
  forwarded: number;
  expired: number;
  pruned: number;
  purged: number;
  deadLettered: number;
  /** Deliveries of messages that had been sent before (after a nack, or in flight at a crash). */
  redelivered: number;
  /** Attempts answered nack or timed out. */
  failures: number;
  /**
   * Time batches waited for byte budgets (replay.bytesPerSecond, a target's or the gateway's
   * maxBytesPerSecond), ms. Absent from progress saved before it existed (loads as 0).
   */
  throttledMs: number;
}

export interface PersistedRouteState {
  state: RouteStateName;
  /** ms since the epoch the route entered `state`. */
  since: number;
  lastError: string | undefined;
  /** Consecutive probe failures while storing, for the backoff. */
  probeFailures: number;
}

export function zeroCounters(): RouteCounters {
  return {
    forwarded: 0,
    expired: 0,
    pruned: 0,
    purged: 0,
    deadLettered: 0,
    redelivered: 0,
    failures: 0,
    throttledMs: 0,
  };
}

/** Beyond this many ranges, a final-state set forgets what the log no longer holds. */
const MAX_HISTORY_RANGES = 10_000;

export class StreamProgress {
  /** First seq this route is responsible for in the stream. */
  start: number;
  readonly sets: Record<FinalState, SeqSet>;
  /** Union of all final states. */
  readonly done = new SeqSet();
  /** In flight at the last save: delivering them again counts as a redelivery. */
  readonly wasInFlight: SeqSet;

  constructor(start: number, sets?: Partial<Record<FinalState, SeqSet>>, wasInFlight?: SeqSet) {
    this.start = start;
    this.sets = {
      delivered: sets?.delivered ?? new SeqSet(),
      expired: sets?.expired ?? new SeqSet(),
      pruned: sets?.pruned ?? new SeqSet(),
      purged: sets?.purged ?? new SeqSet(),
      dead: sets?.dead ?? new SeqSet(),
    };
    for (const set of Object.values(this.sets)) for (const [a, b] of set.ranges()) this.done.addRange(a, b);
    this.wasInFlight = wasInFlight ?? new SeqSet();
  }

  mark(seq: number, state: FinalState): void {
    this.sets[state].add(seq);
    this.done.add(seq);
  }

  markRange(first: number, last: number, state: FinalState): void {
    this.sets[state].addRange(first, last);
    this.done.addRange(first, last);
  }

  /** A dead letter resubmitted: the message is pending again. */
  unmarkDead(seq: number): void {
    this.sets.dead.delete(seq);
    this.done.delete(seq);
  }

  stateOf(seq: number): MessageState | undefined {
    for (const state of FinalStates) if (this.sets[state].has(seq)) return state;
    return seq < this.start ? undefined : 'pending';
  }

  /** Lowest seq that is not final (the route still needs it in the log). */
  floor(): number {
    return this.done.nextMissing(this.start);
  }

  /**
   * The log dropped everything below `seq`. The per-state sets are kept so receipts of old
   * messages stay exact, unless they fragment past MAX_HISTORY_RANGES (memory stays bounded).
   */
  trimBelow(seq: number): void {
    if (seq <= this.start) return;
    this.start = seq;
    this.done.removeBelow(seq);
    this.wasInFlight.removeBelow(seq);
    for (const set of Object.values(this.sets)) if (set.rangeCount > MAX_HISTORY_RANGES) set.removeBelow(seq);
  }
}

/** A stream's progress as persisted (both backends write this shape; do not rename fields). */
export type SavedStreamProgress = { start: number; wasInFlight: SeqRange[] } & Record<FinalState, SeqRange[]>;

interface ProgressFile {
  version: 1;
  route: PersistedRouteState;
  counters: RouteCounters;
  streams: Record<string, SavedStreamProgress>;
}

/** Each stream's progress from what was saved; a stream read for the first time starts at `startOf(stream)`. */
export function restoreStreamProgress(
  saved: Readonly<Record<string, SavedStreamProgress>> | undefined,
  streams: readonly string[],
  startOf: (stream: string) => number,
): Map<string, StreamProgress> {
  const progress = new Map<string, StreamProgress>();
  for (const name of streams) {
    const p = saved?.[name];
    if (!p) {
      progress.set(name, new StreamProgress(startOf(name)));
      continue;
    }
    const sets = Object.fromEntries(FinalStates.map((f) => [f, SeqSet.fromRanges(p[f])])) as Record<
      FinalState,
      SeqSet
    >;
    progress.set(name, new StreamProgress(p.start, sets, SeqSet.fromRanges(p.wasInFlight)));
  }
  return progress;
}

/** What to persist of each stream's progress; `inFlight` (at the target now) joins wasInFlight to count redeliveries. */
export function saveStreamProgress(
  streams: ReadonlyMap<string, StreamProgress>,
  inFlight: ReadonlyMap<string, Iterable<number>>,
): Record<string, SavedStreamProgress> {
  const out: Record<string, SavedStreamProgress> = {};
  for (const [name, p] of streams) {
    const flying = SeqSet.fromRanges(p.wasInFlight.ranges());
    for (const seq of inFlight.get(name) ?? []) flying.add(seq);
    out[name] = {
      start: p.start,
      delivered: p.sets.delivered.ranges(),
      expired: p.sets.expired.ranges(),
      pruned: p.sets.pruned.ranges(),
      purged: p.sets.purged.ranges(),
      dead: p.sets.dead.ranges(),
      wasInFlight: flying.ranges(),
    };
  }
  return out;
}

/** A fresh route's persisted state. */
export function initialRouteState(now: number): PersistedRouteState {
  return { state: 'forwarding', since: now, lastError: undefined, probeFailures: 0 };
}

export class RouteProgress implements RouteProgressStore {
  private constructor(
    private readonly fs: StorageFileSystem,
    private readonly path: string,
    public route: PersistedRouteState,
    public counters: RouteCounters,
    readonly streams: Map<string, StreamProgress>,
  ) {}

  /**
   * Loads a route's progress, or starts it fresh. A stream the route reads for the first time
   * starts at `startOf(stream)`: everything the stream still holds.
   */
  static async open(
    fs: StorageFileSystem,
    routeDir: string,
    streams: readonly string[],
    startOf: (stream: string) => number,
    now: number,
  ): Promise<RouteProgress> {
    await fs.mkdir(routeDir);
    const path = join(routeDir, 'progress.state');
    const file = (await readAtomicJson(fs, path)) as ProgressFile | undefined;
    const progress = restoreStreamProgress(file?.streams, streams, startOf);
    const route = file?.route ?? initialRouteState(now);
    const counters = { ...zeroCounters(), ...file?.counters };
    return new RouteProgress(fs, path, route, counters, progress);
  }

  stream(name: string): StreamProgress {
    const p = this.streams.get(name);
    if (!p) throw new Error(`route progress has no stream ${name}`);
    return p;
  }

  /**
   * Writes everything atomically. `inFlight` is what is out at the target right now; it is
   * saved (with what was in flight before and not yet redelivered) to count redeliveries.
   */
  async save(inFlight: ReadonlyMap<string, Iterable<number>>): Promise<void> {
    const streams = saveStreamProgress(this.streams, inFlight);
    const file: ProgressFile = { version: 1, route: this.route, counters: this.counters, streams };
    await writeAtomicJson(this.fs, this.path, file);
  }
}
