import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Minutes of crashes, outages and backpressure: `npm run test:reliability` (vitest.reliability.config.ts), also run
    // by .ci/run.
    exclude: [...configDefaults.exclude, 'test/reliability/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // chdb binds one data directory per process, so each test file gets its own process.
    pool: 'forks',
  },
});
