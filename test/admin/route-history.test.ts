import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HistoryRing, RATE_FIELDS } from '../../src/admin/history-ring.js';
import { routeAction } from '../../src/admin/route-audit.js';
import {
  estimate,
  HistoryRecorder,
  ROUTE_HISTORY_BYTES,
  RouteHistories,
  type RouteReading,
} from '../../src/admin/route-history.js';
import { RouteTimeline, stateSetter } from '../../src/admin/route-timeline.js';
import { nodeFileSystem, writeAtomicJson } from '../../src/log/index.js';
import { tempDir } from '../support/tmp.js';

const T0 = 1_800_000_000_000;
const zero = { stored: 0, forwarded: 0, expired: 0, pruned: 0, deadLettered: 0 };

function reading(name: string, inQueue: number, totals: Partial<RouteReading['totals']> = {}): RouteReading {
  return { name, inQueue, usedBytes: inQueue * 100, totals: { ...zero, ...totals } };
}

describe('HistoryRing', () => {
  it('keeps the peak gauges and the rate over the seconds a bucket covers', () => {
    const ring = new HistoryRing(10_000, 6);
    ring.add({ at: T0, inQueue: 3, usedBytes: 30, coveredSeconds: 0, counts: zero });
    ring.add({ at: T0 + 1000, inQueue: 7, usedBytes: 70, coveredSeconds: 1, counts: { ...zero, stored: 4 } });
    ring.add({ at: T0 + 2000, inQueue: 5, usedBytes: 50, coveredSeconds: 1, counts: { ...zero, stored: 2 } });
    const s = ring.read(T0 + 2000);
    expect(s.t).toHaveLength(6);
    expect(s.t.at(-1)).toBe(Math.floor(T0 / 10_000) * 10_000);
    expect(s.inQueue.at(-1)).toBe(7);
    expect(s.usedBytes.at(-1)).toBe(70);
    expect(s.rates.stored.at(-1)).toBe(3);
    expect(s.rates.forwarded.at(-1)).toBe(0);
  });

  it('reads buckets the gateway did not see, and buckets overwritten by a newer lap, as gaps', () => {
    const ring = new HistoryRing(1000, 5);
    ring.add({ at: T0, inQueue: 1, usedBytes: 1, coveredSeconds: 1, counts: zero });
    ring.add({ at: T0 + 2000, inQueue: 2, usedBytes: 2, coveredSeconds: 1, counts: zero });
    expect(ring.read(T0 + 2000).inQueue).toEqual([null, null, 1, null, 2]);
    // A lap later the same slots hold other buckets: the old values are not read as new.
    ring.add({ at: T0 + 5000, inQueue: 9, usedBytes: 9, coveredSeconds: 1, counts: zero });
    expect(ring.read(T0 + 6000).inQueue).toEqual([2, null, null, 9, null]);
    expect(ring.read(T0 + 60_000).inQueue).toEqual([null, null, null, null, null]);
  });

  it('a bucket with no covered seconds (a start) has gauges but no rates', () => {
    const ring = new HistoryRing(1000, 3);
    ring.add({ at: T0, inQueue: 4, usedBytes: 4, coveredSeconds: 0, counts: { ...zero, stored: 99 } });
    const s = ring.read(T0);
    expect(s.inQueue.at(-1)).toBe(4);
    for (const f of RATE_FIELDS) expect(s.rates[f].at(-1)).toBeNull();
  });

  it('round-trips through its bytes and refuses bytes of another shape', () => {
    const ring = new HistoryRing(1000, 4);
    ring.add({ at: T0, inQueue: 4, usedBytes: 8, coveredSeconds: 1, counts: { ...zero, pruned: 2 } });
    const copy = new HistoryRing(1000, 4);
    expect(copy.decode(ring.encode())).toBe(true);
    expect(copy.read(T0)).toEqual(ring.read(T0));
    expect(new HistoryRing(1000, 5).decode(ring.encode())).toBe(false);
  });
});

