import { describe, expect, it } from 'vitest';
import { WakeTimer } from '../../src/delivery/wake-timer.js';
import { FakeClock } from '../support/fake-clock.js';

describe('wake timer', () => {
  const setup = () => {
    const clock = new FakeClock();
    const wakes: number[] = [];
    const t0 = clock.now();
    const timer = new WakeTimer(clock, () => wakes.push(clock.now() - t0));
    return { clock, timer, wakes };
  };

  it('keeps one timer for the earliest wake-up asked for', async () => {
    const { clock, timer, wakes } = setup();
    timer.wakeIn(500);
    timer.wakeIn(200);
    timer.wakeIn(900);
    expect(timer.armed).toBe(true);
    await clock.advance(1_000);
    expect(wakes).toEqual([200]);
    expect(timer.armed).toBe(false);
  });

  it('after firing, takes the next request again', async () => {
    const { clock, timer, wakes } = setup();
    timer.wakeIn(100);
    await clock.advance(100);
    timer.wakeIn(300);
    await clock.advance(300);
    expect(wakes).toEqual([100, 400]);
  });

  it('waits at least 1 ms, rounded up', async () => {
    const { clock, timer, wakes } = setup();
    timer.wakeIn(-50);
    await clock.advance(0);
    expect(wakes).toEqual([]);
    await clock.advance(1);
    expect(wakes).toEqual([1]);
    timer.wakeIn(0.2);
    await clock.advance(1);
    expect(wakes).toEqual([1, 2]);
  });

  it('cancel disarms it', async () => {
    const { clock, timer, wakes } = setup();
    timer.wakeIn(10);
    timer.cancel();
    await clock.advance(100);
    expect(wakes).toEqual([]);
  });
});
