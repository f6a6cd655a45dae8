/**
 * One timer for the earliest of many wake-ups: whatever holds messages back for a while (a retry
 * wait, a blocked key's retry, the replay pacer's next token) asks to look again in so many ms;
 * only the earliest request keeps a timer armed, and when it fires `onWake` runs once (the
 * runner picks again, and asks anew for whatever still waits).
 */
import type { Clock, TimerHandle } from './clock.js';

export class WakeTimer {
  private timer: TimerHandle | undefined;
  private at = Number.POSITIVE_INFINITY;

  constructor(
    private readonly clock: Clock,
    private readonly onWake: () => void,
  ) {}

  /** A timer is armed. */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  /** Wake in `ms` (at least 1, rounded up), unless a wake-up is due by then anyway. */
  wakeIn(ms: number): void {
    const at = this.clock.now() + Math.max(1, Math.ceil(ms));
    if (at >= this.at) return;
    this.timer?.cancel();
    this.at = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.at = Number.POSITIVE_INFINITY;
      this.onWake();
    }, at - this.clock.now());
  }

  /** Disarms the timer for good (the runner stops). */
  cancel(): void {
    this.timer?.cancel();
  }
}
