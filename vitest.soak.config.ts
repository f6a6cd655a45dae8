import { defineConfig } from 'vitest/config';

/**
 * `npm run test:soak`: minutes of receiver flaps and SIGKILLs of a real gateway under HTTP load
 * (test/soak). Not part of `npm test` or CI; size it with WAYSTATION_SOAK_ROUNDS.
 */
export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    testTimeout: 24 * 60 * 60 * 1000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
