import { defineConfig } from 'vitest/config';

/**
 * `npm run test:services`: tests against the real servers on 127.0.0.1 (see README), and the
 * cluster tests against nats-server clusters they start themselves (test/support/nats-cluster.ts;
 * the binary comes from scripts/install-nats-server.sh). The cluster tests are named
 * `*.services.test.ts` and skip themselves outside this config (WAYSTATION_SERVICES).
 */
export default defineConfig({
  test: {
    include: ['test/services/**/*.test.ts', 'test/cluster/**/*.services.test.ts'],
    env: { WAYSTATION_SERVICES: '1' },
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
