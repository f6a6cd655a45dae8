import { describe, expect, it } from 'vitest';
import { isExpired, Retention, type RetentionPolicy } from '../../src/delivery/retention.js';
import type { MessageStream, StreamChunk } from '../../src/store/backend.js';
import type { StoredMessage } from '../../src/store/message.js';
import { type FinalState, StreamProgress } from '../../src/store/route-progress.js';
import type { ReadMessagesOptions } from '../../src/store/stream.js';
import { FakeClock } from '../support/fake-clock.js';

const CHUNK = 4;

/** A stream in memory: seqs 1..n, chunks of CHUNK messages. */
function memStream(name: string, messages: { timestamp: number; bytes?: number }[]): MessageStream {
  const all: StoredMessage[] = messages.map((m, i) => ({
    id: `x-${i + 1}`,
    stream: name,
    seq: i + 1,
    timestamp: m.timestamp,
    headers: {},
    payload: Buffer.alloc(0),
    payloadBytes: m.bytes ?? 10,
    blob: undefined,
  }));
  return {
    name,
    firstSeq: 1,
    lastSeq: all.length,
    idOf: (seq) => `x-${seq}`,
    async read(o: ReadMessagesOptions) {
      const until = o.untilSeq ?? all.length;
      return all.filter((m) => m.seq >= o.fromSeq && m.seq <= until).slice(0, o.maxMessages ?? all.length);
    },
    openPayload: () => {
      throw new Error('not here');
    },
    async chunks() {
      const out: StreamChunk[] = [];
      for (let i = 0; i < all.length; i += CHUNK) {
        const c = all.slice(i, i + CHUNK);
        out.push({
          baseSeq: c[0]!.seq,
          lastSeq: c.at(-1)!.seq,
          bytes: c.reduce((n, m) => n + m.payloadBytes, 0),
          minTimestamp: c[0]!.timestamp,
          maxTimestamp: c.at(-1)!.timestamp,
        });
      }
      return out;
    },
    async bytesFrom(seq) {
      return all.filter((m) => m.seq >= seq).reduce((n, m) => n + m.payloadBytes, 0);
    },
    stats: () => ({ firstSeq: 1, lastSeq: all.length, records: all.length, bytes: 0 }),
  };
}

function setup(policy: Partial<RetentionPolicy>, messages: { timestamp: number; bytes?: number }[]) {
  const clock = new FakeClock();
  const stream = memStream('s', messages);
  const p = new StreamProgress(1);
  const flying = new Map<number, string | undefined>();
  const settled: { seqs: number[]; state: FinalState }[] = [];
  const pending = () => stream.lastSeq - p.done.countIn(1, stream.lastSeq);
  const retention = new Retention({
    options: {
      name: 'r',
      streams: ['s'],
      maxAgeMs: undefined,
      maxMessages: undefined,
      maxBytes: undefined,
      onFull: 'drop-oldest',
      ...policy,
    },
    store: { stream: () => stream },
    progress: { stream: () => p },
    clock,
    inFlight: () => flying,
    settle: (_s, progress, seqs, state) => {
      for (const seq of seqs) progress.mark(seq, state);
      settled.push({ seqs: [...seqs], state });
    },
    pendingCount: pending,
    usedBytes: () => stream.bytesFrom(p.floor()),
  });
  return { clock, p, flying, settled, retention, pending };
}

const ages = (n: number, t0: number, stepMs: number) =>
  Array.from({ length: n }, (_, i) => ({ timestamp: t0 + i * stepMs }));

