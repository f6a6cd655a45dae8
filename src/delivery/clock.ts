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

/**
 * Real time. Its timers keep the process alive (not unref'd): an open Waystation has deliveries,
 * probes and sweeps to run, like an open server, until close() is called.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
};
