/**
 * `batch.maxWait`: while forwarding, a batch smaller than `batch.maxMessages` waits up to
 * maxWait for more messages before it goes. The first partial batch arms the timer; when it
 * fires, `onFlush` runs and the next pick sends whatever it has. Any batch that goes ends the
 * wait.
 */
import type { Clock, TimerHandle } from './clock.js';

export class BatchWait {
  private timer: TimerHandle | undefined;
  private flushNow = false;

  constructor(
    private readonly clock: Clock,
    private readonly maxWaitMs: number,
    private readonly batchMaxMessages: number,
    private readonly onFlush: () => void,
  ) {}

  /** A timer is armed. */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  /** Whether a batch of `count` messages waits for more (then the timer is armed, once). */
  holdBack(count: number): boolean {
    if (this.maxWaitMs <= 0 || count >= this.batchMaxMessages || this.flushNow) return false;
    this.timer ??= this.clock.setTimeout(() => {
      this.timer = undefined;
      this.flushNow = true;
      this.onFlush();
    }, this.maxWaitMs);
    return true;
  }

  /** A batch goes: the wait is over. */
  sent(): void {
    this.flushNow = false;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Disarms the timer for good (the runner stops). */
  cancel(): void {
    this.timer?.cancel();
  }
}
