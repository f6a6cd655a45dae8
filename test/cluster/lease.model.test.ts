/**
 * A model of route leases (src/cluster/lease.ts): several nodes, each with its own monotonic
 * clock (rate within ±4 %, any offset), run the pure lease state machine against an in-memory KV
 * whose entries expire `leaseTtlMs` after their last write (JetStream KV's max_age), through a
 * network that delays requests and answers (longer than the request timeout, so a write can
 * commit after its sender gave up), drops them, and partitions nodes; nodes pause (long gaps
 * between ticks), crash and restart with fresh state, and stop (release). Checked at every event:
 * at no instant do two nodes believe they may send for the route. After the chaos ends, a live,
 * connected node owns the route and keeps it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  initialLeaseState,
  type KvWriteResult,
  type LeaseCommand,
  type LeaseEntry,
  type LeaseEvent,
  type LeaseState,
  type LeaseValue,
  maySend,
  type ResolvedLeaseOptions,
  resolveLeaseOptions,
  transition,
} from '../../src/cluster/lease.js';

/** The KV's entries by key, with server-side expiry (real time). Revisions grow bucket-wide. */
class TtlKv {
  private rev = 0;
  private readonly entries = new Map<string, { value: LeaseValue; revision: number; writtenAt: number }>();
  constructor(private readonly ttlMs: number) {}

  private live(key: string, now: number) {
    const e = this.entries.get(key);
    if (e && now >= e.writtenAt + this.ttlMs) this.entries.delete(key);
    return this.entries.get(key);
  }
  create(key: string, value: LeaseValue, now: number): KvWriteResult {
    if (this.live(key, now)) return { ok: false };
    this.entries.set(key, { value, revision: ++this.rev, writtenAt: now });
    return { ok: true, revision: this.rev };
  }
  update(key: string, value: LeaseValue, revision: number, now: number): KvWriteResult {
    if (this.live(key, now)?.revision !== revision) return { ok: false };
    this.entries.set(key, { value, revision: ++this.rev, writtenAt: now });
    return { ok: true, revision: this.rev };
  }
  get(key: string, now: number): LeaseEntry | null {
    const e = this.live(key, now);
    return e ? { value: e.value, revision: e.revision } : null;
  }
  delete(key: string, revision: number, now: number): void {
    if (this.live(key, now)?.revision === revision) this.entries.delete(key);
  }
}

interface Scenario {
  rates: number[];
  offsets: number[];
  delays: number[];
  drops: boolean[];
  tickGaps: number[];
  partitions: { node: number; start: number; len: number }[];
  crashes: { node: number; at: number; downFor: number }[];
  stops: { node: number; at: number }[];
}

const TTL = 1_000;
/** Across all runs: how often the route passed from one node to another (the test has teeth). */
const stats = { handovers: 0 };
const CHAOS_MS = 10_000;
const KEY = 'route.orders';

interface SimNode {
  readonly id: string;
  readonly rate: number;
  readonly offset: number;
  state: LeaseState | undefined; // undefined: crashed (not running)
  stopped: boolean;
  incarnation: number;
  inflight: { req: number; type: 'created' | 'updated' | 'got' } | undefined;
  nonce: number;
}

type SimEvent =
  | { at: number; seq: number; kind: 'tick'; node: number }
  | { at: number; seq: number; kind: 'arrive'; node: number; req: number; inc: number; cmd: LeaseCommand }
  | {
      at: number;
      seq: number;
      kind: 'answer';
      node: number;
      req: number;
      inc: number;
      event: (now: number) => LeaseEvent;
    }
  | { at: number; seq: number; kind: 'timeout'; node: number; req: number; inc: number }
  | { at: number; seq: number; kind: 'crash' | 'restart' | 'stop'; node: number };

type Distribute<T> = T extends unknown ? Omit<T, 'seq'> : never;

