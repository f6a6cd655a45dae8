import { describe, expect, it } from 'vitest';
import { openSim, texts } from '../support/sim.js';

const base = { targets: { t: { type: 'null' as const } } };

describe('ordering', () => {
  it('fifo: the backlog drains before any newer message', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', probeInterval: '1s', replay: { ratePerSecond: 5 } } },
    });
    const t = sim.targets.t!;
    t.behaviour = 'down';
    await sim.publish('s', ...texts(5, 'old'));
    t.behaviour = 'up';
    await sim.clock.advance(1000);
    await sim.publish('s', 'new1');
    await sim.clock.advance(500);
    await sim.publish('s', 'new2');
    await sim.clock.advance(5000);
    expect(t.texts()).toEqual([...texts(5, 'old'), 'new1', 'new2']);
    await sim.ws.close();
  });

  it('unordered: new messages go out at once while the backlog drains beside them, paced', async () => {
    const sim = await openSim({
      ...base,
      routes: {
        r: {
          streams: ['s'],
          target: 't',
          ordering: 'unordered',
          probeInterval: '1s',
          replay: { ratePerSecond: 1 },
        },
      },
    });
    const t = sim.targets.t!;
    t.behaviour = 'down';
    await sim.publish('s', ...texts(5, 'old'));
    t.behaviour = 'up';
    await sim.clock.advance(1000); // probe delivers old1; draining at 1/s
    expect(await sim.state('r')).toBe('draining');
    await sim.publish('s', 'new1');
    await sim.clock.advance(10);
    expect(t.texts()).toContain('new1');
    expect(t.texts().filter((x) => x.startsWith('old')).length).toBeLessThan(5);
    await sim.clock.advance(10_000);
    expect(new Set(t.texts())).toEqual(new Set([...texts(5, 'old'), 'new1']));
    expect(await sim.state('r')).toBe('forwarding');
    await sim.ws.close();
  });

  it('key: FIFO per key, and a dead-lettered head blocks only its own key until resubmitted', async () => {
    const sim = await openSim({ ...base, routes: { r: { streams: ['s'], target: 't', ordering: 'key' } } });
    const t = sim.targets.t!;
    t.behaviour = (d) =>
      d.payload?.toString() === 'a1' ? { kind: 'error', reason: 'rejected' } : { kind: 'ack' };
    const publish = async (key: string, text: string) => {
      await sim.ws.publish('s', Buffer.from(text), { key });
      await sim.clock.advance(0);
    };
    await publish('A', 'a1');
    await publish('B', 'b1');
    await publish('A', 'a2');
    await publish('B', 'b2');
    expect(t.texts()).toEqual(['b1', 'b2']);
    const route = sim.ws.route('r');
    expect(route.deadLetters.list().map((d) => d.key)).toEqual(['A']);
    t.behaviour = 'up';
    await route.deadLetters.resubmit();
    await sim.clock.advance(10);
    expect(t.texts()).toEqual(['b1', 'b2', 'a1', 'a2']);
    await sim.ws.close();
  });

  it('key: deleting the blocking dead letter releases the rest of its key', async () => {
    const sim = await openSim({ ...base, routes: { r: { streams: ['s'], target: 't', ordering: 'key' } } });
    const t = sim.targets.t!;
    t.behaviour = (d) =>
      d.payload?.toString() === 'a1' ? { kind: 'error', reason: 'rejected' } : { kind: 'ack' };
    await sim.ws.publish('s', Buffer.from('a1'), { key: 'A' });
    await sim.clock.advance(0);
    await sim.ws.publish('s', Buffer.from('a2'), { key: 'A' });
    await sim.clock.advance(0);
    expect(t.texts()).toEqual([]);
    await sim.ws.route('r').deadLetters.delete();
    await sim.clock.advance(10);
    expect(t.texts()).toEqual(['a2']);
    await sim.ws.close();
  });

  it('batches up to batch.maxMessages and waits batch.maxWait to fill one', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', batch: { maxMessages: 4, maxWait: '100ms' } } },
    });
    const t = sim.targets.t!;
    await sim.publish('s', 'a', 'b');
    expect(t.batches).toBe(0);
    await sim.clock.advance(100);
    expect(t.batches).toBe(1);
    await sim.publish('s', ...texts(9));
    await sim.clock.advance(100);
    expect(t.batches).toBe(4); // 4 + 4 sent at once, the last one after maxWait
    expect(t.texts()).toEqual(['a', 'b', ...texts(9)]);
    await sim.ws.close();
  });

  it('keeps at most maxInFlight batches at the target', async () => {
    const sim = await openSim({
      ...base,
      shutdownTimeout: 0,
      routes: { r: { streams: ['s'], target: 't', maxInFlight: 2, timeout: '1h' } },
    });
    const t = sim.targets.t!;
    t.behaviour = 'hang';
    await sim.publish('s', ...texts(5));
    expect(t.attempts.map((d) => d.seq)).toEqual([1, 2]);
    expect((await sim.ws.route('r').snapshot()).inFlight).toBe(2);
    await sim.ws.close();
  });

  it('fans out: one stored copy, every route delivers it, history goes once both are past', async () => {
    const sim = await openSim({
      targets: { a: { type: 'null' }, b: { type: 'null' } },
      routes: {
        ra: { streams: ['s'], target: 'a' },
        rb: { streams: ['s'], target: 'b', probeInterval: '1s' },
      },
      storage: { segmentBytes: 4096 },
    });
    sim.targets.b!.behaviour = 'down';
    await sim.publish('s', ...texts(100).map((x) => x.padEnd(200, '.')));
    expect(sim.targets.a!.delivered).toHaveLength(100);
    await sim.clock.advance(1500);
    const held = sim.ws.streams()[0]!;
    expect(held.firstSeq).toBe(1);
    sim.targets.b!.behaviour = 'up';
    await sim.clock.advance(3000);
    expect(sim.targets.b!.delivered).toHaveLength(100);
    await sim.clock.advance(1500);
    const after = sim.ws.streams()[0]!;
    expect(after.firstSeq).toBeGreaterThan(50);
    expect(after.bytes).toBeLessThan(held.bytes);
    await sim.ws.close();
  });
});
