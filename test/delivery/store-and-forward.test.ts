/** Deterministic simulations (fake clock, in-memory disk, scripted targets) of SPEC §2. */
import { describe, expect, it } from 'vitest';
import { openSim, texts } from '../support/sim.js';

const base = { targets: { t: { type: 'null' as const } } };

describe('store and forward', () => {
  it('probes the oldest stored message with exponential backoff, then drains in order', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', probeInterval: '1s', probeIntervalMax: '4s' } },
    });
    const t = sim.targets.t!;
    t.behaviour = 'down';
    await sim.publish('s', ...texts(3));
    expect(await sim.state('r')).toBe('storing');
    expect(t.attempts.map((d) => d.seq)).toEqual([1]);
    // Probes at +1s, +2s, +4s, +4s (capped): always the oldest.
    await sim.clock.advance(999);
    expect(t.attempts).toHaveLength(1);
    await sim.clock.advance(1);
    expect(t.attempts).toHaveLength(2);
    await sim.clock.advance(2000);
    expect(t.attempts).toHaveLength(3);
    await sim.clock.advance(4000);
    await sim.clock.advance(4000);
    expect(t.attempts.map((d) => d.seq)).toEqual([1, 1, 1, 1, 1]);
    t.behaviour = 'up';
    await sim.publish('s', 'm4');
    await sim.clock.advance(4000);
    expect(t.texts()).toEqual(['m1', 'm2', 'm3', 'm4']);
    const snap = await sim.ws.route('r').snapshot();
    expect(snap).toMatchObject({ state: 'forwarding', forwarded: 4, inQueue: 0, failures: 5 });
    // m1 went out six times: five failed probes, then the one that succeeded.
    expect(snap.redelivered).toBe(5);
    await sim.ws.close();
  });

  it('probes the newest message with lifo and drains newest first', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', ordering: 'lifo', probeInterval: '1s' } },
    });
    const t = sim.targets.t!;
    t.behaviour = 'down';
    await sim.publish('s', ...texts(4));
    await sim.clock.advance(1000);
    expect(t.attempts.map((d) => d.seq)).toEqual([1, 4]);
    t.behaviour = 'up';
    await sim.clock.advance(2000);
    expect(t.texts()).toEqual(['m4', 'm3', 'm2', 'm1']);
    await sim.ws.close();
  });

  it("waits at least the target's Retry-After before probing", async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', probeInterval: '1s', probeIntervalMax: '1m' } },
    });
    const t = sim.targets.t!;
    t.behaviour = () => ({ kind: 'nack', reason: '429', retryAfterMs: 30_000 });
    await sim.publish('s', 'a');
    await sim.clock.advance(29_000);
    expect(t.attempts).toHaveLength(1);
    t.behaviour = 'up';
    await sim.clock.advance(1000);
    expect(t.texts()).toEqual(['a']);
    await sim.ws.close();
  });

  it('keeps order and state with a slow target that answers within the timeout', async () => {
    const sim = await openSim({ ...base, routes: { r: { streams: ['s'], target: 't', timeout: '10s' } } });
    const t = sim.targets.t!;
    const answers: (() => void)[] = [];
    const slow = t.deliver.bind(t);
    t.deliver = async (batch, signal) => {
      await new Promise<void>((resolve) => answers.push(resolve));
      return slow(batch, signal);
    };
    await sim.publish('s', 'a', 'b', 'c');
    expect((await sim.ws.route('r').snapshot()).inFlight).toBe(1);
    for (let i = 0; i < 3; i++) {
      await sim.clock.advance(5000);
      answers.shift()?.();
    }
    await sim.clock.advance(10);
    expect(t.texts()).toEqual(['a', 'b', 'c']);
    expect(await sim.state('r')).toBe('forwarding');
    await sim.ws.close();
  });

  it('stores only after storeAfter.failures consecutive nacks', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', storeAfter: { failures: 3 }, probeInterval: '1s' } },
    });
    const t = sim.targets.t!;
    let calls = 0;
    t.behaviour = () => (++calls <= 2 ? { kind: 'nack', reason: 'blip' } : { kind: 'ack' });
    await sim.publish('s', 'a');
    await sim.clock.advance(10);
    expect(await sim.state('r')).toBe('forwarding');
    expect(t.texts()).toEqual(['a']);
    t.behaviour = 'down';
    await sim.publish('s', 'b');
    await sim.clock.advance(10);
    expect(await sim.state('r')).toBe('storing');
    expect(t.attempts.filter((d) => d.seq === 2)).toHaveLength(3);
    await sim.ws.close();
  });

  it('replays the backlog at replay.ratePerSecond while draining', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', probeInterval: '1s', replay: { ratePerSecond: 10 } } },
    });
    const t = sim.targets.t!;
    t.behaviour = 'down';
    await sim.publish('s', ...texts(31));
    t.behaviour = 'up';
    await sim.clock.advance(1000); // probe delivers m1, draining begins
    expect(await sim.state('r')).toBe('draining');
    await sim.clock.advance(1000);
    const afterOneSecond = t.delivered.length;
    expect(afterOneSecond).toBeGreaterThanOrEqual(10);
    expect(afterOneSecond).toBeLessThanOrEqual(12);
    await sim.clock.advance(2100);
    expect(t.delivered).toHaveLength(31);
    expect(await sim.state('r')).toBe('forwarding');
    expect(t.texts()).toEqual(texts(31));
    await sim.ws.close();
  });

  it('goes back to storing when the target fails during the drain', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', probeInterval: '1s', replay: { ratePerSecond: 2 } } },
    });
    const t = sim.targets.t!;
    t.behaviour = 'down';
    await sim.publish('s', ...texts(10));
    t.behaviour = 'up';
    await sim.clock.advance(1000);
    await sim.clock.advance(1000);
    expect(await sim.state('r')).toBe('draining');
    t.behaviour = 'down';
    await sim.clock.advance(1000);
    expect(await sim.state('r')).toBe('storing');
    t.behaviour = 'up';
    await sim.clock.advance(10_000);
    expect(t.texts()).toEqual(texts(10));
    await sim.ws.close();
  });

  it('retries and then dead-letters with store-and-forward off, never storing', async () => {
    const sim = await openSim({
      ...base,
      routes: {
        r: { streams: ['s'], target: 't', storeAndForward: false, retry: { attempts: 3, backoff: '1s' } },
      },
    });
    const t = sim.targets.t!;
    t.behaviour = (d) => (d.seq === 1 ? { kind: 'nack', reason: 'busy' } : { kind: 'ack' });
    await sim.publish('s', 'a', 'b');
    expect(await sim.state('r')).toBe('forwarding');
    // fifo is strict: b waits behind a's retries.
    expect(t.texts()).toEqual([]);
    await sim.clock.advance(1000);
    await sim.clock.advance(2000);
    expect(t.attempts.filter((d) => d.seq === 1).map((d) => d.attempt)).toEqual([1, 2, 3]);
    expect(t.texts()).toEqual(['b']);
    const dead = sim.ws.route('r').deadLetters.list();
    expect(dead).toMatchObject([{ seq: 1, reason: 'retries-exhausted', attempts: 3, lastError: 'busy' }]);
    expect(await sim.ws.route('r').snapshot()).toMatchObject({
      deadLettered: 1,
      forwarded: 1,
      failures: 3,
      state: 'forwarding',
    });
    await sim.ws.close();
  });

  it('dead-letters on a permanent error without storing, and resubmits on request', async () => {
    const sim = await openSim({ ...base, routes: { r: { streams: ['s'], target: 't' } } });
    const t = sim.targets.t!;
    t.behaviour = (d) =>
      d.payload?.toString() === 'bad' ? { kind: 'error', reason: '400 schema' } : { kind: 'ack' };
    const [, badId] = await sim.publish('s', 'ok1', 'bad', 'ok2');
    expect(t.texts()).toEqual(['ok1', 'ok2']);
    expect(await sim.state('r')).toBe('forwarding');
    const route = sim.ws.route('r');
    expect(route.deadLetters.list()).toMatchObject([
      { id: badId, reason: 'error', lastError: '400 schema', attempts: 1 },
    ]);
    expect((await sim.ws.messageStatus(badId!)).routes).toEqual({ r: 'dead' });
    t.behaviour = 'up';
    expect(await route.deadLetters.resubmit()).toBe(1);
    await sim.clock.advance(10);
    expect(t.texts()).toEqual(['ok1', 'ok2', 'bad']);
    expect(route.deadLetters.list()).toEqual([]);
    expect((await sim.ws.messageStatus(badId!)).routes).toEqual({ r: 'delivered' });
    await sim.ws.close();
  });

  it('treats a target that does not answer within the timeout as a nack', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', timeout: '2s', probeInterval: '1s' } },
    });
    const t = sim.targets.t!;
    t.behaviour = 'hang';
    await sim.publish('s', 'a');
    expect(await sim.state('r')).toBe('forwarding');
    await sim.clock.advance(2000);
    const snap = await sim.ws.route('r').snapshot();
    expect(snap.state).toBe('storing');
    expect(snap.lastError).toMatch(/no answer within 2000 ms/);
    t.behaviour = 'up';
    await sim.clock.advance(1000);
    expect(t.texts()).toEqual(['a']);
    await sim.ws.close();
  });

  it('keeps state across restarts: a storing route probes at once, a held route stays held', async () => {
    const sim = await openSim({
      ...base,
      routes: {
        a: { streams: ['s'], target: 't', probeInterval: '1m' },
        b: { streams: ['s2'], target: 't', probeInterval: '1m' },
      },
    });
    const t = sim.targets.t!;
    t.behaviour = 'down';
    await sim.publish('s', 'x');
    expect(await sim.state('a')).toBe('storing');
    sim.ws.route('b').store();
    await sim.publish('s2', 'y');
    expect(await sim.state('b')).toBe('held');
    t.behaviour = 'up';
    await sim.restart();
    expect(t.texts()).toEqual(['x']);
    expect(await sim.state('b')).toBe('held');
    sim.ws.route('b').forward();
    await sim.clock.advance(10);
    expect(t.texts()).toEqual(['x', 'y']);
    await sim.ws.close();
  });

  it('redelivers what was in flight at a restart and counts it', async () => {
    const sim = await openSim({
      ...base,
      shutdownTimeout: 0,
      routes: { r: { streams: ['s'], target: 't', timeout: '1h' } },
    });
    const t = sim.targets.t!;
    t.behaviour = 'hang';
    await sim.publish('s', 'a');
    await sim.clock.advance(200); // progress saved with 'a' in flight
    t.behaviour = 'up';
    await sim.restart();
    expect(t.texts()).toEqual(['a']);
    expect((await sim.ws.route('r').snapshot()).redelivered).toBe(1);
    await sim.ws.close();
  });
});