/** Runs the scenario; returns a description of the first violation, or undefined. */
function simulate(
  s: Scenario,
  o: ResolvedLeaseOptions,
  step: typeof transition = transition,
  healMs = 6 * TTL,
): string | undefined {
  const kv = new TtlKv(o.leaseTtlMs);
  const nodes: SimNode[] = s.rates.map((rate, i) => ({
    id: `node-${i}`,
    rate,
    offset: s.offsets[i] ?? 0,
    state: undefined,
    stopped: false,
    incarnation: 0,
    inflight: undefined,
    nonce: 0,
  }));
  const local = (n: SimNode, t: number) => n.offset + n.rate * t;
  const queue: SimEvent[] = [];
  let seq = 0;
  const push = (e: Distribute<SimEvent>) => {
    const ev = { ...e, seq: seq++ } as SimEvent;
    let i = queue.length;
    while (i > 0 && (queue[i - 1]!.at > ev.at || (queue[i - 1]!.at === ev.at && queue[i - 1]!.seq > ev.seq)))
      i--;
    queue.splice(i, 0, ev);
  };
  let di = 0;
  let dr = 0;
  const healed = (t: number) => t >= CHAOS_MS;
  const delay = (t: number) =>
    healed(t) ? s.delays[di++ % s.delays.length]! % 40 : s.delays[di++ % s.delays.length]!;
  const dropped = (t: number) => !healed(t) && s.drops[dr++ % s.drops.length]!;
  const partitioned = (node: number, t: number) =>
    !healed(t) && s.partitions.some((p) => p.node === node && t >= p.start && t < p.start + p.len);
  const tickIdx = nodes.map(() => 0);
  const gap = (i: number, t: number) => {
    const g = s.tickGaps[(tickIdx[i]! + i) % s.tickGaps.length]!;
    tickIdx[i]!++;
    return healed(t) ? Math.min(g, 30) : g;
  };

  let req = 0;
  const issue = (i: number, t: number, cmds: readonly LeaseCommand[]) => {
    const n = nodes[i]!;
    for (const cmd of cmds) {
      const r = ++req;
      if (cmd.type !== 'delete') {
        n.inflight = {
          req: r,
          type: cmd.type === 'create' ? 'created' : cmd.type === 'update' ? 'updated' : 'got',
        };
        push({ at: t + o.requestTimeoutMs, kind: 'timeout', node: i, req: r, inc: n.incarnation });
      }
      if (partitioned(i, t) || dropped(t)) continue;
      push({ at: t + delay(t), kind: 'arrive', node: i, req: r, inc: n.incarnation, cmd });
    }
  };
  const apply = (i: number, t: number, ev: LeaseEvent) => {
    const n = nodes[i]!;
    if (n.state === undefined) return;
    const ctx = { nodeId: n.id, nextNonce: () => `${n.incarnation}.${n.nonce++}` };
    const next = step(n.state, ev, ctx, o);
    n.state = next.state;
    issue(i, t, next.commands);
  };
  const start = (i: number, t: number) => {
    const n = nodes[i]!;
    n.incarnation++;
    n.inflight = undefined;
    n.state = initialLeaseState(local(n, t));
  };

  nodes.forEach((_, i) => {
    start(i, 0);
    push({ at: 1 + i, kind: 'tick', node: i });
  });
  for (const c of s.crashes) {
    if (c.node >= nodes.length) continue;
    push({ at: c.at, kind: 'crash', node: c.node });
    push({ at: Math.min(c.at + c.downFor, CHAOS_MS), kind: 'restart', node: c.node });
  }
  for (const st of s.stops) if (st.node < nodes.length - 1) push({ at: st.at, kind: 'stop', node: st.node });

  const end = CHAOS_MS + healMs;
  let ownedSince: number | undefined;
  let lastOwner: SimNode | undefined;
  while (queue.length > 0) {
    const ev = queue.shift()!;
    const t = ev.at;
    if (t > end) break;
    const n = nodes[ev.node]!;
    switch (ev.kind) {
      case 'tick':
        apply(ev.node, t, { type: 'tick', now: local(n, t) });
        push({ at: t + gap(ev.node, t), kind: 'tick', node: ev.node });
        break;
      case 'arrive': {
        const c = ev.cmd;
        let answer: (now: number) => LeaseEvent;
        if (c.type === 'create') {
          const result = kv.create(KEY, c.value, t);
          answer = (now) => ({ type: 'created', now, result });
        } else if (c.type === 'update') {
          const result = kv.update(KEY, c.value, c.revision, t);
          answer = (now) => ({ type: 'updated', now, result });
        } else if (c.type === 'get') {
          const entry = kv.get(KEY, t);
          answer = (now) => ({ type: 'got', now, entry });
        } else {
          kv.delete(KEY, c.revision, t);
          break;
        }
        const back = t + delay(t);
        if (partitioned(ev.node, back) || dropped(t)) break;
        push({ at: back, kind: 'answer', node: ev.node, req: ev.req, inc: ev.inc, event: answer });
        break;
      }
      case 'answer':
      case 'timeout':
        if (n.incarnation !== ev.inc || n.inflight?.req !== ev.req) break; // late: the keeper ignores it
        {
          const waiting = n.inflight.type;
          n.inflight = undefined;
          const now = local(n, t);
          if (ev.kind === 'answer') apply(ev.node, t, ev.event(now));
          else if (waiting === 'got') apply(ev.node, t, { type: 'got', now, entry: 'error' });
          else apply(ev.node, t, { type: waiting, now, result: 'error' });
        }
        break;
      case 'crash':
        n.state = undefined;
        n.inflight = undefined;
        break;
      case 'restart':
        if (n.state === undefined && !n.stopped) start(ev.node, t);
        break;
      case 'stop':
        if (n.state !== undefined) {
          apply(ev.node, t, { type: 'stop', now: local(n, t) });
          n.stopped = true;
        }
        break;
    }
    const owners = nodes.filter((m) => m.state !== undefined && maySend(m.state, local(m, t)));
    if (owners.length === 1 && owners[0] !== lastOwner) {
      if (lastOwner !== undefined) stats.handovers++;
      lastOwner = owners[0];
    }
    if (owners.length > 1) {
      return `at ${t} ms ${owners.map((m) => `${m.id} (${JSON.stringify(m.state)})`).join(' and ')} both may send`;
    }
    if (t >= CHAOS_MS) {
      if (owners.length === 1) ownedSince ??= t;
      else if (t > CHAOS_MS + 3 * TTL)
        return `at ${t} ms, ${healMs} ms after healing, no node owns the route`;
      else ownedSince = undefined;
    }
  }
  if (ownedSince === undefined) return 'no node owned the route after healing';
  return undefined;
}

