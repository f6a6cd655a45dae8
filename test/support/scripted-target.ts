import type { Delivery, Outcome, Target } from '../../src/delivery/target.js';

/**
 * - `up` acks, `down` nacks.
 * - `hang` answers nothing until the attempt is aborted (then rejects, like a well-behaved client).
 * - `hang-forever` answers nothing, ever, and ignores the abort signal (a broken client library).
 * - `throw` throws synchronously from deliver() (not even a rejected promise).
 * - a function decides per message, and may return a promise (e.g. after reading the payload).
 */
export type Answer = Outcome | 'hang' | 'hang-forever' | 'throw';
export type Behaviour =
  | 'up'
  | 'down'
  | 'hang'
  | 'hang-forever'
  | 'throw'
  | ((d: Delivery) => Answer | Promise<Outcome>);

/** A target whose answers the test scripts; it records every delivery attempt it sees. */
export class ScriptedTarget implements Target {
  readonly type = 'scripted';
  behaviour: Behaviour = 'up';
  readonly attempts: Delivery[] = [];
  readonly delivered: Delivery[] = [];
  batches = 0;
  /** deliver() calls whose promise has not settled yet. */
  unsettled = 0;

  deliver(batch: readonly Delivery[], signal: AbortSignal): Promise<readonly Outcome[]> {
    this.batches++;
    const first = batch[0];
    if (first && this.answerOf(first, false) === 'throw') {
      this.attempts.push(first);
      throw new Error('target threw synchronously');
    }
    this.unsettled++;
    const done = this.run(batch, signal);
    void done.then(
      () => this.unsettled--,
      () => this.unsettled--,
    );
    return done;
  }

  private answerOf(d: Delivery, call: boolean): Answer | Promise<Outcome> | undefined {
    const b = this.behaviour;
    if (b === 'up') return { kind: 'ack' };
    if (b === 'down') return { kind: 'nack', reason: 'connection refused' };
    if (typeof b === 'string') return b;
    return call ? b(d) : undefined;
  }

  private async run(batch: readonly Delivery[], signal: AbortSignal): Promise<readonly Outcome[]> {
    const outcomes: Outcome[] = [];
    // Acks count as delivered once the batch answers: a batch that hangs after acking its first
    // messages never hands those acks back, so for the runner they are not delivered (at least once).
    const acked: Delivery[] = [];
    for (const d of batch) {
      // Like the HTTP target: what follows a nack in a batch is not attempted (keeps fifo order).
      const failed = outcomes.find((o) => o.kind === 'nack');
      if (failed) {
        outcomes.push(failed);
        continue;
      }
      this.attempts.push(d);
      const answer = await this.answerOf(d, true)!;
      if (answer === 'throw') throw new Error('target failed');
      if (answer === 'hang-forever') await new Promise(() => {});
      if (answer === 'hang') {
        await new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(new Error('aborted'))),
        );
      }
      const outcome = answer as Outcome;
      if (outcome.kind === 'ack') acked.push(d);
      outcomes.push(outcome);
    }
    this.delivered.push(...acked);
    return outcomes;
  }

  /** Payloads delivered, as strings, in order. */
  texts(): string[] {
    return this.delivered.map((d) => d.payload?.toString() ?? '');
  }
}
