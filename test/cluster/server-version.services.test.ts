/**
 * Cluster mode refuses nats-server < 2.11: checked against the machine's nats-server on
 * 127.0.0.1:4222 (Debian bookworm's 2.9.10) and a cluster of scripts/install-nats-server.sh's.
 * Runs under `npm run test:services`.
 */
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { assertServerVersion, serverVersionAtLeast } from '../../src/cluster/server-version.js';
import { ClusterServerTooOldError, ErrorCodes } from '../../src/errors.js';
import { NatsCluster } from '../support/nats-cluster.js';

const services = process.env.WAYSTATION_SERVICES === '1';

describe.skipIf(!services)('the cluster server version check (run with npm run test:services)', () => {
  it('refuses the machine nats-server on 127.0.0.1:4222 when it is older than 2.11', async () => {
    const nc = await connect({ servers: '127.0.0.1:4222', timeout: 3_000 }).catch((err) => {
      throw new Error(`no NATS server on 127.0.0.1:4222 (the machine's nats-server): ${err}`);
    });
    try {
      const version = nc.info!.version;
      if (serverVersionAtLeast(version)) {
        expect(assertServerVersion(nc)).toBe(version);
        return; // a newer machine server: nothing to refuse
      }
      let caught: unknown;
      try {
        assertServerVersion(nc);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ClusterServerTooOldError);
      const e = caught as ClusterServerTooOldError;
      expect(e.code).toBe(ErrorCodes.ClusterServerTooOld);
      expect(e.version).toBe(version);
      expect(e.message).toContain(`nats-server ${version}`);
      expect(e.message).toContain('2.11.0 or newer');
      expect(e.message).toContain('127.0.0.1:4222');
    } finally {
      await nc.close();
    }
  });

  it('accepts the cluster test servers (>= 2.11)', async () => {
    const cluster = await NatsCluster.start({ size: 1 });
    try {
      const nc = await connect({ servers: cluster.urls });
      expect(serverVersionAtLeast(assertServerVersion(nc))).toBe(true);
      await nc.close();
    } finally {
      await cluster.stop();
    }
  });
});
