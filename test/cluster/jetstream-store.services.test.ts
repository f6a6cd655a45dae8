/**
 * What the JetStream store does beyond the storage contract, on a real 3-server cluster: several
 * nodes numbering one stream, history purged on JetStream, payload limits, NATS unreachable,
 * fenced progress writes, and a stream leader SIGKILLed mid-publish.
 * Runs under `npm run test:services`.
 */
import { randomBytes } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { connect, errors as natsErrors } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamStore, type JetStreamStoreOptions } from '../../src/cluster/jetstream-store.js';
import type { PublishedRef } from '../../src/store/stream.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { tempDir } from '../support/tmp.js';

const services = process.env.WAYSTATION_SERVICES === '1';
const bytes = (text: string) => new TextEncoder().encode(text);
const layout = {
  streams: ['orders'],
  routes: [
    { name: 'crm', streams: ['orders'] },
    { name: 'erp', streams: ['orders'] },
  ],
};

describe.skipIf(!services)('the JetStream store on a cluster (run with npm run test:services)', () => {
  let cluster: NatsCluster;
  const open: JetStreamStore[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    cluster = await NatsCluster.start();
  });
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map((s) => s.close()));
    for (const c of cleanups.splice(0)) await c().catch(() => {});
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const place = () => `n${randomBytes(4).toString('hex')}`;
  const node = async (prefix: string, more: Partial<JetStreamStoreOptions> = {}) => {
    const store = await JetStreamStore.open({
      servers: cluster.urls,
      prefix,
      replicas: 3,
      dataDir: await tempDir('ws-js-'),
      ...layout,
      ...more,
    });
    open.push(store);
    return store;
  };

  it('numbers one stream densely when two nodes publish to it at once', async () => {
    const prefix = place();
    const [a, b] = [await node(prefix, { nodeId: 'a' }), await node(prefix, { nodeId: 'b' })];
    const refs: PublishedRef[] = [];
    const sent = new Map<string, string>();
    const worker = async (store: JetStreamStore, name: string) => {
      for (let i = 0; i < 40; i++) {
        const batch = Array.from({ length: 1 + (i % 3) }, (_, j) => ({
          payload: bytes(`${name}-${i}-${j}`),
        }));
        const got = await store.publish('orders', batch);
        for (const [j, r] of got.entries()) sent.set(r.id, `${name}-${i}-${j}`);
        refs.push(...got);
      }
    };
    await Promise.all([worker(a, 'a'), worker(a, 'a2'), worker(b, 'b'), worker(b, 'b2')]);
    const seqs = refs.map((r) => r.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: refs.length }, (_, i) => i + 1));
    for (const store of [a, b]) {
      await store.stream('orders').refresh();
      expect(store.stream('orders').lastSeq).toBe(refs.length);
      const read = await store.stream('orders').read({ fromSeq: 1, maxMessages: 10_000 });
      expect(read.map((m) => m.seq)).toEqual(seqs);
      for (const m of read) expect(m.payload?.toString()).toBe(sent.get(m.id));
    }
    // Backward reads cross batches too.
    const back = await b
      .stream('orders')
      .read({ fromSeq: refs.length, direction: 'backward', maxMessages: 7 });
    expect(back.map((m) => m.seq)).toEqual(Array.from({ length: 7 }, (_, i) => refs.length - i));
  });

  it('answers an idempotent retry sent to another node with the first ids', async () => {
    const prefix = place();
    const [a, b] = [await node(prefix), await node(prefix)];
    const req = [{ payload: bytes('x') }, { payload: bytes('y') }];
    const first = await a.publish('orders', req, { idempotencyKey: 'order-7' });
    expect(await b.publish('orders', req, { idempotencyKey: 'order-7' })).toEqual(first);
    await expect(
      b.publish('orders', [{ payload: bytes('z') }], { idempotencyKey: 'order-7' }),
    ).rejects.toMatchObject({
      code: 'WS_ERR_IDEMPOTENCY_KEY_REUSED',
    });
    await b.stream('orders').refresh();
    expect(b.stream('orders').lastSeq).toBe(2);
  });

  it('purges JetStream below every route, keeps the last batch, and numbers on after a restart', async () => {
    const prefix = place();
    let store = await node(prefix);
    for (let i = 0; i < 10; i++) await store.publish('orders', [{ payload: bytes(`${i}`) }]);
    store.routeProgress('crm').stream('orders').markRange(1, 10, 'delivered');
    store.routeProgress('erp').stream('orders').markRange(1, 6, 'delivered');
    await store.collectGarbage();
    const info = () => store.jetstreamManager.streams.info(`${prefix}_s_orders`);
    expect((await info()).state).toMatchObject({ first_seq: 7, messages: 4 });
    expect(store.stream('orders').firstSeq).toBe(7);
    store.routeProgress('erp').stream('orders').markRange(7, 10, 'delivered');
    await store.collectGarbage();
    expect((await info()).state).toMatchObject({ first_seq: 10, messages: 1 });
    await store.close();
    store = await node(prefix);
    expect([store.stream('orders').firstSeq, store.stream('orders').lastSeq]).toEqual([10, 10]);
    expect((await store.publish('orders', [{ payload: bytes('next') }]))[0]!.seq).toBe(11);
  });

  it('refuses a publish above max_payload with 413 and stores nothing', async () => {
    const store = await node(place());
    const big = new Uint8Array(2 * 1024 * 1024);
    await expect(store.publish('orders', [{ payload: big }])).rejects.toMatchObject({
      code: 'WS_ERR_CLUSTER_PAYLOAD_TOO_LARGE',
      httpStatus: 413,
    });
    async function* streamed() {
      for (let i = 0; i < 40; i++) yield new Uint8Array(64 * 1024);
    }
    await expect(store.publish('orders', [{ payload: streamed() }])).rejects.toMatchObject({
      code: 'WS_ERR_CLUSTER_PAYLOAD_TOO_LARGE',
    });
    expect(store.stream('orders').lastSeq).toBe(0);
  });

  it('fails publishes with 503 while NATS is unreachable, never as stored, and accepts again once it is back', async () => {
    const server = cluster.nodes[0]!;
    const proxy = await new TcpProxy('127.0.0.1', server.clientPort).start();
    cleanups.push(() => proxy.stop());
    const nc = await connect({
      servers: [`nats://127.0.0.1:${proxy.port}`],
      ignoreClusterUpdates: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    cleanups.push(() => nc.close());
    const store = await node(place(), { nc, publishTimeoutMs: 1_500, ackTimeoutMs: 500 });
    await store.publish('orders', [{ payload: bytes('before') }]);
    proxy.cut();
    const started = Date.now();
    await expect(store.publish('orders', [{ payload: bytes('during') }])).rejects.toMatchObject({
      code: 'WS_ERR_CLUSTER_UNAVAILABLE',
      httpStatus: 503,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    proxy.restore();
    const after = await store.publish('orders', [{ payload: bytes('after') }], { idempotencyKey: 'a' });
    // Whatever the cut left behind, numbering stays dense.
    expect(after[0]!.seq).toBeGreaterThanOrEqual(2);
    const read = await store.stream('orders').read({ fromSeq: 1 });
    expect(read.map((m) => m.seq)).toEqual(Array.from({ length: read.length }, (_, i) => i + 1));
    expect(read.at(-1)!.payload?.toString()).toBe('after');
  });

  /** A JetStream client whose first publish commits but whose PubAck is lost (after `meanwhile`). */
  const losingFirstAck = (meanwhile: () => Promise<unknown> = async () => {}) => {
    let calls = 0;
    return (js: JetStreamClient): JetStreamClient =>
      new Proxy(js, {
        get(target, prop, receiver) {
          if (prop !== 'publish') return Reflect.get(target, prop, receiver);
          return async (...args: Parameters<JetStreamClient['publish']>) => {
            const ack = await target.publish(...args);
            if (calls++ > 0) return ack;
            await meanwhile();
            throw new natsErrors.TimeoutError();
          };
        },
      });
  };

  it('answers a publish whose PubAck was lost with the committed ids, stored once', async () => {
    const prefix = place();
    const store = await node(prefix, { wrapJetStream: losingFirstAck() });
    const refs = await store.publish('orders', [{ payload: bytes('a') }, { payload: bytes('b') }]);
    expect(refs.map((r) => r.seq)).toEqual([1, 2]);
    const info = await store.jetstreamManager.streams.info(`${prefix}_s_orders`);
    expect(info.state.messages).toBe(1);
    expect((await store.publish('orders', [{ payload: bytes('c') }]))[0]!.seq).toBe(3);
  });

  it('answers a lost PubAck correctly when another node published before the retry', async () => {
    const prefix = place();
    const other = await node(prefix);
    let theirs: PublishedRef[] = [];
    const store = await node(prefix, {
      wrapJetStream: losingFirstAck(async () => {
        theirs = await other.publish('orders', [{ payload: bytes('theirs') }]);
      }),
    });
    const ours = await store.publish('orders', [{ payload: bytes('ours') }], { idempotencyKey: 'k1' });
    expect([ours[0]!.seq, theirs[0]!.seq]).toEqual([1, 2]);
    // This node learns of the other's publish at the next refresh (docs/cluster.md).
    await store.stream('orders').refresh();
    const read = await store.stream('orders').read({ fromSeq: 1 });
    expect(read.map((m) => m.payload?.toString())).toEqual(['ours', 'theirs']);
    expect(store.stream('orders').lastSeq).toBe(2);
  });

  it('refuses a progress write based on a revision another node overtook', async () => {
    const prefix = place();
    const [a, b] = [await node(prefix, { nodeId: 'a' }), await node(prefix, { nodeId: 'b' })];
    await a.publish('orders', [{ payload: bytes('1') }]);
    a.routeProgress('crm').stream('orders').mark(1, 'delivered');
    await a.routeProgress('crm').save(new Map());
    await a.routeProgress('crm').save(new Map()); // its own revision moves on
    b.routeProgress('crm').counters.forwarded = 5;
    await expect(b.routeProgress('crm').save(new Map())).rejects.toMatchObject({
      code: 'WS_ERR_CLUSTER_WRITE_CONFLICT',
    });
    const c = await node(prefix, { nodeId: 'c' });
    expect(c.routeProgress('crm').stream('orders').stateOf(1)).toBe('delivered');
    expect(c.routeProgress('crm').counters.forwarded).toBe(0);
  });

  it('loses no acknowledged publish when the stream leader is SIGKILLed mid-publish', async () => {
    const prefix = place();
    const store = await node(prefix, { publishTimeoutMs: 20_000 });
    const jsName = `${prefix}_s_orders`;
    const leader = (await store.jetstreamManager.streams.info(jsName)).cluster?.leader;
    expect(leader).toBeDefined();
    const acked = new Map<number, string>();
    let failures = 0;
    let killed: Promise<void> | undefined;
    const worker = async (w: number) => {
      for (let i = 0; i < 60; i++) {
        const text = `${w}-${i}`;
        for (;;) {
          try {
            const [ref] = await store.publish('orders', [{ payload: bytes(text) }], { idempotencyKey: text });
            acked.set(ref!.seq, text);
            break;
          } catch (err) {
            failures++;
            expect((err as { code?: string }).code).toBe('WS_ERR_CLUSTER_UNAVAILABLE');
          }
        }
        if (acked.size >= 40 && !killed) killed = cluster.kill(cluster.indexOf(leader!));
      }
    };
    await Promise.all([0, 1, 2, 3].map(worker));
    await killed;
    expect(acked.size).toBe(240);
    const read = await store.stream('orders').read({ fromSeq: 1, maxMessages: 1000 });
    expect(read.map((m) => m.seq)).toEqual(Array.from({ length: 240 }, (_, i) => i + 1));
    for (const m of read) expect(m.payload?.toString()).toBe(acked.get(m.seq));
    await cluster.restart(cluster.indexOf(leader!));
    console.info(
      `leader ${leader} killed mid-publish: 240 acknowledged, ${failures} publishes failed with 503 and were retried`,
    );
  });
});
