/**
 * Picking by ordering: which pending messages of a stream may go next, in the route's order.
 *
 * Every ordering skips messages at the target now, final ones, and (store-and-forward off)
 * those waiting for their retry; what differs is in `OrderingRules`:
 * - fifo: oldest first, strictly: nothing newer passes a message waiting for its retry.
 * - lifo: newest first.
 * - unordered: oldest first, and while draining, messages that arrived after the drain began
 *   ("live", from `liveFrom`) go first and unpaced, the backlog beside them.
 * - key: oldest first, but a message whose key has one at the target, waiting for a retry or
 *   dead-lettered (IBM event sequencing) waits; so picks look further ahead for other keys.
 *
 * `candidates` walks the progress's gaps (no log read); `choose` filters what was read, settles
 * expired messages through `expire`, and applies key blocking and the batch byte limit. Neither
 * sets timers: a retry wait that ends later asks the runner to `wakeIn` then.
 */
import type { MessageStream } from '../store/backend.js';
import type { StoredMessage } from '../store/message.js';
import type { StreamProgress } from '../store/route-progress.js';
import { isExpired } from './retention.js';
import { attemptKey, type RetryWait } from './retries.js';
import type { Ordering, RouteOptions } from './route-options.js';

/** How one ordering picks. */
export interface OrderingRules {
  /** Newest first. */
  readonly backward: boolean;
  /** A message waiting for its retry holds back everything after it. */
  readonly retryBlocksAll: boolean;
  /** A key with a message at the target, waiting for a retry or dead-lettered holds its other messages back. */
  readonly blocksKeys: boolean;
  /** While draining, what arrived after the drain began goes first, unpaced. */
  readonly liveFirst: boolean;
  /** How many candidates to look at for a batch of `max`. */
  lookahead(max: number): number;
}

/** Key mode looks at least this far ahead, past messages of blocked keys. */
export const KEY_LOOKAHEAD_MIN = 256;

const exactly = (max: number): number => max;

export const orderingRules: Readonly<Record<Ordering, OrderingRules>> = Object.freeze({
  fifo: { backward: false, retryBlocksAll: true, blocksKeys: false, liveFirst: false, lookahead: exactly },
  lifo: { backward: true, retryBlocksAll: false, blocksKeys: false, liveFirst: false, lookahead: exactly },
  unordered: {
    backward: false,
    retryBlocksAll: false,
    blocksKeys: false,
    liveFirst: true,
    lookahead: exactly,
  },
  key: {
    backward: false,
    retryBlocksAll: false,
    blocksKeys: true,
    liveFirst: false,
    lookahead: (max: number) => Math.max(KEY_LOOKAHEAD_MIN, max * 4),
  },
});

export interface PickerDeps {
  options: Readonly<Pick<RouteOptions, 'ordering' | 'maxAgeMs' | 'batchMaxBytes'>>;
  /** stream → seq → ordering key, for messages at the target now. */
  inFlight: ReadonlyMap<string, ReadonlyMap<number, string | undefined>>;
  /** Messages waiting for their retry, by `attemptKey`. */
  retryWaits: ReadonlyMap<string, RetryWait>;
  /** The keys a stream's dead letters hold back. */
  deadKeys: (stream: string) => Iterable<string>;
  /** Look again in `ms` (a wait that holds messages back ends then). */
  wakeIn: (ms: number) => void;
  /** Settles messages found expired while choosing. */
  expire: (stream: string, p: StreamProgress, seqs: readonly number[]) => void;
}

export class Picker {
  readonly rules: OrderingRules;
  /** Per stream, the first seq that arrived after the current drain began. */
  private readonly liveFrom = new Map<string, number>();

  constructor(private readonly deps: PickerDeps) {
    this.rules = orderingRules[deps.options.ordering];
  }

  /** A drain begins: what each stream holds now is the backlog, anything later is live. */
  beginDrain(streams: Iterable<MessageStream>): void {
    for (const stream of streams) this.liveFrom.set(stream.name, stream.lastSeq + 1);
  }

  /** The first live seq of a stream in the current drain (undefined before any drain). */
  liveFromOf(stream: string): number | undefined {
    return this.liveFrom.get(stream);
  }

  /** Pending seqs not at the target and not waiting for a retry, in delivery order, from `from` on. */
  candidates(stream: MessageStream, p: StreamProgress, limit: number, now: number, from?: number): number[] {
    const { backward, retryBlocksAll } = this.rules;
    const flying = this.deps.inFlight.get(stream.name)!;
    const retryWaits = this.deps.retryWaits;
    const last = stream.lastSeq;
    const out: number[] = [];
    const start = Math.max(p.start, from ?? p.start);
    let s = backward ? p.done.prevMissing(last) : p.done.nextMissing(start);
    while ((backward ? s >= start : s <= last) && out.length < limit) {
      if (!flying.has(s)) {
        const wait = retryWaits.size === 0 ? undefined : retryWaits.get(attemptKey(stream.name, s));
        if (wait === undefined || wait.at <= now) out.push(s);
        else {
          this.deps.wakeIn(wait.at - now);
          // Strict order: nothing newer passes a message waiting for its retry.
          if (retryBlocksAll) break;
        }
      }
      s = backward ? p.done.prevMissing(s - 1) : p.done.nextMissing(s + 1);
    }
    return out;
  }

  /**
   * Of messages read for a pick (in delivery order), those that go: at most `max`, within the
   * batch byte limit (the first always), skipping what became final or went out meanwhile and
   * blocked keys; expired ones are settled.
   */
  choose(
    stream: MessageStream,
    p: StreamProgress,
    messages: readonly StoredMessage[],
    max: number,
    now: number,
  ): StoredMessage[] {
    const { maxAgeMs, batchMaxBytes } = this.deps.options;
    const chosen: StoredMessage[] = [];
    const expired: number[] = [];
    const blocked = this.rules.blocksKeys ? this.blockedKeys(stream.name, now) : undefined;
    let bytes = 0;
    const flying = this.deps.inFlight.get(stream.name)!;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      // The read was asynchronous: retention, a purge or another pick may have taken it meanwhile.
      if (p.done.has(m.seq) || flying.has(m.seq)) continue;
      if (isExpired(m, now, maxAgeMs)) {
        expired.push(m.seq);
        continue;
      }
      if (blocked && m.key !== undefined && blocked.has(m.key)) continue;
      if (chosen.length > 0 && bytes + m.payloadBytes > batchMaxBytes) break;
      chosen.push(m);
      bytes += m.payloadBytes;
      if (chosen.length >= max) break;
    }
    if (expired.length > 0) this.deps.expire(stream.name, p, expired);
    return chosen;
  }

  /** Keys held back in a stream now: at the target, waiting for a retry, dead-lettered. */
  blockedKeys(stream: string, now: number): Set<string> {
    const keys = new Set<string>();
    for (const key of this.deps.inFlight.get(stream)!.values()) if (key !== undefined) keys.add(key);
    for (const [k, wait] of this.deps.retryWaits)
      if (wait.at > now && wait.key !== undefined && k.startsWith(`${stream}:`)) {
        keys.add(wait.key);
        // What this key holds back must be looked at again when the wait ends.
        this.deps.wakeIn(wait.at - now);
      }
    // IBM event sequencing: a dead-lettered message blocks its key until resubmitted or deleted.
    for (const key of this.deps.deadKeys(stream)) keys.add(key);
    return keys;
  }
}
