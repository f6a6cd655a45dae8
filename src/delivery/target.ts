/**
 * What the delivery engine needs of a destination. Implementations live in src/targets/ (and
 * in users' modules); the engine knows only this interface.
 */
import type { Readable } from 'node:stream';

export interface Delivery {
  id: string;
  stream: string;
  seq: number;
  key: string | undefined;
  headers: Readonly<Record<string, string>>;
  /** ms since the epoch when the message was accepted. */
  timestamp: number;
  payloadBytes: number;
  /** The payload when it is small enough to be in memory; otherwise use openPayload(). */
  payload: Buffer | undefined;
  /** The payload as a stream (always works, also for payloads held in side files). */
  openPayload(): Readable;
  /** 1 for the first attempt at this message by this route. */
  attempt: number;
}

/**
 * The answer for one message:
 * - `ack`: delivered.
 * - `nack`: transient (unreachable, timeout, 5xx, 429…): keep it and retry; may suggest when.
 * - `error`: permanent (the destination will never accept it): dead-letter it.
 */
export type Outcome =
  | { kind: 'ack' }
  | { kind: 'nack'; reason: string; retryAfterMs?: number | undefined }
  | { kind: 'error'; reason: string };

export interface Target {
  /** The target type, e.g. `http`. */
  readonly type: string;
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /**
   * Delivers a batch and answers one outcome per message, in order. A thrown error or a wrong
   * number of outcomes counts as `nack` for the whole batch. `signal` aborts when the engine's
   * attempt timeout passes or it shuts down.
   */
  deliver(batch: readonly Delivery[], signal: AbortSignal): Promise<readonly Outcome[]>;
}

export const ack: Outcome = Object.freeze({ kind: 'ack' });
export const nack = (reason: string, retryAfterMs?: number): Outcome => ({
  kind: 'nack',
  reason,
  retryAfterMs,
});
export const permanentError = (reason: string): Outcome => ({ kind: 'error', reason });

/**
 * Delivers a batch one message at a time, in order; once one is nacked, the rest are not tried
 * and get the same nack, so fifo and key routes keep their order (see `Target.deliver`).
 */
export async function deliverInOrder(
  batch: readonly Delivery[],
  one: (d: Delivery) => Promise<Outcome>,
): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let failed: Outcome | undefined;
  for (const d of batch) {
    const outcome = failed ?? (await one(d));
    if (outcome.kind === 'nack') failed = outcome;
    outcomes.push(outcome);
  }
  return outcomes;
}
