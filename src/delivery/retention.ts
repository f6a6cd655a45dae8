/**
 * A route's retention: what it keeps of its backlog, and what it refuses.
 *
 * - Age (`retention.maxAge`): the periodic sweep settles as `expired` every pending message
 *   older than maxAge, walking the stream's chunks (whole chunks below the cutoff at once, then
 *   a prefix of the boundary chunk: timestamps ascend with seq). A message's own TTL and maxAge
 *   are also checked when it is picked (`isExpired`), so nothing expired is ever sent.
 * - Size with `onFull: drop-oldest`: after every publish (and every sweep) the oldest pending
 *   messages beyond `maxMessages`, then beyond `maxBytes`, are settled as `pruned`. Calls made
 *   while a run is under way coalesce into one more run, so concurrent publishes never prune
 *   twice for the same excess.
 * - Size with `onFull: reject-new`: `admit` refuses a publish that would pass a limit
 *   (RouteFullError, 507), counting the room reserved by admitted publishes whose append has
 *   not settled yet.
 *
 * Messages at the target right now are never settled here (their outcome decides). Final states
 * go through the runner's `settle` (counters, progress save, receipts).
 */
import { RouteFullError } from '../errors.js';
import type { MessageStore, RouteProgressStore } from '../store/backend.js';
import type { StoredMessage } from '../store/message.js';
import type { FinalState, StreamProgress } from '../store/route-progress.js';
import type { Clock } from './clock.js';
import type { RouteOptions } from './route-options.js';

export type RetentionPolicy = Pick<
  RouteOptions,
  'name' | 'streams' | 'maxAgeMs' | 'maxMessages' | 'maxBytes' | 'onFull'
>;

export interface RetentionDeps {
  options: Readonly<RetentionPolicy>;
  store: Pick<MessageStore, 'stream'>;
  progress: Pick<RouteProgressStore, 'stream'>;
  clock: Clock;
  /** The seqs of a stream at the target now: never settled by retention. */
  inFlight: (stream: string) => ReadonlyMap<number, unknown>;
  /** Records final states (counted, saved, receipts woken). */
  settle: (stream: string, p: StreamProgress, seqs: readonly number[], state: FinalState) => void;
  /** Pending messages of the route over all its streams. */
  pendingCount: () => number;
  /** Log bytes from the oldest pending message on, over all its streams. */
  usedBytes: () => Promise<number>;
}

/** Whether a message is past its own TTL or the route's maxAge at `now`. */
export function isExpired(m: StoredMessage, now: number, maxAgeMs: number | undefined): boolean {
  if (m.expiresAt !== undefined && m.expiresAt <= now) return true;
  return maxAgeMs !== undefined && m.timestamp + maxAgeMs <= now;
}

const READ_CHUNK = 1000;
const noop = (): void => {};

export class Retention {
  /** Room taken by reject-new admissions whose append has not settled yet. */
  private readonly reserved = { count: 0, bytes: 0 };
  private limiting: Promise<void> | undefined;
  private limitAgain = false;

  constructor(private readonly deps: RetentionDeps) {}

  /** The pruning run under way, if any (waited for before the store closes). */
  get busy(): Promise<void> | undefined {
    return this.limiting;
  }

  /** The periodic sweep: expires messages past maxAge, then applies the count and size limits. */
  async sweep(): Promise<void> {
    const opts = this.deps.options;
    if (opts.maxAgeMs !== undefined) {
      const cutoff = this.deps.clock.now() - opts.maxAgeMs;
      for (const name of opts.streams) await this.expireOlderThan(name, cutoff);
    }
    await this.enforceLimits();
  }

  /** With drop-oldest: prunes the oldest pending messages beyond maxMessages and maxBytes. */
  async enforceLimits(): Promise<void> {
    const opts = this.deps.options;
    if (opts.onFull !== 'drop-oldest' || (opts.maxMessages === undefined && opts.maxBytes === undefined))
      return;
    if (this.limiting) {
      this.limitAgain = true;
      return this.limiting;
    }
    this.limiting = (async () => {
      try {
        do {
          this.limitAgain = false;
          await this.pruneToLimits();
        } while (this.limitAgain);
      } finally {
        this.limiting = undefined;
      }
    })();
    return this.limiting;
  }

