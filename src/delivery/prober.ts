/**
 * The prober: while a route is storing because of its own failures, one probe (a single
 * message) goes to the target now and then to see whether it is back.
 *
 * The delay before the next probe grows exponentially with the failed probes (probeIntervalMs ×
 * 2^failures, capped by probeIntervalMaxMs), with ±20 % jitter so that many gateways do not
 * probe a recovering target in lockstep; a target's Retry-After (from the last nack, also capped
 * by probeIntervalMaxMs) is honoured when it asks for longer. The prober only says when a probe
 * is due (`due`) and calls `onDue` then; the runner picks and sends it.
 */
import type { Clock, TimerHandle } from './clock.js';

export interface ProbePolicy {
  /** First probe delay, ms. */
  probeIntervalMs: number;
  /** Cap of the backoff and of a Retry-After, ms. */
  probeIntervalMaxMs: number;
}

/**
 * The delay before the next probe, ms.
 * @param failures consecutive failed probes so far
 * @param retryAfterMs the target's Retry-After from the last nack, if any
 * @param random a number in [0, 1) for the jitter
 */
export function probeDelayMs(
  policy: ProbePolicy,
  failures: number,
  retryAfterMs: number | undefined,
  random: number,
): number {
  const { probeIntervalMs, probeIntervalMaxMs } = policy;
  const backoff = Math.min(probeIntervalMaxMs, probeIntervalMs * 2 ** Math.min(failures, 30));
  const jittered = Math.min(probeIntervalMaxMs, backoff * (0.8 + 0.4 * random));
  return Math.max(jittered, Math.min(probeIntervalMaxMs, retryAfterMs ?? 0));
}

export interface ProberDeps {
  policy: Readonly<ProbePolicy>;
  clock: Clock;
  random: () => number;
  /** A probe became due (the timer fired). */
  onDue: () => void;
}

export class Prober {
  private timer: TimerHandle | undefined;
  private isDue = false;
  /** Retry-After of the last nack, for the next probe. */
  private retryAfterMs: number | undefined;

  constructor(private readonly deps: ProberDeps) {}

  /** A probe may go now. */
  get due(): boolean {
    return this.isDue;
  }

  /** The timer to the next probe is armed. */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  /** Makes a probe due at once (a route that was storing when it starts). */
  dueNow(): void {
    this.isDue = true;
  }

  /** The due probe went out. */
  sent(): void {
    this.isDue = false;
  }

  /** The target asked to wait `ms` (a nack's Retry-After): the next scheduled probe honours it once. */
  retryAfter(ms: number): void {
    this.retryAfterMs = ms;
  }

  /** Arms the timer for the next probe after `failures` failed probes. */
  schedule(failures: number): void {
    const delay = probeDelayMs(this.deps.policy, failures, this.retryAfterMs, this.deps.random());
    this.retryAfterMs = undefined;
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = undefined;
      this.isDue = true;
      this.deps.onDue();
    }, delay);
  }

  /** No probe: disarms the timer and forgets a due probe (the route changed state). */
  reset(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.isDue = false;
  }
}
