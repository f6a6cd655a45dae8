/**
 * Route leases on a real 3-server JetStream cluster (R3 KV bucket): taken, renewed, released,
 * and taken over once the owner stops renewing, never with two owners at once.
 * Runs under `npm run test:services`.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamLeaseKv } from '../../src/cluster/jetstream-lease-kv.js';
import type { LeaseKv } from '../../src/cluster/lease.js';
import { LeaseKeeper } from '../../src/cluster/lease-keeper.js';
import { ConfigError } from '../../src/errors.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { until } from '../support/wait.js';

const services = process.env.WAYSTATION_SERVICES === '1';
const TTL = 2_000;

/** A LeaseKv that can be cut off from the cluster: every call then hangs (a partition). */
function cuttable(kv: LeaseKv) {
  let cut = false;
  const hang = () => new Promise<never>(() => {});
  const wrapped: LeaseKv = {
    create: (k, v) => (cut ? hang() : kv.create(k, v)),
    update: (k, v, r) => (cut ? hang() : kv.update(k, v, r)),
    get: (k) => (cut ? hang() : kv.get(k)),
    delete: (k, r) => (cut ? hang() : kv.delete(k, r)),
  };
  return { kv: wrapped, cut: () => (cut = true) };
}

describe.skipIf(!services)('route leases on a JetStream KV bucket (run with npm run test:services)', () => {
  let cluster: NatsCluster | undefined;
  let nc: NatsConnection | undefined;
  let kv: JetStreamLeaseKv;
  const keepers: LeaseKeeper[] = [];
  let route = 0;

  beforeAll(async () => {
    cluster = await NatsCluster.start();
    nc = await connect({ servers: cluster.urls, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    kv = await JetStreamLeaseKv.open(nc, { bucket: 'leases_test', leaseTtlMs: TTL, replicas: 3 });
  });
  afterEach(async () => {
    await Promise.all(keepers.splice(0).map((k) => k.stop()));
  });
  afterAll(async () => {
    await nc?.close().catch(() => {});
    await cluster?.stop();
  });

  const keeper = (lease: LeaseKv, key: string, node: string) => {
    const k = new LeaseKeeper(lease, key, node, { leaseTtlMs: TTL });
    keepers.push(k);
    return k;
  };

  /** Samples both keepers every 5 ms for `ms`; fails if both may send at once. */
  const neverBoth = async (a: LeaseKeeper, b: LeaseKeeper, ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      expect(a.maySend() && b.maySend(), 'two owners at once').toBe(false);
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  it('takes a free lease, renews it (the fencing token grows) and keeps others out', async () => {
    const key = `route-${route++}`;
    const a = keeper(kv, key, 'node-a');
    a.start();
    await until(() => a.maySend(), 3_000, 'node-a to take the lease');
    const first = a.fencingToken()!;
    expect(first).toBeGreaterThan(0);
    const b = keeper(kv, key, 'node-b');
    b.start();
    await neverBoth(a, b, 2.5 * TTL);
    expect(a.maySend()).toBe(true);
    expect(b.maySend()).toBe(false);
    expect(a.fencingToken()!).toBeGreaterThan(first);
    const entry = await kv.get(key);
    expect(entry?.value.owner).toBe('node-a');
  });

  it('hands the lease over within about leaseTtl once its owner stops renewing, never two owners', async () => {
    const key = `route-${route++}`;
    const lineA = cuttable(kv);
    const a = keeper(lineA.kv, key, 'node-a');
    a.start();
    await until(() => a.maySend(), 3_000, 'node-a to take the lease');
    const b = keeper(kv, key, 'node-b');
    b.start();
    await neverBoth(a, b, 500);
    const cutAt = Date.now();
    lineA.cut();
    let aStoppedAt = 0;
    let bTookAt = 0;
    while (Date.now() - cutAt < 4 * TTL && bTookAt === 0) {
      const am = a.maySend();
      const bm = b.maySend();
      expect(am && bm, 'two owners at once').toBe(false);
      if (!am && aStoppedAt === 0) aStoppedAt = Date.now();
      if (bm) bTookAt = Date.now();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(aStoppedAt).toBeGreaterThan(0);
    expect(aStoppedAt - cutAt).toBeLessThanOrEqual(TTL); // stopped by its own clock, well before expiry
    expect(bTookAt, 'node-b took over').toBeGreaterThan(0);
    expect(bTookAt - cutAt).toBeLessThan(2 * TTL);
    console.info(
      `owner stopped sending ${aStoppedAt - cutAt} ms after the cut; taken over after ${bTookAt - cutAt} ms`,
    );
  });

  it('lets another node take a released lease at once', async () => {
    const key = `route-${route++}`;
    const a = keeper(kv, key, 'node-a');
    a.start();
    await until(() => a.maySend(), 3_000, 'node-a to take the lease');
    const b = keeper(kv, key, 'node-b');
    b.start();
    const stoppedAt = Date.now();
    await a.stop();
    expect(a.maySend()).toBe(false);
    await until(() => b.maySend(), TTL, 'node-b to take the released lease');
    expect(Date.now() - stoppedAt).toBeLessThan(TTL);
  });

  it('refuses a lease bucket whose TTL differs from cluster.leaseTtl', async () => {
    await expect(
      JetStreamLeaseKv.open(nc!, { bucket: 'leases_test', leaseTtlMs: TTL / 2, replicas: 3 }),
    ).rejects.toThrow(ConfigError);
  });
});
