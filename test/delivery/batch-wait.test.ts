import { describe, expect, it } from 'vitest';
import { BatchWait } from '../../src/delivery/batch-wait.js';
import { FakeClock } from '../support/fake-clock.js';

describe('batch wait (batch.maxWait)', () => {
  const setup = (maxWaitMs: number, batchMaxMessages = 10) => {
    const clock = new FakeClock();
    let flushes = 0;
    const wait = new BatchWait(clock, maxWaitMs, batchMaxMessages, () => flushes++);
    return { clock, wait, flushes: () => flushes };
  };

  it('never holds back without maxWait, nor a full batch', () => {
    expect(setup(0).wait.holdBack(1)).toBe(false);
    const { wait } = setup(100, 10);
    expect(wait.holdBack(10)).toBe(false);
    expect(wait.armed).toBe(false);
  });

  it('holds a partial batch back until maxWait, then lets it go once', async () => {
    const { clock, wait, flushes } = setup(100);
    expect(wait.holdBack(3)).toBe(true);
    await clock.advance(50);
    expect(wait.holdBack(4)).toBe(true);
    await clock.advance(49);
    expect(flushes()).toBe(0);
    await clock.advance(1);
    expect(flushes()).toBe(1);
    expect(wait.holdBack(4)).toBe(false);
    wait.sent();
    // The next partial batch waits again, from now.
    expect(wait.holdBack(1)).toBe(true);
    expect(wait.armed).toBe(true);
  });

  it('a batch that goes ends the wait', async () => {
    const { clock, wait, flushes } = setup(100);
    wait.holdBack(3);
    wait.sent();
    expect(wait.armed).toBe(false);
    await clock.advance(1_000);
    expect(flushes()).toBe(0);
  });
});