const scenario = (maxNodes: number): fc.Arbitrary<Scenario> =>
  fc.integer({ min: 2, max: maxNodes }).chain((n) =>
    fc.record({
      rates: fc.array(
        fc.integer({ min: 960, max: 1040 }).map((r) => r / 1000),
        { minLength: n, maxLength: n },
      ),
      offsets: fc.array(fc.integer({ min: 0, max: 1_000_000 }), { minLength: n, maxLength: n }),
      delays: fc.array(fc.oneof(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 700 })), {
        minLength: 1,
        maxLength: 40,
      }),
      drops: fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }),
      tickGaps: fc.array(fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 1_500 })), {
        minLength: 1,
        maxLength: 30,
      }),
      partitions: fc.array(
        fc.record({
          node: fc.integer({ min: 0, max: n - 1 }),
          start: fc.integer({ min: 0, max: CHAOS_MS }),
          len: fc.integer({ min: 0, max: 3_000 }),
        }),
        { maxLength: 6 },
      ),
      crashes: fc.array(
        fc.record({
          node: fc.integer({ min: 0, max: n - 1 }),
          at: fc.integer({ min: 0, max: CHAOS_MS }),
          downFor: fc.integer({ min: 0, max: 3_000 }),
        }),
        { maxLength: 3 },
      ),
      stops: fc.array(
        fc.record({ node: fc.integer({ min: 0, max: n - 1 }), at: fc.integer({ min: 0, max: CHAOS_MS }) }),
        { maxLength: 1 },
      ),
    }),
  );

const options = resolveLeaseOptions({
  leaseTtlMs: TTL,
  safetyMarginMs: 200,
  renewIntervalMs: 300,
  acquireIntervalMs: 250,
  requestTimeoutMs: 200,
});

describe('route leases (model)', () => {
  it.each([
    ['answers within 200 ms', options],
    ['answers within 600 ms', resolveLeaseOptions({ ...options, requestTimeoutMs: 600 })],
  ])(
    'never lets two nodes send for a route at once, and a connected node owns it after faults heal (%s)',
    (_, o) => {
      fc.assert(
        fc.property(scenario(4), (s) => {
          expect(simulate(s, o)).toBeUndefined();
        }),
        { numRuns: 250 },
      );
      expect(stats.handovers).toBeGreaterThan(100);
    },
  );

  it('would let two nodes send at once with no safety margin and clocks 15 % slow (the model can fail)', () => {
    const unsafe = resolveLeaseOptions({ ...options, safetyMarginMs: 0 });
    const slow = scenario(3).map((s) => ({ ...s, rates: s.rates.map(() => 0.85) }));
    const result = fc.check(
      fc.property(slow, (s) => simulate(s, unsafe)?.includes('both may send') !== true),
      { numRuns: 1000, seed: 20261201 },
    );
    expect(result.failed).toBe(true);
  });

  it('would let two nodes send at once if validity counted from the answer, not the request (the model can fail)', () => {
    // Answers may come up to 600 ms after the write (within the request timeout).
    const slowAnswers = resolveLeaseOptions({ ...options, requestTimeoutMs: 600 });
    const fromAnswer: typeof transition = (state, event, ctx, o) => {
      const next = transition(state, event, ctx, o);
      const became = next.state.kind === 'owner' && (event.type === 'created' || event.type === 'updated');
      return became
        ? { ...next, state: { ...next.state, validUntil: event.now + o.leaseTtlMs - o.safetyMarginMs } }
        : next;
    };
    const result = fc.check(
      fc.property(
        scenario(3),
        (s) => simulate(s, slowAnswers, fromAnswer)?.includes('both may send') !== true,
      ),
      { numRuns: 1000, seed: 20261201 },
    );
    expect(result.failed).toBe(true);
  });
});
