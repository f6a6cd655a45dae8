import type { Logger } from 'pino';
import type { Delivery, Outcome, Target } from '../delivery/target.js';
import { ack } from '../delivery/target.js';

/** Writes one log line per message (ids, key, size; not the payload) and acks: for diagnostics. */
export class LogTarget implements Target {
  readonly type = 'log';
  constructor(
    private readonly name: string,
    private readonly logger: Logger,
  ) {}

  async deliver(batch: readonly Delivery[]): Promise<readonly Outcome[]> {
    for (const d of batch) {
      this.logger.info(
        {
          target: this.name,
          id: d.id,
          stream: d.stream,
          seq: d.seq,
          key: d.key,
          bytes: d.payloadBytes,
          attempt: d.attempt,
        },
        'message delivered to log target',
      );
    }
    return batch.map(() => ack);
  }
}
