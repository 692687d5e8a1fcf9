import { defineConfig } from 'vitest/config';

/**
 * The reliability group (test/reliability): processes SIGKILLed mid-stream,
 * private PostgreSQL/Redis/Kafka instances stopped and restarted, a slowed
 * sink, malformed input. Slower than `npm test`, so it runs on its own:
 * `npm run test:reliability`.
 */
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // One file at a time: each starts processes, brokers and databases of its own, and on two cores a
    // crash test beside an outage test starved the latter's private broker past its deadlines.
    fileParallelism: false,
  },
});
