import { defineConfig } from 'vitest/config';

/** `npm run test:services`: tests against the real servers on 127.0.0.1 (see README). */
export default defineConfig({
  test: {
    include: ['test/services/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
