import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BudgetClient, ByteBudget, type PendingGrant } from '../../src/delivery/byte-budget.js';
import { ByteGate } from '../../src/delivery/byte-gate.js';
import type { Clock, TimerHandle } from '../../src/delivery/clock.js';

/** Virtual time without promises: the budget needs none, so thousands of grants run in milliseconds. */
class SyncClock implements Clock {
  t = 0;
  private seq = 0;
  private timers: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers = this.timers.filter((x) => !x.cancelled);
      let next: (typeof this.timers)[number] | undefined;
      for (const x of this.timers)
        if (x.at <= end && (!next || x.at < next.at || (x.at === next.at && x.seq < next.seq))) next = x;
      if (!next) break;
      this.t = next.at;
      next.cancelled = true;
      next.fn();
    }
    this.t = end;
  }
  get armed(): number {
    return this.timers.filter((x) => !x.cancelled).length;
  }
}

interface Grant {
  at: number;
  bytes: number;
}

/** A sender that always has another batch of `bytes` waiting (a route with a deep backlog). */
function saturate(clock: SyncClock, client: BudgetClient, bytes: number | (() => number)) {
  const grants: Grant[] = [];
  let stopped = false;
  let pending: PendingGrant | undefined;
  const size = typeof bytes === 'number' ? () => bytes : bytes;
  const go = (): void => {
    while (!stopped) {
      const b = size();
      const p = client.acquire(b, () => {
        pending = undefined;
        grants.push({ at: clock.now(), bytes: b });
        go();
      });
      if (p) {
        pending = p;
        return;
      }
      grants.push({ at: clock.now(), bytes: b });
    }
  };
  go();
  return {
    grants,
    /** Bytes granted in [from, to). */
    bytesIn: (from: number, to: number) =>
      grants.filter((g) => g.at >= from && g.at < to).reduce((n, g) => n + g.bytes, 0),
    stop: () => {
      stopped = true;
      pending?.cancel();
    },
  };
}

const RATE = 100_000;