describe('RouteHistories', () => {
  it('costs a fixed 75,600 bytes per route, whatever the traffic', () => {
    expect(ROUTE_HISTORY_BYTES).toBe((300 + 360 + 1440) * 4 * 9);
    const h = new RouteHistories();
    for (let i = 0; i < 3600; i++)
      h.observe([reading('a', i, { stored: i * 10 }), reading('b', 1)], T0 + i * 1000);
    expect(h.byteLength).toBe(2 * ROUTE_HISTORY_BYTES);
  });

  it('counts nothing from the first reading and counts a reset counter from zero', () => {
    const h = new RouteHistories();
    h.observe([reading('r', 0, { forwarded: 1000 })], T0);
    h.observe([reading('r', 0, { forwarded: 1004 })], T0 + 1000);
    // reset-counters: forwarded went back to 0, then 2 more were delivered.
    h.observe([reading('r', 0, { forwarded: 2 })], T0 + 2000);
    expect(h.read('r', '5m', T0 + 2000).rates.forwarded.slice(-3)).toEqual([null, 4, 2]);
    expect(h.lastDeliveredAt('r')).toBe(T0 + 2000);
  });

  it('counts nothing across a stall longer than 5 s (the growth is not a rate)', () => {
    const h = new RouteHistories();
    h.observe([reading('r', 0, { stored: 0 })], T0);
    h.observe([reading('r', 0, { stored: 600 })], T0 + 60_000);
    expect(h.read('r', '5m', T0 + 60_000).rates.stored.at(-1)).toBeNull();
  });

  it('fills the 1 h and 24 h windows in coarser buckets', () => {
    const h = new RouteHistories();
    for (let i = 0; i <= 120; i++) h.observe([reading('r', i, { stored: i * 5 })], T0 + i * 1000);
    const hour = h.read('r', '1h', T0 + 120_000);
    expect(hour.t).toHaveLength(360);
    expect(hour.t[1]! - hour.t[0]!).toBe(10_000);
    expect(hour.rates.stored.filter((v) => v !== null).every((v) => Math.abs(v - 5) < 1e-6)).toBe(true);
    const day = h.read('r', '24h', T0 + 120_000);
    expect(day.t).toHaveLength(1440);
    expect(day.inQueue.at(-1)).toBe(120);
  });

  it('forgets routes no longer read, and gives a 30-point sparkline of the last 5 minutes', () => {
    const h = new RouteHistories();
    h.observe([reading('a', 1), reading('b', 2)], T0);
    h.observe([reading('b', 3)], T0 + 1000);
    expect(h.has('a')).toBe(false);
    const line = h.sparkline('b', T0 + 1000);
    expect(line).toHaveLength(30);
    expect(line.filter((v) => v !== null)).toEqual([3]);
  });

  it('restores what was saved for the configured routes only', async () => {
    const h = new RouteHistories();
    h.observe([reading('keep', 5, { forwarded: 1 }), reading('gone', 1)], T0);
    h.observe([reading('keep', 6, { forwarded: 2 }), reading('gone', 1)], T0 + 1000);
    const file = JSON.parse(JSON.stringify(await h.toFile()));
    const back = new RouteHistories();
    back.restore(file, new Set(['keep']));
    expect(back.has('gone')).toBe(false);
    expect(back.read('keep', '5m', T0 + 1000)).toEqual(h.read('keep', '5m', T0 + 1000));
    expect(back.lastDeliveredAt('keep')).toBe(T0 + 1000);
    expect(() => back.restore({ version: 9 }, new Set())).toThrow();
  });
});

describe('estimate', () => {
  const fine = (values: number[]) => ({
    t: values.map((_, i) => T0 + i * 1000),
    inQueue: values,
    usedBytes: values.map((v) => v * 10),
    rates: Object.fromEntries(RATE_FIELDS.map((f) => [f, values.map(() => 0)])) as never,
  });

  it('drains at the last minute rate, and is full when a limit is reached at its growth', () => {
    const falling = fine(Array.from({ length: 60 }, (_, i) => 600 - i * 10));
    expect(estimate(falling, { inQueue: 10, usedBytes: 100 }).drainSeconds).toBeCloseTo(1);
    const rising = fine(Array.from({ length: 60 }, (_, i) => i * 2));
    const r = estimate(rising, { inQueue: 118, usedBytes: 1180, limitBytes: 2180, limitMessages: 1000 });
    expect(r.drainSeconds).toBeNull();
    // usedBytes grows 20 B/s: 1000 B of room is 50 s; messages: 882 at 2/s is 441 s.
    expect(r.fullSeconds).toBeCloseTo(50);
  });

  it('sees no trend in a burst that came and went within the minute', () => {
    const burst = fine(Array.from({ length: 60 }, (_, i) => (i > 40 && i < 55 ? 50 : 0)));
    expect(estimate(burst, { inQueue: 0, usedBytes: 0, limitBytes: 1000 })).toEqual({
      drainSeconds: 0,
      fullSeconds: null,
    });
    const settling = fine(Array.from({ length: 60 }, (_, i) => (i > 40 && i < 55 ? 50 : 5)));
    expect(estimate(settling, { inQueue: 5, usedBytes: 50, limitBytes: 1000 })).toEqual({
      drainSeconds: null,
      fullSeconds: null,
    });
  });

  it('says 0 to drain when empty and nothing without enough points or limits', () => {
    expect(estimate(fine([]), { inQueue: 0, usedBytes: 0 })).toEqual({ drainSeconds: 0, fullSeconds: null });
    expect(estimate(fine([5, 4]), { inQueue: 4, usedBytes: 40, limitBytes: 100 })).toEqual({
      drainSeconds: null,
      fullSeconds: null,
    });
  });
});