describe('retention (unit)', () => {
  it('expires whole chunks older than maxAge and a prefix of the boundary chunk, never what is at the target', async () => {
    const clock = new FakeClock();
    const now = clock.now();
    // 10 messages 1 min apart, the newest 1 min old; maxAge 5 min: seqs 1..5 are older.
    const { p, flying, settled, retention } = setup(
      { maxAgeMs: 5 * 60_000 },
      ages(10, now - 10 * 60_000, 60_000),
    );
    flying.set(2, undefined);
    await retention.sweep();
    expect(settled.every((x) => x.state === 'expired')).toBe(true);
    expect(settled.flatMap((x) => x.seqs)).toEqual([1, 3, 4, 5]);
    expect(p.stateOf(2)).toBe('pending');
    expect(p.stateOf(6)).toBe('pending');
  });

  it('does not expire anything again on the next sweep', async () => {
    const clock = new FakeClock();
    const { settled, retention } = setup({ maxAgeMs: 60_000 }, ages(6, clock.now() - 3_600_000, 1));
    await retention.sweep();
    await retention.sweep();
    expect(settled.flatMap((x) => x.seqs)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('with drop-oldest prunes the oldest beyond maxMessages, skipping messages at the target', async () => {
    const { flying, settled, retention, pending } = setup({ maxMessages: 5 }, ages(8, 0, 1));
    flying.set(1, undefined);
    await retention.enforceLimits();
    expect(settled).toEqual([{ seqs: [2, 3, 4], state: 'pruned' }]);
    expect(pending()).toBe(5);
  });

  it('with drop-oldest prunes the oldest until the route is within maxBytes', async () => {
    const msgs = [100, 100, 100, 100, 100].map((bytes) => ({ timestamp: 0, bytes }));
    const { settled, retention } = setup({ maxBytes: 250 }, msgs);
    await retention.enforceLimits();
    expect(settled).toEqual([{ seqs: [1, 2, 3], state: 'pruned' }]);
  });

  it('coalesces calls made while a run is under way: the same excess is pruned once', async () => {
    const { settled, retention, pending } = setup({ maxMessages: 2, maxBytes: 1_000_000 }, ages(6, 0, 1));
    await Promise.all([retention.enforceLimits(), retention.enforceLimits(), retention.enforceLimits()]);
    expect(settled.flatMap((x) => x.seqs)).toEqual([1, 2, 3, 4]);
    expect(pending()).toBe(2);
    expect(retention.busy).toBeUndefined();
  });

  it('never prunes with onFull reject-new; refuses a publish past maxMessages instead, counting reservations', async () => {
    const { settled, retention } = setup({ onFull: 'reject-new', maxMessages: 5 }, ages(3, 0, 1));
    await retention.enforceLimits();
    expect(settled).toEqual([]);
    const release = await retention.admit('s', 2, 0);
    await expect(retention.admit('s', 1, 0)).rejects.toMatchObject({ code: 'WS_ERR_ROUTE_FULL' });
    release();
    release(); // twice is harmless
    const again = await retention.admit('s', 2, 0);
    again();
  });

  it('refuses a publish past maxBytes with reject-new', async () => {
    const { retention } = setup({ onFull: 'reject-new', maxBytes: 100 }, ages(5, 0, 1)); // 50 bytes used
    const release = await retention.admit('s', 1, 40);
    await expect(retention.admit('s', 1, 20)).rejects.toMatchObject({ code: 'WS_ERR_ROUTE_FULL' });
    release();
    (await retention.admit('s', 1, 20))();
  });

  it('admits anything with drop-oldest', async () => {
    const { retention } = setup({ maxMessages: 1 }, ages(5, 0, 1));
    (await retention.admit('s', 100, 1e9))();
  });

  it('settles the oldest pending messages for a purge, skipping those at the target and those already final', () => {
    const { p, flying, settled, retention } = setup({}, ages(6, 0, 1));
    p.mark(2, 'delivered');
    flying.set(3, undefined);
    expect(retention.settleOldest('s', 3, 'purged')).toBe(3);
    expect(settled).toEqual([{ seqs: [1, 4, 5], state: 'purged' }]);
    expect(retention.settleOldest('s', 10, 'purged')).toBe(1);
  });
});

describe('isExpired', () => {
  const m = (timestamp: number, expiresAt?: number) =>
    ({ timestamp, expiresAt }) as Pick<StoredMessage, 'timestamp' | 'expiresAt'> as StoredMessage;
  it('by its own TTL', () => {
    expect(isExpired(m(0, 100), 99, undefined)).toBe(false);
    expect(isExpired(m(0, 100), 100, undefined)).toBe(true);
  });
  it('by the route maxAge', () => {
    expect(isExpired(m(1_000), 1_999, 1_000)).toBe(false);
    expect(isExpired(m(1_000), 2_000, 1_000)).toBe(true);
    expect(isExpired(m(1_000), 1e12, undefined)).toBe(false);
  });
});
