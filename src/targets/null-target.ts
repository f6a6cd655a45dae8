import type { Delivery, Outcome, Target } from '../delivery/target.js';
import { ack } from '../delivery/target.js';

/** Accepts and discards everything: for benchmarks and for routes under construction. */
export class NullTarget implements Target {
  readonly type = 'null';
  async deliver(batch: readonly Delivery[]): Promise<readonly Outcome[]> {
    return batch.map(() => ack);
  }
}
