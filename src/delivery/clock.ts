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

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};