  /** With onFull reject-new: refuses a publish that would pass maxMessages or maxBytes. */
  async admit(stream: string, count: number, bytes: number): Promise<() => void> {
    const opts = this.deps.options;
    if (opts.onFull !== 'reject-new') return noop;
    // Room is reserved until the append settles, so publishes in flight together cannot pass
    // the limit (each sees the others' reservations).
    const reserved = this.reserved;
    reserved.count += count;
    reserved.bytes += bytes;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      reserved.count -= count;
      reserved.bytes -= bytes;
    };
    try {
      if (opts.maxMessages !== undefined && this.deps.pendingCount() + reserved.count > opts.maxMessages) {
        throw new RouteFullError(opts.name, stream, `retention.maxMessages ${opts.maxMessages}`);
      }
      if (opts.maxBytes !== undefined && (await this.deps.usedBytes()) + reserved.bytes > opts.maxBytes) {
        throw new RouteFullError(opts.name, stream, `retention.maxBytes ${opts.maxBytes}`);
      }
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /**
   * Settles the oldest `count` pending messages (not at the target) of a stream as `state`
   * (pruning, or an operator's purge); returns how many.
   */
  settleOldest(streamName: string, count: number, state: FinalState): number {
    const stream = this.deps.store.stream(streamName);
    const p = this.deps.progress.stream(streamName);
    const flying = this.deps.inFlight(streamName);
    const seqs: number[] = [];
    for (const [a, b] of p.done.gaps(p.start, stream.lastSeq)) {
      for (let s = a; s <= b && seqs.length < count; s++) if (!flying.has(s)) seqs.push(s);
      if (seqs.length >= count) break;
    }
    if (seqs.length > 0) this.deps.settle(streamName, p, seqs, state);
    return seqs.length;
  }

  private async pruneToLimits(): Promise<void> {
    const opts = this.deps.options;
    if (opts.maxMessages !== undefined) {
      let excess = this.deps.pendingCount() - opts.maxMessages;
      for (const name of opts.streams) {
        if (excess <= 0) break;
        excess -= this.settleOldest(name, excess, 'pruned');
      }
    }
    if (opts.maxBytes !== undefined) {
      let excess = (await this.deps.usedBytes()) - opts.maxBytes;
      for (const name of opts.streams) {
        if (excess <= 0) break;
        excess -= await this.pruneBytes(name, excess);
      }
    }
  }

  private async expireOlderThan(streamName: string, cutoff: number): Promise<void> {
    const stream = this.deps.store.stream(streamName);
    const p = this.deps.progress.stream(streamName);
    for (const seg of await stream.chunks()) {
      if (seg.lastSeq < p.floor()) continue;
      if (seg.maxTimestamp < cutoff) {
        this.settleRange(streamName, seg.baseSeq, seg.lastSeq, 'expired');
        continue;
      }
      // The boundary chunk: timestamps ascend with seq, so expire a prefix of it.
      let from = Math.max(seg.baseSeq, p.floor());
      for (;;) {
        const batch = await stream.read({ fromSeq: from, untilSeq: seg.lastSeq, maxMessages: READ_CHUNK });
        const old = batch.filter((m) => m.timestamp < cutoff);
        if (old.length > 0) this.settleRange(streamName, from, old.at(-1)!.seq, 'expired');
        if (old.length < batch.length || batch.length === 0) return;
        from = batch.at(-1)!.seq + 1;
      }
    }
  }

  private async pruneBytes(streamName: string, excess: number): Promise<number> {
    const stream = this.deps.store.stream(streamName);
    const p = this.deps.progress.stream(streamName);
    let freed = 0;
    let from = p.floor();
    while (freed < excess && from <= stream.lastSeq) {
      const batch = await stream.read({ fromSeq: from, maxMessages: READ_CHUNK });
      if (batch.length === 0) break;
      const flying = this.deps.inFlight(streamName);
      const prune: number[] = [];
      for (const m of batch) {
        if (freed >= excess) break;
        if (p.done.has(m.seq) || flying.has(m.seq)) continue;
        prune.push(m.seq);
        freed += m.payloadBytes;
      }
      if (prune.length > 0) this.deps.settle(streamName, p, prune, 'pruned');
      from = batch.at(-1)!.seq + 1;
    }
    return freed;
  }

  private settleRange(streamName: string, first: number, last: number, state: FinalState): number {
    const p = this.deps.progress.stream(streamName);
    const flying = this.deps.inFlight(streamName);
    const seqs: number[] = [];
    for (const [a, b] of p.done.gaps(Math.max(first, p.start), last)) {
      for (let s = a; s <= b; s++) if (!flying.has(s)) seqs.push(s);
    }
    if (seqs.length > 0) this.deps.settle(streamName, p, seqs, state);
    return seqs.length;
  }
}
