/**
 * The JetStream store's parts that cluster mode adds on top of the storage contract: progress
 * writes fenced by the route lease's revision, reloading a route's saved state, and group commit
 * (concurrent publishes without an Idempotency-Key sharing a JetStream message).
 * Runs under `npm run test:services`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamStore } from '../../src/cluster/jetstream-store.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { tempDir } from '../support/tmp.js';

const services = process.env.WAYSTATION_SERVICES === '1';
const bytes = (text: string) => new TextEncoder().encode(text);
const layout = { streams: ['orders'], routes: [{ name: 'crm', streams: ['orders'] }] };

describe.skipIf(!services)(
  'cluster additions to the JetStream store (run with npm run test:services)',
  () => {
    let cluster: NatsCluster;
    const open: JetStreamStore[] = [];

    beforeAll(async () => {
      cluster = await NatsCluster.start();
    });
    afterEach(async () => {
      await Promise.allSettled(open.splice(0).map((s) => s.close()));
    });
    afterAll(async () => {
      await cluster?.stop();
    });

    const node = async (prefix: string, nodeId: string) => {
      const store = await JetStreamStore.open({
        servers: cluster.urls,
        prefix,
        nodeId,
        replicas: 3,
        dataDir: await tempDir('ws-fence-'),
        ...layout,
      });
      open.push(store);
      return store;
    };

    it('fences progress writes with the lease: no lease, no write; a newer lease overwrites a late older one', async () => {
      const prefix = `f${randomBytes(4).toString('hex')}`;
      const [a, b] = [await node(prefix, 'a'), await node(prefix, 'b')];
      await a.publish('orders', [{ payload: bytes('1') }, { payload: bytes('2') }]);
      let aToken: number | undefined = 10;
      a.fenceProgress('crm', () => aToken);
      // a owns the route (lease revision 10) and saves.
      a.routeProgress('crm').stream('orders').mark(1, 'delivered');
      await a.routeProgress('crm').save(new Map());

      // b takes the route over with a newer lease (revision 20) and reads what a saved.
      b.fenceProgress('crm', () => 20);
      await b.reloadRoute('crm');
      expect(b.routeProgress('crm').stream('orders').stateOf(1)).toBe('delivered');

      // a's last save lands late (its lease is still "valid" by its token here): stored...
      a.routeProgress('crm').counters.forwarded = 1;
      await a.routeProgress('crm').save(new Map());
      // ...and b's save overwrites it (older lease under it), instead of failing forever.
      b.routeProgress('crm').stream('orders').mark(2, 'delivered');
      await b.routeProgress('crm').save(new Map());
      // a, fenced by an older lease, is refused from now on: the entry carries b's newer lease.
      a.routeProgress('crm').counters.forwarded = 99;
      await expect(a.routeProgress('crm').save(new Map())).rejects.toMatchObject({
        code: 'WS_ERR_CLUSTER_WRITE_CONFLICT',
      });
      // Without the lease a does not even try.
      aToken = undefined;
      await expect(a.routeProgress('crm').save(new Map())).rejects.toMatchObject({
        code: 'WS_ERR_CLUSTER_WRITE_CONFLICT',
      });

      const c = await node(prefix, 'c');
      expect(c.routeProgress('crm').stream('orders').stateOf(2)).toBe('delivered');
      expect(c.routeProgress('crm').counters.forwarded).not.toBe(99);
      // Reloading only when something changed.
      expect(await c.reloadRoute('crm', { ifChanged: true })).toBe(false);
      b.routeProgress('crm').counters.expired = 3;
      await b.routeProgress('crm').save(new Map());
      expect(await c.reloadRoute('crm', { ifChanged: true })).toBe(true);
      expect(c.routeProgress('crm').counters.expired).toBe(3);
    });

    it('commits concurrent publishes without a key together, each with its own dense ids', async () => {
      const prefix = `g${randomBytes(4).toString('hex')}`;
      const store = await node(prefix, 'a');
      const publishes = Array.from({ length: 60 }, (_, i) =>
        store.publish('orders', [{ payload: bytes(`${i}-a`) }, { payload: bytes(`${i}-b`) }]),
      );
      const keyed = store.publish('orders', [{ payload: bytes('keyed') }], { idempotencyKey: 'k' });
      const refs = await Promise.all(publishes);
      const keyedRef = await keyed;
      // Each publish got two consecutive seqs; all seqs dense.
      for (const [a, b] of refs) expect(b!.seq).toBe(a!.seq + 1);
      const all = [...refs.flat(), ...keyedRef].map((r) => r.seq).sort((x, y) => x - y);
      expect(all).toEqual(Array.from({ length: 121 }, (_, i) => i + 1));
      // Far fewer JetStream messages than publishes: they shared round trips.
      const info = await store.jetstreamManager.streams.info(`${prefix}_s_orders`);
      expect(info.state.messages).toBeLessThan(30);
      // And each reads back as it was sent.
      const read = await store.stream('orders').read({ fromSeq: 1, maxMessages: 1000 });
      const bySeq = new Map(read.map((m) => [m.seq, m.payload?.toString()]));
      refs.forEach(([a, b], i) => {
        expect(bySeq.get(a!.seq)).toBe(`${i}-a`);
        expect(bySeq.get(b!.seq)).toBe(`${i}-b`);
      });
      expect(bySeq.get(keyedRef[0]!.seq)).toBe('keyed');
    });
  },
);
