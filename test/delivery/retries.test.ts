import { describe, expect, it } from 'vitest';
import { attemptKey, Retries, retryDelayMs } from '../../src/delivery/retries.js';
import { StreamProgress } from '../../src/store/route-progress.js';

const policy = { retryBackoffMs: 100, retryBackoffMaxMs: 1_000 };

describe('retry delay', () => {
  it('doubles per failed attempt up to retry.backoffMax', () => {
    expect([1, 2, 3, 4, 5, 50].map((a) => retryDelayMs(policy, a, undefined))).toEqual([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
  });

  it('waits longer when the target says so (Retry-After), never shorter', () => {
    expect(retryDelayMs(policy, 1, 5_000)).toBe(5_000);
    expect(retryDelayMs(policy, 3, 10)).toBe(400);
  });
});

describe('retry bookkeeping', () => {
  it('is empty until a message fails, and numbers attempts from 1', () => {
    const r = new Retries(policy);
    expect(r.empty).toBe(true);
    expect(r.nextAttempt('s', 1)).toBe(1);
    r.failed(attemptKey('s', 1), 1, 0);
    expect(r.empty).toBe(false);
    expect(r.nextAttempt('s', 1)).toBe(2);
    expect(r.nextAttempt('s', 2)).toBe(1);
    expect(r.failedAttempts(attemptKey('s', 1))).toBe(1);
  });

  it('records until when a message waits, with its ordering key', () => {
    const r = new Retries(policy);
    const key = attemptKey('s', 7);
    r.failed(key, 2, 0);
    expect(r.wait(key, 'k', 2, 10_000, undefined)).toBe(10_200);
    expect(r.waits.get(key)).toEqual({ at: 10_200, key: 'k' });
  });

  it('forgets a message acked or dead-lettered', () => {
    const r = new Retries(policy);
    const key = attemptKey('s', 1);
    r.failed(key, 1, 0);
    r.wait(key, undefined, 1, 0);
    r.forget(key);
    expect(r.empty).toBe(true);
  });

  it("remembers when a message's first attempt failed, until it is done with or starts over", () => {
    const r = new Retries(policy);
    const key = attemptKey('s', 4);
    expect(r.firstFailedAt(key)).toBeUndefined();
    r.failed(key, 1, 1_000);
    r.failed(key, 2, 5_000);
    expect(r.firstFailedAt(key)).toBe(1_000);
    r.restart(key);
    expect(r.firstFailedAt(key)).toBeUndefined();
    r.failed(key, 1, 9_000);
    r.forget(key);
    expect(r.firstFailedAt(key)).toBeUndefined();
  });

  it('a resubmitted dead letter starts over at attempt 1', () => {
    const r = new Retries(policy);
    r.failed(attemptKey('s', 3), 5, 0);
    r.restart(attemptKey('s', 3));
    expect(r.nextAttempt('s', 3)).toBe(1);
  });

  it('forgets the messages of a stream that became final, and only those', () => {
    const r = new Retries(policy);
    for (const seq of [1, 2, 3]) {
      r.failed(attemptKey('s', seq), 1, 0);
      r.wait(attemptKey('s', seq), `k${seq}`, 1, 0);
    }
    r.failed(attemptKey('s2', 1), 1, 0);
    const p = new StreamProgress(1);
    p.mark(1, 'purged');
    p.mark(3, 'expired');
    r.forgetFinal('s', p);
    expect([...r.waits.keys()]).toEqual(['s:2']);
    expect(r.nextAttempt('s', 1)).toBe(1);
    expect(r.nextAttempt('s', 2)).toBe(2);
    expect(r.nextAttempt('s2', 1)).toBe(2);
  });
});
