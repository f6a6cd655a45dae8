/**
 * Retry bookkeeping of one route: how many attempts each message has had (the `attempt` number a
 * target sees, and `retry.attempts` with store-and-forward off), and — store-and-forward off —
 * until when a nacked message waits before it may go again (exponential backoff from
 * `retry.backoff` up to `retry.backoffMax`, longer if the target's Retry-After says so).
 *
 * Only messages that were nacked at least once are here; `empty` lets the hot path (acks of
 * messages never retried) skip the maps. Entries go when a message is acked, dead-lettered or
 * becomes final some other way (`forgetFinal`), and at a restart (in memory only).
 */
import type { StreamProgress } from '../store/route-progress.js';
import type { RouteOptions } from './route-options.js';

/** A message that waits for its retry until `at` (ms); its key blocks in key mode. */
export interface RetryWait {
  at: number;
  key: string | undefined;
}

export type RetryPolicy = Pick<RouteOptions, 'retryBackoffMs' | 'retryBackoffMaxMs'>;

/** The key of a message in the retry maps. */
export function attemptKey(stream: string, seq: number): string {
  return `${stream}:${seq}`;
}

/** How long a message waits after its `attempts`-th failed attempt, ms. */
export function retryDelayMs(
  policy: RetryPolicy,
  attempts: number,
  retryAfterMs: number | undefined,
): number {
  const backoff = Math.min(policy.retryBackoffMaxMs, policy.retryBackoffMs * 2 ** (attempts - 1));
  return Math.max(backoff, retryAfterMs ?? 0);
}

export class Retries {
  /** Messages waiting for their retry, by `attemptKey` (the picker reads these). */
  readonly waits = new Map<string, RetryWait>();
  /** Failed attempts so far, by `attemptKey`. */
  private readonly counts = new Map<string, number>();
  /** When each message's first remembered attempt failed, ms (a dead letter's first failure). */
  private readonly firstFailures = new Map<string, number>();

  constructor(private readonly policy: Readonly<RetryPolicy>) {}

  /** No message has failed an attempt that is still remembered. */
  get empty(): boolean {
    return this.counts.size === 0 && this.waits.size === 0;
  }

  /** Failed attempts of a message so far. */
  failedAttempts(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** The number of the next attempt of a message (1 for the first). */
  nextAttempt(stream: string, seq: number): number {
    return this.counts.size === 0 ? 1 : (this.counts.get(attemptKey(stream, seq)) ?? 0) + 1;
  }

  /** A message failed its `attempts`-th attempt at `at` (ms). */
  failed(key: string, attempts: number, at: number): void {
    this.counts.set(key, attempts);
    if (!this.firstFailures.has(key)) this.firstFailures.set(key, at);
  }

  /** When the message's first remembered attempt failed (undefined: none failed since the start). */
  firstFailedAt(key: string): number | undefined {
    return this.firstFailures.get(key);
  }

  /**
   * The message waits before its next attempt (see `retryDelayMs`); returns until when, ms.
   * `orderingKey` is the message's key, which blocks in key mode meanwhile.
   */
  wait(
    key: string,
    orderingKey: string | undefined,
    attempts: number,
    now: number,
    retryAfterMs?: number,
  ): number {
    const at = now + retryDelayMs(this.policy, attempts, retryAfterMs);
    this.waits.set(key, { at, key: orderingKey });
    return at;
  }

  /** The message is done with (acked, dead-lettered) or starts over (resubmitted). */
  forget(key: string): void {
    this.counts.delete(key);
    this.firstFailures.delete(key);
    this.waits.delete(key);
  }

  /** Forgets the attempts of a dead letter put back in the queue: it starts over at attempt 1. */
  restart(key: string): void {
    this.counts.delete(key);
    this.firstFailures.delete(key);
  }

  /** Forgets every message of `stream` that became final (purged, pruned, expired… while waiting). */
  forgetFinal(stream: string, p: StreamProgress): void {
    if (this.empty) return;
    const prefix = `${stream}:`;
    for (const map of [this.waits, this.counts, this.firstFailures] as Map<string, unknown>[]) {
      for (const k of map.keys()) {
        if (k.startsWith(prefix) && p.done.has(Number(k.slice(prefix.length)))) map.delete(k);
      }
    }
  }
}