describe('byte budget: the rate', () => {
  for (const routes of [1, 2, 5]) {
    it(`holds the rate within ±5 % over a 60 s window with ${routes} route(s) sending`, () => {
      const clock = new SyncClock();
      const budget = new ByteBudget({ name: 'target t', bytesPerSecond: RATE, clock });
      // Batch sizes that do not divide the rate, different per route.
      const senders = Array.from({ length: routes }, (_, i) =>
        saturate(clock, budget.client(`r${i}`, i % 10), 3_000 + 1_777 * i),
      );
      clock.advance(70_000);
      const window = senders.reduce((n, s) => n + s.bytesIn(10_000, 70_000), 0);
      expect(window / 60).toBeGreaterThan(RATE * 0.95);
      expect(window / 60).toBeLessThan(RATE * 1.05);
      // From the very start, the burst (one second's worth) is all that comes on top.
      const total = senders.reduce((n, s) => n + s.bytesIn(0, 70_000), 0);
      expect(total).toBeLessThanOrEqual(RATE * 70 + budget.burstBytes);
      for (const s of senders) s.stop();
    });
  }

  it('grants at once, without a timer, while the tokens are there and no one waits (the fast path)', () => {
    const clock = new SyncClock();
    const budget = new ByteBudget({ name: 'gateway', bytesPerSecond: RATE, clock });
    const c = budget.client('r', 4);
    let called = false;
    expect(c.acquire(60_000, () => (called = true))).toBeUndefined();
    expect(c.acquire(40_000, () => (called = true))).toBeUndefined();
    expect(clock.armed).toBe(0);
    const p = c.acquire(1, () => (called = true));
    expect(p).toBeDefined();
    clock.advance(1);
    expect(called).toBe(true);
  });

  it('never grants more than burst + rate × elapsed, whatever is asked and cancelled when', () => {
    const step = fc.record({
      client: fc.integer({ min: 0, max: 3 }),
      bytes: fc.integer({ min: 0, max: 250_000 }),
      waitMs: fc.integer({ min: 0, max: 3_000 }),
      cancel: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1_000, max: 200_000 }),
        (steps, rate) => {
          const clock = new SyncClock();
          const budget = new ByteBudget({ name: 'b', bytesPerSecond: rate, clock });
          const clients = [0, 1, 2, 3].map((i) => budget.client(`r${i}`, (i * 3) % 10));
          const pending = new Map<number, PendingGrant>();
          let asked = 0;
          const bound = () => budget.burstBytes + (rate * clock.now()) / 1000 + 1e-6;
          const check = () => expect(budget.granted).toBeLessThanOrEqual(bound());
          for (const s of steps) {
            const p = pending.get(s.client);
            if (p && s.cancel) {
              p.cancel();
              pending.delete(s.client);
            } else if (!p) {
              const g = clients[s.client]!.acquire(s.bytes, () => {
                pending.delete(s.client);
                check();
              });
              if (g) pending.set(s.client, g);
              asked += s.bytes;
              check();
            }
            clock.advance(s.waitMs);
            check();
          }
          // Everything still waiting is granted eventually (nothing blocks forever).
          clock.advance((asked / rate) * 1000 + 60_000);
          expect(pending.size).toBe(0);
          check();
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('byte budget: priority and minimum shares', () => {
  it('grants the higher priority first when both wait', () => {
    const clock = new SyncClock();
    const budget = new ByteBudget({ name: 'b', bytesPerSecond: 10_000, clock });
    const order: string[] = [];
    budget.client('drain', 4).acquire(10_000, () => {});
    budget.client('telemetry', 9).acquire(5_000, () => order.push('telemetry'));
    budget.client('alarms', 0).acquire(5_000, () => order.push('alarms'));
    clock.advance(500);
    expect(order).toEqual(['alarms']);
    clock.advance(500);
    expect(order).toEqual(['alarms', 'telemetry']);
  });

  it('serves routes of one priority in turn', () => {
    const clock = new SyncClock();
    const budget = new ByteBudget({ name: 'b', bytesPerSecond: RATE, clock });
    const a = saturate(clock, budget.client('a', 4), 4_000);
    const b = saturate(clock, budget.client('b', 4), 4_000);
    clock.advance(30_000);
    // (The first to ask took the initial burst.)
    expect(Math.abs(a.bytesIn(5_000, 30_000) - b.bytesIn(5_000, 30_000))).toBeLessThanOrEqual(8_000);
  });

  it('drains alarms before telemetry yet keeps the minimum share (10 %) for the lower priority', () => {
    const clock = new SyncClock();
    const budget = new ByteBudget({ name: 'b', bytesPerSecond: RATE, clock });
    const alarms = saturate(clock, budget.client('alarms', 0), 2_000);
    const telemetry = saturate(clock, budget.client('telemetry', 9), 8_000);
    clock.advance(70_000);
    const a = alarms.bytesIn(10_000, 70_000) / 60;
    const t = telemetry.bytesIn(10_000, 70_000) / 60;
    expect((a + t) / RATE).toBeGreaterThan(0.95);
    expect((a + t) / RATE).toBeLessThan(1.05);
    expect(t / RATE).toBeGreaterThanOrEqual(0.09);
    expect(t / RATE).toBeLessThan(0.12);
    expect(a / RATE).toBeGreaterThan(0.85);
  });

  it('guarantees every waiting route its share: 10 % each up to ten routes, an equal share beyond', () => {
    for (const n of [5, 12]) {
      const clock = new SyncClock();
      const budget = new ByteBudget({ name: 'b', bytesPerSecond: RATE, clock });
      const senders = Array.from({ length: n }, (_, i) =>
        saturate(clock, budget.client(`r${i}`, i % 10), 2_500),
      );
      clock.advance(70_000);
      const shares = senders.map((s) => s.bytesIn(10_000, 70_000) / 60 / RATE);
      const guaranteed = Math.min(0.1, 1 / n);
      for (const share of shares) expect(share).toBeGreaterThanOrEqual(guaranteed * 0.95);
      if (n === 5) expect(shares[0]).toBeGreaterThan(0.55); // priority 0 takes what is not reserved
      const sum = shares.reduce((x, y) => x + y, 0);
      expect(sum).toBeGreaterThan(0.95);
      expect(sum).toBeLessThan(1.05);
    }
  });
});

describe('byte budget: large messages and cancelling', () => {
  it('sends a message larger than the burst once the budget saved up for it, and no sooner', () => {
    const clock = new SyncClock();
    const budget = new ByteBudget({ name: 'b', bytesPerSecond: 10_000, clock });
    let at: number | undefined;
    expect(budget.client('r', 4).acquire(50_000, () => (at = clock.now()))).toBeDefined();
    clock.advance(3_999);
    expect(at).toBeUndefined();
    clock.advance(2);
    // Full burst (10 000) at the start + 4 s of refill.
    expect(at).toBe(4_000);
  });

  it('a large low-priority message still goes while a higher priority keeps sending', () => {
    const clock = new SyncClock();
    const budget = new ByteBudget({ name: 'b', bytesPerSecond: 10_000, clock });
    const alarms = saturate(clock, budget.client('alarms', 0), 500);
    let at: number | undefined;
    budget.client('bulk', 9).acquire(50_000, () => (at = clock.now()));
    clock.advance(120_000);
    expect(at).toBeDefined();
    // Its credit (10 % of 10 000 B/s) covers 50 000 bytes after 50 s; then the tokens are saved up.
    expect(at!).toBeLessThan(60_000);
    expect(alarms.bytesIn(0, 120_000)).toBeGreaterThan(10_000 * 120 - 50_000 - 15_000);
    alarms.stop();
  });

  it('a cancelled request is never granted, holds nothing up and leaves no timer', () => {
    const clock = new SyncClock();
    const budget = new ByteBudget({ name: 'b', bytesPerSecond: 10_000, clock });
    budget.client('x', 4).acquire(10_000, () => {});
    let big = false;
    let small: number | undefined;
    const p = budget.client('big', 0).acquire(40_000, () => (big = true));
    budget.client('small', 9).acquire(1_000, () => (small = clock.now()));
    clock.advance(50);
    p!.cancel();
    clock.advance(200);
    expect(small).toBe(100);
    clock.advance(10_000);
    expect(big).toBe(false);
    expect(budget.waitingCount).toBe(0);
    expect(clock.armed).toBe(0);
  });
});

describe('byte gate: a route through its budgets', () => {
  function gate(clock: SyncClock, replay: ByteBudget | undefined, shared: ByteBudget[], onReady: () => void) {
    const throttled: number[] = [];
    const g = new ByteGate({
      replay,
      shared,
      route: 'r',
      priority: 4,
      clock,
      onReady,
      onThrottled: (ms) => throttled.push(ms),
    });
    return { g, throttled };
  }

  it('needs every budget on the path; the route budget only for replay', () => {
    const clock = new SyncClock();
    const own = new ByteBudget({ name: 'route r', bytesPerSecond: 1_000, clock });
    const target = new ByteBudget({ name: 'target t', bytesPerSecond: 100_000, clock });
    let ready = 0;
    const { g, throttled } = gate(clock, own, [target], () => ready++);
    expect(g.admit(1_000, true)).toBe(true);
    expect(g.admit(5_000, false)).toBe(true); // live: the route's own budget does not apply
    expect(g.admit(1_000, true)).toBe(false);
    expect(g.waiting).toBe(true);
    expect(g.admit(1_000, true)).toBe(false); // still waiting: no second request
    clock.advance(1_000);
    expect(ready).toBe(1);
    expect(g.admit(1_000, true)).toBe(true);
    expect(throttled).toEqual([1_000]);
    expect(target.granted).toBe(7_000);
  });

  it('gives back what a smaller batch did not take, and everything when closed', () => {
    const clock = new SyncClock();
    const target = new ByteBudget({ name: 'target t', bytesPerSecond: 10_000, clock });
    const gateway = new ByteBudget({ name: 'gateway', bytesPerSecond: 10_000, clock });
    const { g } = gate(clock, undefined, [target, gateway], () => {});
    expect(g.admit(10_000, false)).toBe(true);
    expect(g.admit(4_000, false)).toBe(false);
    clock.advance(400);
    expect(g.admit(1_000, false)).toBe(true);
    expect(target.granted).toBe(11_000);
    expect(gateway.granted).toBe(11_000);
    expect(g.admit(20_000, false)).toBe(false);
    g.close();
    expect(target.waitingCount + gateway.waitingCount).toBe(0);
    expect(g.admit(1, false)).toBe(false);
    clock.advance(60_000);
    expect(target.granted).toBe(11_000);
    expect(gateway.granted).toBe(11_000);
  });
});
