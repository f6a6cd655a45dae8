import type { Delivery, Outcome, Target } from '../../src/delivery/target.js';

export type Behaviour = 'up' | 'down' | 'hang' | ((d: Delivery) => Outcome | 'hang');

/** A target whose answers the test scripts; it records every delivery attempt it sees. */
export class ScriptedTarget implements Target {
  readonly type = 'scripted';
  behaviour: Behaviour = 'up';
  readonly attempts: Delivery[] = [];
  readonly delivered: Delivery[] = [];
  batches = 0;

  async deliver(batch: readonly Delivery[], signal: AbortSignal): Promise<readonly Outcome[]> {
    this.batches++;
    const outcomes: Outcome[] = [];
    for (const d of batch) {
      // Like the HTTP target: what follows a nack in a batch is not attempted (keeps fifo order).
      const failed = outcomes.find((o) => o.kind === 'nack');
      if (failed) {
        outcomes.push(failed);
        continue;
      }
      this.attempts.push(d);
      const b = this.behaviour;
      const outcome: Outcome | 'hang' =
        b === 'up'
          ? { kind: 'ack' }
          : b === 'down'
            ? { kind: 'nack', reason: 'connection refused' }
            : b === 'hang'
              ? 'hang'
              : b(d);
      if (outcome === 'hang') {
        await new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(new Error('aborted'))),
        );
        throw new Error('unreachable');
      }
      if (outcome.kind === 'ack') this.delivered.push(d);
      outcomes.push(outcome);
    }
    return outcomes;
  }

  /** Payloads delivered, as strings, in order. */
  texts(): string[] {
    return this.delivered.map((d) => d.payload?.toString() ?? '');
  }
}
