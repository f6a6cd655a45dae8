/**
 * Cluster mode under a partition (issue 10, "Faults"): the node that delivers a route is cut off
 * from NATS (TCP proxies between it and each nats-server). It must stop delivering before the
 * other node can take the route (no two deliverers at once), its publishes must fail with 503
 * and never be acknowledged, the other node must carry on, and once the cut heals the cut node
 * accepts publishes again and nothing acknowledged is lost. (A cut-off node cannot read the
 * stream either, so this holds for two reasons here; the lease check before every send is pinned
 * on its own by test/delivery/ownership.test.ts.) Runs under `npm run test:services`.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { placementKey, preferredOrder } from '../../src/cluster/route-placement.js';
import type { Delivery, Outcome, Target } from '../../src/delivery/target.js';
import { Waystation } from '../../src/waystation.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

const services = process.env.WAYSTATION_SERVICES === '1';
const LEASE_TTL_MS = 2_000;

/** Records when each delivery started and on which node; acks after `delayMs`. */
class TimedTarget implements Target {
  readonly type = 'timed';
  constructor(
    private readonly node: string,
    private readonly log: { node: string; id: string; startedAt: number }[],
    private readonly delayMs: number,
  ) {}
  async deliver(batch: readonly Delivery[], signal: AbortSignal): Promise<readonly Outcome[]> {
    const startedAt = performance.now();
    for (const d of batch) this.log.push({ node: this.node, id: d.id, startedAt });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, this.delayMs);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        reject(new Error('aborted'));
      });
    });
    return batch.map(() => ({ kind: 'ack' }));
  }
}

describe.skipIf(!services)('cluster mode under a partition (run with npm run test:services)', () => {
  let nats: NatsCluster;
  const open: Waystation[] = [];
  const proxies: TcpProxy[] = [];

  beforeAll(async () => {
    nats = await NatsCluster.start();
  });
  afterEach(async () => {
    for (const p of proxies) p.restore();
    await Promise.allSettled(open.splice(0).map((w) => w.close()));
    await Promise.allSettled(proxies.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    await nats?.stop();
  });

  it('a node cut off from NATS stops delivering before the other takes over, and refuses publishes with 503', async () => {
    const prefix = `t${randomBytes(4).toString('hex')}`;
    const log: { node: string; id: string; startedAt: number }[] = [];
    // Name the nodes so that the cut one is the route's preferred owner.
    const [cutId, otherId] = preferredOrder(placementKey('r'), ['node-x', 'node-y']) as [string, string];
    for (const n of nats.nodes) proxies.push(await new TcpProxy('127.0.0.1', n.clientPort).start());

    const config = (nodeId: string, servers: string[], discoverServers: boolean) => ({
      dataDir: './data',
      cluster: {
        nodeId,
        prefix,
        leaseTtl: LEASE_TTL_MS,
        publishTimeout: '2s',
        nats: { servers, discoverServers },
      },
      targets: { sink: { type: 'http' as const, url: 'http://127.0.0.1:1/unused' } },
      routes: { r: { streams: ['orders'], target: 'sink', ordering: 'fifo' as const } },
    });
    const logger = pino({ level: 'silent' });
    const cut = await Waystation.open(
      config(
        cutId,
        proxies.map((p) => `nats://127.0.0.1:${p.port}`),
        false,
      ),
      { baseDir: await tempDir('ws-part-'), logger, targets: { sink: new TimedTarget(cutId, log, 10) } },
    );
    open.push(cut);
    const other = await Waystation.open(config(otherId, nats.urls, true), {
      baseDir: await tempDir('ws-part-'),
      logger,
      targets: { sink: new TimedTarget(otherId, log, 10) },
    });
    open.push(other);
    const ownerOf = async (ws: Waystation) => (await ws.clusterView())!.owners.r;
    await until(async () => (await ownerOf(other)) === cutId, 15_000, `route r owned by ${cutId}`);

    const acked: string[] = [];
    for (let i = 0; i < 400; i++) acked.push((await other.publish('orders', `m-${i}`)).id);
    await until(() => log.length >= 30, 10_000, 'the drain under way on the cut node');

    const cutAt = performance.now();
    for (const p of proxies) p.cut();
    // While cut off: its publishes fail with 503 and are never acknowledged.
    await expect(cut.publish('orders', 'during-cut')).rejects.toMatchObject({
      code: 'WS_ERR_CLUSTER_UNAVAILABLE',
      httpStatus: 503,
    });
    await until(() => log.some((d) => d.node === otherId), 15_000, `${otherId} taking over route r`);
    const lastOfCut = Math.max(...log.filter((d) => d.node === cutId).map((d) => d.startedAt));
    const firstOfOther = Math.min(...log.filter((d) => d.node === otherId).map((d) => d.startedAt));
    // No overlap: the cut node's last send started before the other node's first.
    expect(lastOfCut).toBeLessThan(firstOfOther);
    // And it stopped within the lease's validity (TTL minus the safety margin) of the cut.
    expect(lastOfCut - cutAt).toBeLessThan(LEASE_TTL_MS);
    // The takeover took about a lease TTL, not much more.
    expect(firstOfOther - cutAt).toBeLessThan(LEASE_TTL_MS * 3);

    for (const p of proxies) p.restore();
    await until(
      async () => {
        try {
          acked.push((await cut.publish('orders', 'after-heal')).id);
          return true;
        } catch {
          return false;
        }
      },
      20_000,
      'the healed node accepting publishes again',
    );
    await until(
      () => new Set(log.map((d) => d.id)).size >= acked.length,
      30_000,
      `all ${acked.length} acknowledged messages delivered`,
    );
    expect(new Set(log.map((d) => d.id))).toEqual(new Set(acked));
  }, 120_000);
});
