/**
 * A read of the stream that fails (a cluster store while JetStream elects a stream leader, a
 * disk error) must not stall a route until the next publish: the runner tries again by itself.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import { DeliveryEngine } from '../../src/delivery/engine.js';
import type { MessageStore, MessageStream } from '../../src/store/backend.js';
import { Store } from '../../src/store/store.js';
import { MemFileSystem } from '../support/mem-fs.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { until } from '../support/wait.js';

describe('a failing read', () => {
  it('is retried by the runner without a new publish', async () => {
    const resolved = parseConfig({
      targets: { t: { type: 'null' } },
      routes: { r: { streams: ['s'], target: 't' } },
    });
    const store = await Store.open({
      dataDir: '/d',
      streams: resolved.streams,
      routes: resolved.routes,
      fileSystem: new MemFileSystem(),
    });
    let failuresLeft = 3;
    const flaky = (stream: MessageStream): MessageStream =>
      new Proxy(stream, {
        get(target, prop, receiver) {
          if (prop === 'read')
            return (...args: Parameters<MessageStream['read']>) => {
              if (failuresLeft > 0) {
                failuresLeft--;
                return Promise.reject(new Error('no stream leader right now'));
              }
              return target.read(...args);
            };
          const value = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    const flakyStore = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'stream') return (name: string) => flaky(target.stream(name));
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as MessageStore;
    const target = new ScriptedTarget();
    const errors: string[] = [];
    const engine = new DeliveryEngine({
      store: flakyStore,
      routes: resolved.routes,
      targets: new Map([['t', target]]),
      events: { error: (err) => errors.push((err as Error).message) },
    });
    await engine.start();
    await store.publish('s', [{ payload: Buffer.from('a') }, { payload: Buffer.from('b') }]);
    engine.published('s');
    // No further publish or notify: the retries alone must get the messages out.
    await until(() => target.delivered.length === 2, 10_000, 'both delivered after the reads failed');
    expect(failuresLeft).toBe(0);
    expect(errors.length).toBeGreaterThan(0);
    await engine.stop(1000);
    await store.close();
  });
});
