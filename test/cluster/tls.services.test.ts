/**
 * Cluster mode over TLS (cluster.nats.tls): a nats-server that requires TLS, a node that trusts
 * its certificate publishes and delivers; one that does not trust it fails to start with 503
 * WS_ERR_CLUSTER_UNAVAILABLE, naming NATS. Runs under `npm run test:services`.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Waystation } from '../../src/waystation.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { selfSignedCert } from '../support/tls.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

const services = process.env.WAYSTATION_SERVICES === '1';

describe.skipIf(!services)('cluster mode over TLS (run with npm run test:services)', () => {
  let nats: NatsCluster;
  let cert: { key: string; cert: string };

  beforeAll(async () => {
    // The NATS client checks the certificate against "localhost" for a loopback server.
    cert = await selfSignedCert(['localhost']);
    nats = await NatsCluster.start({ size: 1, tls: { cert: cert.cert, key: cert.key } });
  });
  afterAll(async () => {
    await nats?.stop();
  });

  const config = (tls: { ca?: string } | undefined) => ({
    dataDir: './data',
    cluster: {
      nodeId: 'tls-node',
      prefix: `t${randomBytes(4).toString('hex')}`,
      nats: { servers: nats.urls, replicas: 1, ...(tls ? { tls } : {}) },
      leaseTtl: '2s',
    },
    targets: { sink: { type: 'null' as const } },
    routes: { r: { streams: ['orders'], target: 'sink' } },
  });

  it('publishes and delivers over TLS with the servers certificate trusted', async () => {
    const target = new ScriptedTarget();
    const ws = await Waystation.open(config({ ca: cert.cert }), {
      baseDir: await tempDir('ws-tls-cluster-'),
      logger: pino({ level: 'silent' }),
      targets: { sink: target },
    });
    try {
      const ref = await ws.publish('orders', 'over tls');
      await until(() => target.delivered.some((d) => d.id === ref.id), 15_000, 'delivery over TLS');
    } finally {
      await ws.close();
    }
  });

  it('does not start when the certificate is not trusted', async () => {
    await expect(
      Waystation.open(config(undefined), {
        baseDir: await tempDir('ws-tls-cluster-'),
        logger: pino({ level: 'silent' }),
      }),
    ).rejects.toMatchObject({ code: 'WS_ERR_CLUSTER_UNAVAILABLE' });
  });
});
