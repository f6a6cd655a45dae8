import { describe, expect, it } from 'vitest';
import { KEY_LOOKAHEAD_MIN, orderingRules, Picker } from '../../src/delivery/picker.js';
import { attemptKey, type RetryWait } from '../../src/delivery/retries.js';
import type { Ordering } from '../../src/delivery/route-options.js';
import type { MessageStream } from '../../src/store/backend.js';
import type { StoredMessage } from '../../src/store/message.js';
import { StreamProgress } from '../../src/store/route-progress.js';

const NOW = 1_000_000;

const stream = (lastSeq: number): MessageStream =>
  ({ name: 's', lastSeq }) as Pick<MessageStream, 'name' | 'lastSeq'> as MessageStream;

const msg = (seq: number, o: Partial<StoredMessage> = {}): StoredMessage => ({
  id: `x-${seq}`,
  stream: 's',
  seq,
  timestamp: NOW - 1,
  headers: {},
  payload: Buffer.alloc(0),
  payloadBytes: 10,
  blob: undefined,
  ...o,
});

function setup(
  ordering: Ordering,
  o: { maxAgeMs?: number; batchMaxBytes?: number; deadKeys?: string[] } = {},
) {
  const flying = new Map<number, string | undefined>();
  const retryWaits = new Map<string, RetryWait>();
  const wakes: number[] = [];
  const expired: number[][] = [];
  const p = new StreamProgress(1);
  const picker = new Picker({
    options: { ordering, maxAgeMs: o.maxAgeMs, batchMaxBytes: o.batchMaxBytes ?? 1_000 },
    inFlight: new Map([['s', flying]]),
    retryWaits,
    deadKeys: () => o.deadKeys ?? [],
    wakeIn: (ms) => wakes.push(ms),
    expire: (_s, progress, seqs) => {
      for (const seq of seqs) progress.mark(seq, 'expired');
      expired.push([...seqs]);
    },
  });
  const waitFor = (seq: number, inMs: number, key?: string) =>
    retryWaits.set(attemptKey('s', seq), { at: NOW + inMs, key });
  return { picker, p, flying, retryWaits, wakes, expired, waitFor };
}

describe('picker: candidates by ordering', () => {
  it('fifo: oldest first, skipping final messages and those at the target', () => {
    const { picker, p, flying } = setup('fifo');
    p.mark(2, 'delivered');
    flying.set(3, undefined);
    expect(picker.candidates(stream(8), p, 4, NOW)).toEqual([1, 4, 5, 6]);
  });

  it('fifo: nothing newer passes a message waiting for its retry, and the wait ends in a wake-up', () => {
    const { picker, p, wakes, waitFor } = setup('fifo');
    waitFor(3, 500);
    expect(picker.candidates(stream(8), p, 10, NOW)).toEqual([1, 2]);
    expect(wakes).toEqual([500]);
  });

  it('a retry wait that has ended no longer holds the message back', () => {
    const { picker, p, waitFor } = setup('fifo');
    waitFor(2, 0);
    expect(picker.candidates(stream(3), p, 10, NOW)).toEqual([1, 2, 3]);
  });

  it('lifo: newest first, passing a message waiting for its retry', () => {
    const { picker, p, wakes, waitFor } = setup('lifo');
    p.mark(7, 'delivered');
    waitFor(6, 200);
    expect(picker.candidates(stream(8), p, 4, NOW)).toEqual([8, 5, 4, 3]);
    expect(wakes).toEqual([200]);
  });

  it('unordered and key: oldest first, passing a message waiting for its retry', () => {
    for (const ordering of ['unordered', 'key'] as const) {
      const { picker, p, waitFor } = setup(ordering);
      waitFor(1, 100);
      expect(picker.candidates(stream(4), p, 10, NOW)).toEqual([2, 3, 4]);
    }
  });

  it('starts at `from` (unordered draining: the live messages) and at the route start', () => {
    const { picker, p } = setup('unordered');
    expect(picker.candidates(stream(10), p, 10, NOW, 8)).toEqual([8, 9, 10]);
    const later = new StreamProgress(5);
    expect(picker.candidates(stream(7), later, 10, NOW, 2)).toEqual([5, 6, 7]);
  });

  it('remembers where a drain began per stream', () => {
    const { picker } = setup('unordered');
    expect(picker.liveFromOf('s')).toBeUndefined();
    picker.beginDrain([stream(41)]);
    expect(picker.liveFromOf('s')).toBe(42);
  });

  it('has one set of rules per ordering', () => {
    expect(orderingRules.lifo.backward).toBe(true);
    expect(orderingRules.fifo.retryBlocksAll).toBe(true);
    expect(orderingRules.unordered.liveFirst).toBe(true);
    expect(orderingRules.key.blocksKeys).toBe(true);
    expect(orderingRules.key.lookahead(1)).toBe(KEY_LOOKAHEAD_MIN);
    expect(orderingRules.key.lookahead(100)).toBe(400);
    expect(orderingRules.fifo.lookahead(7)).toBe(7);
  });
});

describe('picker: choosing what was read', () => {
  it('takes at most max, within the batch byte limit, the first message always', () => {
    const { picker, p } = setup('fifo', { batchMaxBytes: 25 });
    const read = [msg(1), msg(2), msg(3), msg(4)];
    expect(picker.choose(stream(4), p, read, 10, NOW).map((m) => m.seq)).toEqual([1, 2]);
    expect(picker.choose(stream(4), p, read, 1, NOW).map((m) => m.seq)).toEqual([1]);
    const big = [msg(1, { payloadBytes: 100 }), msg(2)];
    expect(picker.choose(stream(2), p, big, 10, NOW).map((m) => m.seq)).toEqual([1]);
  });

  it('skips what became final or went to the target while it was read', () => {
    const { picker, p, flying } = setup('fifo');
    p.mark(1, 'purged');
    flying.set(2, undefined);
    expect(picker.choose(stream(3), p, [msg(1), msg(2), msg(3)], 10, NOW).map((m) => m.seq)).toEqual([3]);
  });

  it('settles messages past their TTL or the maxAge as expired, and never chooses them', () => {
    const { picker, p, expired } = setup('fifo', { maxAgeMs: 60_000 });
    const read = [msg(1, { expiresAt: NOW }), msg(2, { timestamp: NOW - 60_000 }), msg(3)];
    expect(picker.choose(stream(3), p, read, 10, NOW).map((m) => m.seq)).toEqual([3]);
    expect(expired).toEqual([[1, 2]]);
    expect(p.stateOf(1)).toBe('expired');
  });

  it('key: holds back keys at the target, waiting for a retry (waking when it ends) or dead-lettered', () => {
    const { picker, p, flying, wakes, waitFor } = setup('key', { deadKeys: ['d'] });
    flying.set(1, 'a');
    waitFor(2, 300, 'b');
    const read = [
      msg(3, { key: 'a' }),
      msg(4, { key: 'b' }),
      msg(5, { key: 'd' }),
      msg(6, { key: 'c' }),
      msg(7),
    ];
    expect(picker.choose(stream(7), p, read, 10, NOW).map((m) => m.seq)).toEqual([6, 7]);
    expect(wakes).toEqual([300]);
    expect([...picker.blockedKeys('s', NOW)].sort()).toEqual(['a', 'b', 'd']);
  });

  it('other orderings do not block by key', () => {
    const { picker, p, flying } = setup('fifo', { deadKeys: ['a'] });
    flying.set(1, 'a');
    expect(picker.choose(stream(2), p, [msg(2, { key: 'a' })], 10, NOW).map((m) => m.seq)).toEqual([2]);
  });
});
