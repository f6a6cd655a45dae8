import { describe, expect, it } from 'vitest';
import { Pacer } from '../../src/delivery/pacer.js';

describe('replay pacer (token bucket)', () => {
  it('starts a drain with a full burst capped by the batch size', () => {
    const p = new Pacer(100, 10);
    p.refill(0);
    expect(p.available(0)).toBe(10);
    const slow = new Pacer(3, 10);
    slow.refill(0);
    expect(slow.available(0)).toBe(3);
  });

  it('refills at the rate and never beyond the burst', () => {
    const p = new Pacer(10, 100);
    p.refill(0);
    p.take(10);
    expect(p.available(0)).toBe(0);
    expect(p.available(250)).toBe(2);
    expect(p.available(1_000)).toBe(10);
    expect(p.available(60_000)).toBe(10);
  });

  it('keeps fractions of a token between calls', () => {
    const p = new Pacer(10, 100);
    p.refill(0);
    p.take(10);
    expect(p.available(50)).toBe(0);
    expect(p.available(100)).toBe(1);
    p.take(1);
    expect(p.available(150)).toBe(0);
  });

  it('says how long until the next whole token', () => {
    const p = new Pacer(4, 100);
    p.refill(0);
    p.take(4);
    expect(p.available(100)).toBe(0);
    // 0.4 tokens accrued in 100 ms; 0.6 more take 150 ms at 4/s.
    expect(p.msUntilNext()).toBeCloseTo(150);
  });

  it('a rate below one per second still lets one message go (burst of at least 1)', () => {
    const p = new Pacer(0.5, 10);
    p.refill(0);
    expect(p.available(0)).toBe(0);
    expect(p.msUntilNext()).toBeCloseTo(1_000);
    expect(p.available(999)).toBe(0);
    expect(p.available(1_000)).toBe(1);
    expect(p.available(100_000)).toBe(1);
  });

  it('over any long window sends no more than the rate allows', () => {
    const p = new Pacer(20, 5);
    p.refill(0);
    let sent = 0;
    for (let t = 0; t <= 10_000; t += 7) {
      const n = p.available(t);
      p.take(n);
      sent += n;
    }
    // 5 at the start, then 20/s for 10 s.
    expect(sent).toBeLessThanOrEqual(5 + 200);
    expect(sent).toBeGreaterThanOrEqual(200);
  });

  it('is not limited at rate 0', () => {
    expect(new Pacer(0, 10).limited).toBe(false);
    expect(new Pacer(1, 10).limited).toBe(true);
  });
});
