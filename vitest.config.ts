import { availableParallelism } from 'node:os';
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
    // At least two files at once: vitest's default (cores - 1) ran them one by one on a 2-core machine, though most of
    // the long ones wait on brokers, child processes and timers (the files' durations summed to the run's 12.9 min).
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
