import { describe, expect, it } from 'vitest';
import type { KvWriteResult, LeaseEntry, LeaseKv, LeaseValue } from '../../src/cluster/lease.js';
import { LeaseKeeper } from '../../src/cluster/lease-keeper.js';
import type { TimerHandle } from '../../src/delivery/clock.js';
import { FakeClock } from '../support/fake-clock.js';

const TTL = 1_000;

/** An in-memory KV with per-entry TTL on the fake clock; `lose` drops the next answers (not the writes). */
class MemKv implements LeaseKv {
  private rev = 0;
  private entry: { key: string; value: LeaseValue; revision: number; at: number } | undefined;
  loseAnswers = 0;
  hang = false;
  constructor(private readonly clock: FakeClock) {}
  private live(key: string) {
    if (this.entry && this.clock.now() >= this.entry.at + TTL) this.entry = undefined;
    return this.entry?.key === key ? this.entry : undefined;
  }
  private answer<T>(v: T): Promise<T> {
    if (this.hang) return new Promise(() => {});
    if (this.loseAnswers > 0) {
      this.loseAnswers--;
      return new Promise(() => {});
    }
    return Promise.resolve(v);
  }
  private write(key: string, value: LeaseValue): KvWriteResult {
    this.entry = { key, value, revision: ++this.rev, at: this.clock.now() };
    return { ok: true, revision: this.rev };
  }
  create(key: string, value: LeaseValue) {
    if (this.hang) return this.answer<KvWriteResult>({ ok: false });
    return this.answer(this.live(key) ? { ok: false as const } : this.write(key, value));
  }
  update(key: string, value: LeaseValue, revision: number) {
    if (this.hang) return this.answer<KvWriteResult>({ ok: false });
    return this.answer(
      this.live(key)?.revision === revision ? this.write(key, value) : { ok: false as const },
    );
  }
  get(key: string) {
    const e = this.live(key);
    return this.answer<LeaseEntry | null>(e ? { value: e.value, revision: e.revision } : null);
  }
  async delete(key: string, revision: number) {
    if (this.live(key)?.revision === revision) this.entry = undefined;
  }
}

function setup() {
  const clock = new FakeClock();
  const kv = new MemKv(clock);
  const timers = {
    setTimeout: (fn: () => void, ms: number) => clock.setTimeout(fn, ms),
    clearTimeout: (h: unknown) => (h as TimerHandle).cancel(),
  };
  const changes: string[] = [];
  const keeper = (node: string, lease: LeaseKv = kv) =>
    new LeaseKeeper(lease, 'r', node, {
      leaseTtlMs: TTL,
      clock,
      timers,
      onChange: (may, token) => changes.push(`${node} ${may ? `owns #${token}` : 'stopped'}`),
    });
  return { clock, kv, keeper, changes };
}

describe('LeaseKeeper', () => {
  it('takes a free lease at start and keeps renewing it', async () => {
    const { clock, keeper, changes } = setup();
    const a = keeper('a');
    a.start();
    await clock.advance(1);
    expect(a.maySend()).toBe(true);
    const first = a.fencingToken()!;
    await clock.advance(5 * TTL);
    expect(a.maySend()).toBe(true);
    expect(a.fencingToken()!).toBeGreaterThan(first);
    expect(changes).toEqual(['a owns #1']);
  });

  it('stops sending by its own clock while a renewal hangs, before the entry expires; then another takes over', async () => {
    const { clock, kv, keeper, changes } = setup();
    const a = keeper('a');
    a.start();
    await clock.advance(1);
    const b = keeper('b');
    b.start();
    await clock.advance(TTL);
    expect([a.maySend(), b.maySend()]).toEqual([true, false]);
    kv.hang = true;
    const cutAt = clock.now();
    let aStopped = 0;
    for (let t = 0; t < 3 * TTL; t += 10) {
      await clock.advance(10);
      if (t === TTL) kv.hang = false; // b reaches the KV again; a's requests are long given up
      expect(a.maySend() && b.maySend()).toBe(false);
      if (!a.maySend() && aStopped === 0) aStopped = clock.now() - cutAt;
    }
    expect(aStopped).toBeGreaterThan(0);
    expect(aStopped).toBeLessThanOrEqual(TTL - TTL / 5);
    expect(b.maySend() || a.maySend()).toBe(true);
    expect(changes[0]).toBe('a owns #1');
    expect(changes[1]).toBe('a stopped');
  });

  it('pauses while a renewal that committed goes unanswered, then adopts it by its nonce', async () => {
    const { clock, kv, keeper, changes } = setup();
    const a = keeper('a');
    a.start();
    await clock.advance(1);
    kv.loseAnswers = 1; // the next renewal's answer
    await clock.advance(TTL);
    expect(a.maySend()).toBe(true);
    expect(a.state.kind === 'owner' || a.state.kind === 'renewing').toBe(true);
    // Not sending between the timeout and the answer to the get; then owner again on revision 2.
    expect(changes.slice(0, 3)).toEqual(['a owns #1', 'a stopped', 'a owns #2']);
  });

  it('releases the lease on stop, so another node takes it without waiting for the TTL', async () => {
    const { clock, keeper } = setup();
    const a = keeper('a');
    a.start();
    await clock.advance(1);
    const b = keeper('b');
    b.start();
    await clock.advance(10);
    await a.stop();
    expect(a.maySend()).toBe(false);
    await clock.advance(TTL / 4 + 10);
    expect(b.maySend()).toBe(true);
  });
});
