/**
 * Cluster mode end to end (issue 10): three nats-servers and two or three Waystation processes
 * with one configuration. Any node accepts publishes; exactly one node delivers a route; the
 * route's actions work from any node; SIGKILLing the node that delivers a route in the middle
 * of a drain (several rounds) loses no acknowledged message, keeps fifo order (duplicates only
 * of what was in flight), and the other node carries on. Runs under `npm run test:services`.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { placementKey, preferredOrder } from '../../src/cluster/route-placement.js';
import { cli, startCli, stopCli, writeConfig } from '../support/cli.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { Receiver } from '../support/receiver.js';
import { until } from '../support/wait.js';

const services = process.env.WAYSTATION_SERVICES === '1';

interface Node {
  id: string;
  config: string;
  proc: ChildProcess;
  url: string;
}

interface Acked {
  id: string;
  seq: number;
}

describe.skipIf(!services)('cluster mode with Waystation processes (run with npm run test:services)', () => {
  let nats: NatsCluster;
  let receiver: Receiver;
  const nodes: Node[] = [];

  beforeAll(async () => {
    nats = await NatsCluster.start();
  });
  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map((n) => stopCli(n.proc, 'SIGKILL')));
    await receiver?.stop();
    // A test that killed a nats-server leaves the cluster whole for the next.
    let restarted = false;
    for (const i of nats.nodes.keys())
      if (!nats.isRunning(i)) {
        await nats.restart(i);
        restarted = true;
      }
    if (restarted) await nats.waitReady();
  });
  afterAll(async () => {
    await nats?.stop();
  });

  async function configFor(prefix: string, nodeId: string, extra: object = {}): Promise<string> {
    return writeConfig({
      cluster: { nodeId, prefix, nats: { servers: nats.urls, replicas: 3 }, leaseTtl: '2s' },
      targets: { sink: { type: 'http', url: receiver.url, timeout: '5s' } },
      routes: {
        r: { streams: ['orders'], target: 'sink', ordering: 'fifo', probeInterval: '200ms' },
      },
      ...extra,
    });
  }

  async function startNode(config: string, id: string): Promise<Node> {
    const { proc, url } = await startCli(['--config', config]);
    const node = { id, config, proc, url };
    nodes.push(node);
    return node;
  }

  async function publish(node: Node, body: string): Promise<Acked> {
    const res = await fetch(`${node.url}/v1/streams/orders/messages`, { method: 'POST', body });
    expect(res.status, await res.clone().text()).toBe(202);
    return (await res.json()) as Acked;
  }

  async function clusterView(
    node: Node,
  ): Promise<{ owners: Record<string, string | null>; nodes: { nodeId: string; sameConfig: boolean }[] }> {
    const res = await fetch(`${node.url}/v1/cluster`);
    expect(res.status).toBe(200);
    return res.json() as never;
  }

  async function ownerOf(node: Node, route: string): Promise<string | null> {
    return (await clusterView(node)).owners[route] ?? null;
  }

  const deliveredIds = () => receiver.requests.map((r) => String(r.headers['waystation-id']));

  it('accepts publishes on every node, delivers each route from one, and acts on a route from any node', async () => {
    receiver = await new Receiver().start();
    const prefix = `t${randomBytes(4).toString('hex')}`;
    const a = await startNode(await configFor(prefix, 'node-a'), 'node-a');
    const b = await startNode(await configFor(prefix, 'node-b'), 'node-b');
    await until(async () => (await clusterView(a)).nodes.length === 2, 15_000, 'both nodes in the cluster');
    // Placement settles on the node rendezvous hashing prefers (the first owner hands it over).
    const preferred = preferredOrder(placementKey('r'), ['node-a', 'node-b'])[0];
    await until(async () => (await ownerOf(a, 'r')) === preferred, 15_000, `route r owned by ${preferred}`);

    const acked: Acked[] = [];
    for (let i = 0; i < 40; i++) acked.push(await publish(i % 2 === 0 ? a : b, `m-${i}`));
    // Seqs are dense and shared by both nodes.
    expect(acked.map((x) => x.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    await until(() => deliveredIds().length >= 40, 20_000, 'all 40 delivered');
    expect(deliveredIds()).toEqual(acked.map((x) => x.id));

    const owner = (await ownerOf(a, 'r'))!;
    const other = owner === 'node-a' ? b : a;
    const owning = owner === 'node-a' ? a : b;
    // The snapshot on the other node is the owner's, with its name.
    const snap = (await (await fetch(`${other.url}/v1/routes/r`)).json()) as {
      owner: string;
      forwarded: number;
    };
    expect(snap).toMatchObject({ owner, forwarded: 40 });

    // Store on the node that does not deliver: the owner holds the route.
    expect((await fetch(`${other.url}/v1/routes/r/store`, { method: 'POST' })).status).toBe(200);
    const held = (await (await fetch(`${owning.url}/v1/routes/r`)).json()) as { state: string };
    expect(held.state).toBe('held');
    await publish(other, 'while-held');
    await new Promise((r) => setTimeout(r, 500));
    expect(deliveredIds()).toHaveLength(40);
    const purge = await fetch(`${other.url}/v1/routes/r/purge`, { method: 'POST' });
    expect(await purge.json()).toEqual({ purged: 1 });
    expect((await fetch(`${other.url}/v1/routes/r/forward`, { method: 'POST' })).status).toBe(200);
    const last = await publish(other, 'after');
    await until(() => deliveredIds().includes(last.id), 10_000, 'delivery after forward');
    expect(deliveredIds()).toHaveLength(41);

    // The CLI and the metrics: both nodes, one owner; the route reported by its owner only.
    const shown = await cli(['cluster', '--url', other.url]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('node-a');
    expect(shown.stdout).toContain('node-b');
    expect(shown.stdout).toMatch(new RegExp(`r\\s+${owner}`));
    const metricsOf = async (n: Node) => (await fetch(`${n.url}/metrics`)).text();
    expect(await metricsOf(owning)).toMatch(/^waystation_cluster_leases_held 1$/m);
    expect(await metricsOf(other)).toMatch(/^waystation_cluster_leases_held 0$/m);
    expect(await metricsOf(owning)).toContain('waystation_route_backlog_messages{route="r"}');
    expect(await metricsOf(other)).not.toContain('waystation_route_backlog_messages{route="r"}');

    // Store-and-forward topics are refused in cluster mode, with the reason.
    const topic = await fetch(`${a.url}/v1/mqtt/topics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'plant/#', stream: 'plant' }),
    });
    expect(topic.status).toBe(409);
    expect(((await topic.json()) as { error: { message: string } }).error.message).toContain('cluster mode');

    // Both run the same configuration; a third node with another one is pointed out.
    expect((await clusterView(a)).nodes.map((n) => n.sameConfig)).toEqual([true, true]);
    const c = await startNode(await configFor(prefix, 'node-c', { streams: { extra: {} } }), 'node-c');
    await until(
      async () => (await clusterView(a)).nodes.some((n) => n.nodeId === 'node-c' && n.sameConfig === false),
      10_000,
      'node-c shown with another configuration',
    );
    await stopCli(c.proc);
    nodes.splice(nodes.indexOf(c), 1);

    // A message published on one node, awaited on the other.
    const m = await publish(owning, 'receipt');
    const status = await fetch(`${other.url}/v1/messages/${m.id}?wait=delivered&timeout=10s`);
    expect(await status.json()).toMatchObject({ id: m.id, routes: { r: 'delivered' } });
  }, 90_000);

  it('SIGKILLing the node that delivers a route mid-drain loses no acknowledged message, in fifo order', async () => {
    receiver = await new Receiver().start();
    // A slow receiver keeps the drain going while its deliverer is killed.
    receiver.respond = (_req, res) => setTimeout(() => res.writeHead(200).end('ok'), 15);
    const prefix = `t${randomBytes(4).toString('hex')}`;
    const ids = ['node-a', 'node-b'];
    const live = new Map<string, Node>();
    for (const id of ids) live.set(id, await startNode(await configFor(prefix, id), id));
    const any = () => [...live.values()][0]!;
    await until(async () => (await ownerOf(any(), 'r')) !== null, 15_000, 'an owner for route r');

    const acked: Acked[] = [];
    const rounds = 3;
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < 150; i++) {
        const target = [...live.values()][i % live.size]!;
        acked.push(await publish(target, `r${round}-${i}`));
      }
      const before = deliveredIds().length;
      await until(() => deliveredIds().length >= before + 30, 20_000, 'the drain under way');
      const owner = await ownerOf(any(), 'r');
      expect(owner).not.toBeNull();
      const victim = live.get(owner!)!;
      await stopCli(victim.proc, 'SIGKILL');
      live.delete(owner!);
      nodes.splice(nodes.indexOf(victim), 1);
      // The survivor takes the route over; the killed node comes back as a standby.
      await until(
        async () => {
          const o = await ownerOf(any(), 'r').catch(() => null);
          return o !== null && o !== owner;
        },
        15_000,
        `route r taken over from ${owner}`,
      );
      live.set(owner!, await startNode(victim.config, owner!));
    }

    await until(
      () => new Set(deliveredIds()).size >= acked.length,
      60_000,
      `all ${acked.length} acknowledged messages delivered`,
    );
    const delivered = deliveredIds();
    const seqOf = new Map(acked.map((x) => [x.id, x.seq]));
    expect(new Set(delivered)).toEqual(new Set(acked.map((x) => x.id)));
    // fifo: after a takeover the new owner starts again from what was in flight, then goes on
    // in order; so the first deliveries of all messages are in seq order.
    const firsts: number[] = [];
    const seen = new Set<string>();
    for (const id of delivered) {
      if (seen.has(id)) continue;
      seen.add(id);
      firsts.push(seqOf.get(id)!);
    }
    expect(firsts).toEqual([...firsts].sort((x, y) => x - y));
    // Duplicates: at most what was in flight (a batch of one, maxInFlight 1) or delivered and
    // not yet saved (within the 100 ms save delay) at each kill.
    const duplicates = delivered.length - seen.size;
    expect(duplicates).toBeLessThanOrEqual(rounds * 20);
  }, 240_000);

  it('SIGKILLing the stream leader nats-server mid-publish costs a few seconds of 503s and no acknowledged message', async () => {
    receiver = await new Receiver().start();
    const prefix = `t${randomBytes(4).toString('hex')}`;
    const a = await startNode(await configFor(prefix, 'node-a'), 'node-a');
    const b = await startNode(await configFor(prefix, 'node-b'), 'node-b');
    await until(async () => (await ownerOf(a, 'r')) !== null, 15_000, 'an owner for route r');

    const nc = await connect({ servers: nats.urls });
    const jsm = await jetstreamManager(nc);
    const acked = new Set<string>();
    let unavailable = 0;
    let firstRefusal: number | undefined;
    let lastRefusal: number | undefined;
    let killed = false;
    for (let i = 0; i < 300; i++) {
      if (i === 100) {
        const leader = (await jsm.streams.info(`${prefix}_s_orders`)).cluster?.leader;
        expect(leader).toBeDefined();
        await nats.kill(nats.indexOf(leader!));
        killed = true;
      }
      const node = i % 2 === 0 ? a : b;
      // A client that retries a 503 with the same Idempotency-Key stores its message once.
      for (;;) {
        const res = await fetch(`${node.url}/v1/streams/orders/messages`, {
          method: 'POST',
          body: `m-${i}`,
          headers: { 'idempotency-key': `k-${i}` },
        });
        if (res.status === 202) {
          acked.add(((await res.json()) as Acked).id);
          break;
        }
        expect(res.status).toBe(503);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
          'WS_ERR_CLUSTER_UNAVAILABLE',
        );
        unavailable++;
        firstRefusal ??= performance.now();
        lastRefusal = performance.now();
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(killed).toBe(true);
    if (firstRefusal !== undefined) expect(lastRefusal! - firstRefusal).toBeLessThan(15_000);
    await until(() => new Set(deliveredIds()).size >= acked.size, 30_000, `all ${acked.size} delivered`);
    expect(new Set(deliveredIds())).toEqual(acked);
    expect(acked.size).toBe(300);
    // Retries only while the election ran (each ~100 ms apart).
    expect(unavailable).toBeLessThan(150);
    await nc.close();
  }, 120_000);
});
