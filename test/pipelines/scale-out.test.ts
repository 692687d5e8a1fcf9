/**
 * Two ingest instances in one consumer group split a 4-partition topic; one
 * is killed midway (torn down without flushing or committing, its consumer
 * gone) and the other takes over its partitions: every log is still stored
 * exactly once. No ClickHouse server runs here and chdb binds one data
 * directory per process, so both instances run in this process on one chdb,
 * each with its own Kafka consumer, as two processes would against a server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { openResources } from '../../src/app/resources.ts';
import { startPipeline } from '../../src/app/runner.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';

describe('ingest scale-out', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(() => h.close());

  it('stores every log exactly once when one of two instances is killed midway', async () => {
    const generated = h.start(generate, {
      rate: '1000',
      duration: '80s',
      speed: 'max',
      seed: '21',
      flat: true,
      partitions: '4',
    });
    expect(await generated.done).toEqual({ status: 'completed' });
    const total = (await h.metrics.recordsOut.get()).values.find((v) => v.labels.pipeline === 'generate')?.value ?? 0;

    const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
    const shared = { engines: h.resources.engines() };
    const instanceA = openResources(h.config, logger, shared);
    const instanceB = openResources(h.config, logger, shared);
    // Small batches, so A has written some but far from all when it dies.
    const options = { 'batch-size': '2000', 'batch-wait-ms': '100', 'max-in-flight': '4000' };
    const a = startPipeline(ingest, { config: h.config, logger, metrics: h.metrics, resources: instanceA, options });
    const b = startPipeline(ingest, { config: h.config, logger, metrics: h.metrics, resources: instanceB, options });

    await h.waitFor(async () => (await h.count('SELECT count() FROM logs')) >= total / 4, 'both instances to write');
    const partitionsWritten = await h.count('SELECT uniqExact(kafka_partition) FROM logs');
    a.abort();
    await instanceA.close();

    await h.waitFor(
      async () => (await h.count('SELECT count() FROM logs')) >= total,
      'the survivor to catch up',
      180_000,
    );
    expect(await b.stop()).toEqual({ status: 'stopped' });
    await instanceB.close();

    expect(partitionsWritten).toBeGreaterThan(1);
    expect(await h.count('SELECT count() FROM logs')).toBe(total);
    expect(await h.count('SELECT uniqExact(log_id) FROM logs')).toBe(total);
    expect(await h.count('SELECT sum(log_count) FROM logs_hourly_agg')).toBe(total);
  }, 300_000);
});
