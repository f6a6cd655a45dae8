/**
 * Time as a parameter: the engine reads the time and sets timers only through a Clock, so
 * simulation tests run hours of probes and backoff in milliseconds (test/support/fake-clock.ts).
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
}

/** Node runs a timer longer than this after 1 ms (TimeoutOverflowWarning). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Real time. Its timers keep the process alive (not unref'd): an open Waystation has deliveries,
 * probes and sweeps to run, like an open server, until close() is called. A delay past 24.8 days
 * (an MQTT session expiry, a will delay, a long probe interval) is waited out in steps.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    let t: NodeJS.Timeout;
    const arm = (left: number): void => {
      t =
        left > MAX_TIMER_MS ? setTimeout(() => arm(left - MAX_TIMER_MS), MAX_TIMER_MS) : setTimeout(fn, left);
    };
    arm(ms);
    return { cancel: () => clearTimeout(t) };
  },
};
