import { afterEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../src/delivery/clock.js';

const DAY = 86_400_000;

afterEach(() => {
  vi.useRealTimers();
});

describe('systemClock', () => {
  it('waits out a delay longer than a Node timer can hold (24.8 days) instead of firing at once', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    systemClock.setTimeout(fired, 60 * DAY);
    vi.advanceTimersByTime(1000);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(60 * DAY - 1001);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('cancels a long delay in any of its steps', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const t = systemClock.setTimeout(fired, 60 * DAY);
    vi.advanceTimersByTime(30 * DAY);
    t.cancel();
    vi.advanceTimersByTime(60 * DAY);
    expect(fired).not.toHaveBeenCalled();
  });
});