describe('HistoryRecorder persistence', () => {
  let now = T0;
  async function recorder(dir: string, read: () => Promise<RouteReading[]>, warnings: string[] = []) {
    const histories = new RouteHistories();
    const rec = new HistoryRecorder({
      histories,
      read,
      path: join(dir, 'dashboard', 'route-history.state'),
      fs: nodeFileSystem,
      now: () => (now += 1000),
      intervalMs: 3_600_000,
      onWarning: (m) => warnings.push(m),
    });
    return { rec, histories };
  }

  it('saves at stop and restores at the next start', async () => {
    const dir = await tempDir();
    let n = 0;
    const read = async () => [reading('r', ++n, { forwarded: n })];
    now = T0;
    const a = await recorder(dir, read);
    await a.rec.start(['r']);
    await a.rec.tick();
    await a.rec.stop();
    // Restarted 2 s later: a gap, then the new reading.
    now += 2000;
    const b = await recorder(dir, read);
    await b.rec.start(['r']);
    expect(b.histories.read('r', '5m', now).inQueue.slice(-5)).toEqual([1, 2, null, null, 3]);
    await b.rec.stop();
  });

  for (const [name, damage] of [
    ['a truncated history file', (p: string) => truncate(p, 40)],
    ['a history file of garbage', (p: string) => writeFile(p, 'not a state file at all')],
    [
      'a history file with the wrong content',
      (p: string) => writeAtomicJson(nodeFileSystem, p, { version: 1 }),
    ],
  ] as const) {
    it(`starts empty after ${name}, moving it aside with a warning`, async () => {
      const dir = await tempDir();
      const path = join(dir, 'dashboard', 'route-history.state');
      const a = await recorder(dir, async () => [reading('r', 1)]);
      await a.rec.start(['r']);
      await a.rec.stop();
      await damage(path);
      const damagedBytes = await readFile(path);
      const warnings: string[] = [];
      const b = await recorder(dir, async () => [reading('r', 7)], warnings);
      await b.rec.start(['r']);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('moved aside');
      expect(await readFile(`${path}.damaged`)).toEqual(damagedBytes);
      expect(b.histories.read('r', '5m', now).inQueue.filter((v) => v !== null)).toEqual([7]);
      await b.rec.stop();
    });
  }
});

describe('RouteTimeline', () => {
  it('keeps the newest events per route up to its bound, newest first', () => {
    let now = T0;
    const t = new RouteTimeline({ perRoute: 3, now: () => now++, onWarning: () => {} });
    for (const action of ['store', 'forward', 'purge', 'reset-counters'])
      t.record('r', { kind: 'action', action, by: 'ops' });
    expect(t.list('r', 10).map((e) => (e.kind === 'action' ? e.action : e.kind))).toEqual([
      'reset-counters',
      'purge',
      'forward',
    ]);
    expect(t.list('r', 1)).toHaveLength(1);
    expect(t.list('other', 10)).toEqual([]);
  });

  it('is kept across restarts, with what was recorded before loading after what was saved', async () => {
    const dir = await tempDir();
    const path = join(dir, 'dashboard', 'route-timeline.state');
    const a = new RouteTimeline({ onWarning: () => {} });
    await a.open(nodeFileSystem, path, ['r', 'gone']);
    a.record('r', { kind: 'start' });
    a.record('gone', { kind: 'start' });
    a.record('r', { kind: 'stop' });
    await a.flush();
    const b = new RouteTimeline({ onWarning: () => {} });
    b.record('r', { kind: 'state', from: 'forwarding', to: 'held', by: 'operator' });
    await b.open(nodeFileSystem, path, ['r']);
    expect(b.list('r', 10).map((e) => e.kind)).toEqual(['state', 'stop', 'start']);
    expect(b.list('gone', 10)).toEqual([]);
  });

  it('starts empty after a damaged timeline file, with a warning', async () => {
    const dir = await tempDir();
    const path = join(dir, 'dashboard', 'route-timeline.state');
    const a = new RouteTimeline({ onWarning: () => {} });
    await a.open(nodeFileSystem, path, ['r']);
    a.record('r', { kind: 'start' });
    await a.flush();
    await truncate(path, 20);
    const warnings: string[] = [];
    const b = new RouteTimeline({ onWarning: (m) => warnings.push(m) });
    await b.open(nodeFileSystem, path, ['r']);
    expect(warnings).toHaveLength(1);
    expect(b.list('r', 10)).toEqual([]);
  });

  it("names who set a state: the operator, the route's own failures or a group peer", () => {
    expect(stateSetter('held', 'self')).toBe('operator');
    expect(stateSetter('storing', 'self')).toBe('its own failures');
    expect(stateSetter('storing', 'group')).toBe('group peer');
    expect(stateSetter('held', 'group')).toBe('group peer');
    expect(stateSetter('draining', 'self')).toBeUndefined();
  });
});

describe('routeAction', () => {
  it('names the route actions by their path and leaves reads and other paths alone', () => {
    expect(routeAction('POST', '/v1/routes/:route/store')).toBe('store');
    expect(routeAction('POST', '/v1/routes/:route/purge')).toBe('purge');
    expect(routeAction('POST', '/v1/routes/:route/dead-letters/resubmit')).toBe('resubmit-dead-letters');
    expect(routeAction('DELETE', '/v1/routes/:route/dead-letters')).toBe('delete-dead-letters');
    expect(routeAction('GET', '/v1/routes/:route/history')).toBeUndefined();
    expect(routeAction('POST', '/v1/streams/:stream/messages')).toBeUndefined();
    expect(routeAction('POST', undefined)).toBeUndefined();
    expect(routeAction('POST', '/v1/routes/:route/dead-letters/export')).toBeUndefined();
  });
});
