/**
 * The `cluster:` section (issue 10) as validation sees it, and what a single-node gateway says
 * about the cluster endpoint. No NATS server needed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import { ConfigError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import { startGateway } from '../support/gateway.js';

const cluster = { nodeId: 'node-a', nats: { servers: ['nats://127.0.0.1:14221'] } };

function issuesOf(config: unknown): string[] {
  try {
    parseConfig(config);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => i.path);
    throw err;
  }
  return [];
}

describe('cluster configuration', () => {
  let gw: Gateway | undefined;
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
  });

  it('fills in the defaults of the contract', () => {
    const { config } = parseConfig({ cluster });
    expect(config.cluster).toEqual({
      nodeId: 'node-a',
      prefix: 'waystation',
      nats: { servers: ['nats://127.0.0.1:14221'], replicas: 3, discoverServers: true },
      leaseTtl: 10_000,
      publishTimeout: 10_000,
    });
    expect(parseConfig({}).config.cluster).toBeUndefined();
  });

  it('refuses what cluster mode cannot do, by config path', () => {
    expect(
      issuesOf({
        cluster,
        mqtt: { storeAndForwardTopics: [{ topic: 'plant/#', stream: 'plant' }] },
      }),
    ).toEqual(['mqtt.storeAndForwardTopics']);
    expect(issuesOf({ cluster, storage: { dedupWindow: '5s' } })).toEqual(['storage.dedupWindow']);
    expect(issuesOf({ cluster: { ...cluster, leaseTtl: '500ms' } })).toEqual(['cluster.leaseTtl']);
    expect(issuesOf({ cluster: { ...cluster, nodeId: 'a b' } })).toEqual(['cluster.nodeId']);
    expect(issuesOf({ cluster: { ...cluster, nats: { servers: [], replicas: 3 } } })).toEqual([
      'cluster.nats.servers',
    ]);
    expect(issuesOf({ cluster: { ...cluster, nats: { ...cluster.nats, replicas: 7 } } })).toEqual([
      'cluster.nats.replicas',
    ]);
    expect(issuesOf({ cluster: { ...cluster, extra: 1 } })).toEqual(['cluster']);
  });

  it('warns about one replica and storage limits JetStream ignores', () => {
    const { warnings } = parseConfig({
      cluster: { ...cluster, nats: { ...cluster.nats, replicas: 1 } },
      storage: { maxBytes: '1GiB' },
    });
    expect(warnings.map((w) => w.path)).toEqual(['cluster.nats.replicas', 'storage.maxBytes']);
  });

  it('answers GET /v1/cluster with 404 WS_ERR_CLUSTER_NOT_ENABLED on one node', async () => {
    ({ gw } = await startGateway({}));
    const res = await fetch(`${gw.url}/v1/cluster`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('WS_ERR_CLUSTER_NOT_ENABLED');
  });

  it('fails to start with 503 WS_ERR_CLUSTER_UNAVAILABLE when no NATS server answers', async () => {
    // Port 1 on loopback: nothing listens there.
    await expect(
      startGateway({ cluster: { nodeId: 'n', nats: { servers: ['nats://127.0.0.1:1'] } } }),
    ).rejects.toMatchObject({ code: 'WS_ERR_CLUSTER_UNAVAILABLE' });
  });
});
