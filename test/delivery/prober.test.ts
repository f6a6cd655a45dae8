import { describe, expect, it } from 'vitest';
import { Prober, probeDelayMs } from '../../src/delivery/prober.js';
import { FakeClock } from '../support/fake-clock.js';

const policy = { probeIntervalMs: 1_000, probeIntervalMaxMs: 60_000 };
const MID = 0.5; // no jitter: 0.8 + 0.4 × 0.5 = 1

describe('probe delay', () => {
  it('doubles with every failed probe up to probeIntervalMax', () => {
    expect([0, 1, 2, 3, 5, 6, 7, 100].map((f) => probeDelayMs(policy, f, undefined, MID))).toEqual([
      1_000, 2_000, 4_000, 8_000, 32_000, 60_000, 60_000, 60_000,
    ]);
  });

  it('jitters by ±20 %, never past probeIntervalMax', () => {
    expect(probeDelayMs(policy, 0, undefined, 0)).toBeCloseTo(800);
    expect(probeDelayMs(policy, 0, undefined, 0.999_999)).toBeCloseTo(1_200);
    expect(probeDelayMs(policy, 10, undefined, 0.999_999)).toBe(60_000);
    expect(probeDelayMs(policy, 10, undefined, 0)).toBeCloseTo(48_000);
  });

  it('honours a longer Retry-After, capped by probeIntervalMax; a shorter one changes nothing', () => {
    expect(probeDelayMs(policy, 0, 30_000, MID)).toBe(30_000);
    expect(probeDelayMs(policy, 0, 600_000, MID)).toBe(60_000);
    expect(probeDelayMs(policy, 3, 10, MID)).toBe(8_000);
  });

  it('does not overflow with a huge failure count', () => {
    expect(probeDelayMs(policy, Number.MAX_SAFE_INTEGER, undefined, MID)).toBe(60_000);
  });
});

describe('prober', () => {
  const setup = () => {
    const clock = new FakeClock();
    let calls = 0;
    const prober = new Prober({ policy, clock, random: () => MID, onDue: () => calls++ });
    return { clock, prober, calls: () => calls };
  };

  it('becomes due when the backoff timer fires, and calls onDue once', async () => {
    const { clock, prober, calls } = setup();
    prober.schedule(2);
    expect(prober.armed).toBe(true);
    await clock.advance(3_999);
    expect(prober.due).toBe(false);
    await clock.advance(1);
    expect(prober.due).toBe(true);
    expect(prober.armed).toBe(false);
    expect(calls()).toBe(1);
    prober.sent();
    expect(prober.due).toBe(false);
  });

  it('uses a Retry-After for the next probe only', async () => {
    const { clock, prober } = setup();
    prober.retryAfter(20_000);
    prober.schedule(0);
    await clock.advance(19_999);
    expect(prober.due).toBe(false);
    await clock.advance(1);
    expect(prober.due).toBe(true);
    prober.sent();
    prober.schedule(0);
    await clock.advance(1_000);
    expect(prober.due).toBe(true);
  });

  it('reset disarms the timer and forgets a due probe', async () => {
    const { clock, prober, calls } = setup();
    prober.dueNow();
    prober.schedule(0);
    prober.reset();
    expect(prober.due).toBe(false);
    expect(prober.armed).toBe(false);
    await clock.advance(10_000);
    expect(calls()).toBe(0);
    expect(prober.due).toBe(false);
  });
});
