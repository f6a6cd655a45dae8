/**
 * The cluster backend (src/cluster/jetstream-store.ts) against the storage contract, on a real
 * 3-server JetStream cluster at 3 replicas. Each place is a fresh name prefix; opening a place
 * again is a restart: a new connection and a new store over the same JetStream objects.
 * Runs under `npm run test:services`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe } from 'vitest';
import { JetStreamStore } from '../../src/cluster/jetstream-store.js';
import { describeStoreContract } from '../store/contract.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { tempDir } from '../support/tmp.js';

const services = process.env.WAYSTATION_SERVICES === '1';

describe.skipIf(!services)('the JetStream store (run with npm run test:services)', () => {
  let cluster: NatsCluster | undefined;
  beforeAll(async () => {
    cluster = await NatsCluster.start();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  let n = 0;
  describeStoreContract('JetStream, 3 servers, R3', {
    largePayloadBytes: 64 * 1024,
    place: async () => `c${n++}_${randomBytes(4).toString('hex')}`,
    open: async (prefix, layout) =>
      JetStreamStore.open({
        servers: cluster!.urls,
        prefix,
        nodeId: 'test-node',
        replicas: 3,
        dataDir: await tempDir('ws-js-contract-'),
        ...layout,
      }),
  });
});
