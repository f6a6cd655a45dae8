import { describe, expect, it } from 'vitest';
import { RouteFullError, StorageFullError } from '../../src/errors.js';
import { openSim, texts } from '../support/sim.js';

const base = { targets: { t: { type: 'null' as const } } };

describe('retention, overflow, purge and storage limits', () => {
  it('expires stored messages older than retention.maxAge and never sends them', async () => {
    const sim = await openSim({
      ...base,
      routes: {
        r: {
          streams: ['s'],
          target: 't',
          probeInterval: '1h',
          probeIntervalMax: '2h',
          retention: { maxAge: '10m' },
          cleanupInterval: '1m',
        },
      },
    });
    const t = sim.targets.t!;
    t.behaviour = 'down';
    await sim.publish('s', 'old1', 'old2');
    await sim.clock.advance(6 * 60_000);
    await sim.publish('s', 'young');
    await sim.clock.advance(5 * 60_000);
    const snap = await sim.ws.route('r').snapshot();
    expect(snap.expired).toBe(2);
    expect(snap.inQueue).toBe(1);
    t.behaviour = 'up';
    sim.ws.route('r').forward();
    await sim.clock.advance(10);
    expect(t.texts()).toEqual(['young']);
    await sim.ws.close();
  });

  it('expires a message whose own TTL passed', async () => {
    const sim = await openSim({ ...base, routes: { r: { streams: ['s'], target: 't' } } });
    const t = sim.targets.t!;
    sim.ws.route('r').store();
    const { id } = await sim.ws.publish('s', Buffer.from('short'), { ttl: '30s' });
    await sim.ws.publish('s', Buffer.from('long'), { ttl: '1h' });
    await sim.clock.advance(60_000);
    sim.ws.route('r').forward();
    await sim.clock.advance(10);
    expect(t.texts()).toEqual(['long']);
    expect((await sim.ws.messageStatus(id)).routes).toEqual({ r: 'expired' });
    expect((await sim.ws.route('r').snapshot()).expired).toBe(1);
    await sim.ws.close();
  });

  it('drops the oldest beyond retention.maxMessages with onFull: drop-oldest, and counts them', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', retention: { maxMessages: 3 } } },
    });
    const t = sim.targets.t!;
    sim.ws.route('r').store();
    await sim.publish('s', ...texts(5));
    const snap = await sim.ws.route('r').snapshot();
    expect(snap).toMatchObject({ pruned: 2, inQueue: 3 });
    sim.ws.route('r').forward();
    await sim.clock.advance(10);
    expect(t.texts()).toEqual(['m3', 'm4', 'm5']);
    await sim.ws.close();
  });

  it('drops the oldest beyond retention.maxBytes', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', retention: { maxBytes: 1000 } } },
    });
    sim.ws.route('r').store();
    await sim.publish('s', ...texts(10).map((x) => x.padEnd(200, '.')));
    await sim.clock.advance(10);
    const snap = await sim.ws.route('r').snapshot();
    expect(snap.pruned).toBeGreaterThan(0);
    expect(snap.usedBytes).toBeLessThanOrEqual(1000 + 300);
    expect(snap.pruned + snap.inQueue).toBe(10);
    await sim.ws.close();
  });

  it('refuses publishes with RouteFullError (507) at the limit with onFull: reject-new, losing nothing', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', retention: { maxMessages: 2 }, onFull: 'reject-new' } },
    });
    const t = sim.targets.t!;
    sim.ws.route('r').store();
    await sim.publish('s', 'a', 'b');
    const err = await sim.ws.publish('s', Buffer.from('c')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouteFullError);
    expect((err as RouteFullError).httpStatus).toBe(507);
    expect((err as Error).message).toMatch(/Route "r" is full/);
    sim.ws.route('r').forward();
    await sim.clock.advance(10);
    expect(t.texts()).toEqual(['a', 'b']);
    await sim.publish('s', 'c');
    expect(t.texts()).toEqual(['a', 'b', 'c']);
    expect(sim.ws.streams()[0]!.lastSeq).toBe(3);
    await sim.ws.close();
  });

  it('purges all pending messages or the oldest N, and resets counters', async () => {
    const sim = await openSim({ ...base, routes: { r: { streams: ['s'], target: 't' } } });
    const route = sim.ws.route('r');
    route.store();
    await sim.publish('s', ...texts(6));
    expect(await route.purge({ top: 2 })).toBe(2);
    expect(await route.snapshot()).toMatchObject({ purged: 2, inQueue: 4 });
    route.forward();
    await sim.clock.advance(10);
    expect(sim.targets.t!.texts()).toEqual(['m3', 'm4', 'm5', 'm6']);
    route.store();
    await sim.publish('s', 'x', 'y');
    expect(await route.purge()).toBe(2);
    expect(await route.snapshot()).toMatchObject({ purged: 4, inQueue: 0, forwarded: 4 });
    route.resetCounters();
    expect(await route.snapshot()).toMatchObject({ purged: 0, forwarded: 0 });
    await sim.ws.close();
  });

  it('refuses publishes past storage.maxBytes and accepts again once routes drained', async () => {
    const sim = await openSim({
      ...base,
      storage: { maxBytes: 20_000, segmentBytes: 4096 },
      routes: { r: { streams: ['s'], target: 't' } },
    });
    sim.ws.route('r').store();
    let refused: unknown;
    for (let i = 0; i < 200 && !refused; i++) {
      await sim.ws.publish('s', Buffer.alloc(300, 1)).catch((e: unknown) => {
        refused = e;
      });
    }
    expect(refused).toBeInstanceOf(StorageFullError);
    expect((refused as StorageFullError).message).toMatch(/storage\.maxBytes/);
    const stored = sim.ws.streams()[0]!.messages;
    sim.ws.route('r').forward();
    await sim.clock.advance(2000);
    expect(sim.targets.t!.delivered).toHaveLength(stored);
    await sim.ws.publish('s', Buffer.from('again'));
    await sim.ws.close();
  });

  it('groups store together: one route failing stops its peers until it recovers', async () => {
    const sim = await openSim({
      targets: { a: { type: 'null' }, b: { type: 'null' } },
      routes: {
        ra: { streams: ['s'], target: 'a', group: 'g', probeInterval: '1s' },
        rb: { streams: ['s'], target: 'b', group: 'g', probeInterval: '1s' },
      },
    });
    sim.targets.a!.behaviour = 'down';
    await sim.publish('s', 'x');
    expect(await sim.state('ra')).toBe('storing');
    expect(await sim.state('rb')).toBe('storing');
    const bSnap = await sim.ws.route('rb').snapshot();
    expect(bSnap.cause).toBe('group');
    await sim.publish('s', 'y');
    await sim.clock.advance(5000);
    expect(sim.targets.b!.texts().length).toBeLessThanOrEqual(1);
    sim.targets.a!.behaviour = 'up';
    await sim.clock.advance(20_000);
    expect(sim.targets.a!.texts()).toEqual(['x', 'y']);
    expect(sim.targets.b!.texts()).toEqual(['x', 'y']);
    expect(await sim.state('rb')).toBe('forwarding');
    await sim.ws.close();
  });
});
