/**
 * The engine under a route ownership (cluster mode's leases, faked here): a route runs only while
 * this node owns it; every send checks the lease, so a lapsed lease stops sending even before
 * the engine is told; a lost route's runner is abandoned at once (what is at the target is
 * aborted, nothing saved); a route taken (again) resumes from what the store holds.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import { DeliveryEngine, type RouteOwnership } from '../../src/delivery/engine.js';
import { Store } from '../../src/store/store.js';
import { MemFileSystem } from '../support/mem-fs.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { until } from '../support/wait.js';

class FakeOwnership implements RouteOwnership {
  may = false;
  assign: ((route: string, owned: boolean) => Promise<void>) | undefined;
  stopped = false;
  async start(assign: (route: string, owned: boolean) => Promise<void>): Promise<void> {
    this.assign = assign;
  }
  maySend(): boolean {
    return this.may;
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
}

async function setup() {
  const resolved = parseConfig({
    targets: { t: { type: 'null' } },
    routes: { r: { streams: ['s'], target: 't', ordering: 'fifo' } },
  });
  const fs = new MemFileSystem();
  const store = await Store.open({
    dataDir: '/d',
    streams: resolved.streams,
    routes: resolved.routes,
    fileSystem: fs,
  });
  const target = new ScriptedTarget();
  const ownership = new FakeOwnership();
  const engine = new DeliveryEngine({
    store,
    routes: resolved.routes,
    targets: new Map([['t', target]]),
    ownership,
    progressSaveDelayMs: 1,
  });
  await engine.start();
  const publish = async (n: number) => {
    for (let i = 0; i < n; i++) await store.publish('s', [{ payload: Buffer.from(`m${i}`) }]);
    engine.published('s');
  };
  const settle = () => new Promise((r) => setTimeout(r, 100));
  return { store, target, ownership, engine, publish, settle };
}

describe('the delivery engine under a route ownership', () => {
  it('sends only while it owns the route, checking the lease before every send', async () => {
    const { store, target, ownership, engine, publish, settle } = await setup();
    await publish(3);
    await settle();
    expect(target.attempts).toHaveLength(0);
    expect(engine.owns('r')).toBe(false);

    ownership.may = true;
    await ownership.assign!('r', true);
    await until(() => target.delivered.length === 3, 5_000, 'three delivered');
    expect(engine.owns('r')).toBe(true);

    // The lease lapsed; the engine has not been told yet: nothing more goes out.
    ownership.may = false;
    await publish(2);
    await settle();
    expect(target.attempts).toHaveLength(3);

    // Told: the runner is rebuilt as a standby; taken again: it resumes with the two pending.
    await ownership.assign!('r', false);
    expect(engine.owns('r')).toBe(false);
    ownership.may = true;
    await ownership.assign!('r', true);
    await until(() => target.delivered.length === 5, 5_000, 'all five delivered');
    expect(target.delivered.map((d) => d.seq)).toEqual([1, 2, 3, 4, 5]);

    await engine.stop(1000);
    expect(ownership.stopped).toBe(true);
    await store.close();
  });

  it('abandons a lost route at once: what is at the target is aborted and nothing is saved', async () => {
    const { store, target, ownership, engine, publish } = await setup();
    ownership.may = true;
    await ownership.assign!('r', true);
    target.behaviour = 'hang';
    await publish(1);
    await until(() => target.unsettled === 1, 5_000, 'an attempt at the target');
    const savedBefore = JSON.stringify(store.routeProgress('r').counters);

    ownership.may = false;
    await ownership.assign!('r', false);
    // The hanging attempt was aborted (the scripted target rejects on abort).
    expect(target.unsettled).toBe(0);
    expect(engine.owns('r')).toBe(false);
    expect(JSON.stringify(store.routeProgress('r').counters)).toBe(savedBefore);

    // Taken again: the message is still pending and goes out again.
    target.behaviour = 'up';
    ownership.may = true;
    await ownership.assign!('r', true);
    await until(() => target.delivered.length === 1, 5_000, 'the message delivered after the takeover');
    await engine.stop(1000);
    await store.close();
  });
});
