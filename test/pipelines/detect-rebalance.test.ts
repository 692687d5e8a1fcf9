/**
 * Two detect instances in one consumer group: the second joins midway, the
 * partitions it takes over bring their detector state with them (restored
 * from the checkpoints the first instance wrote), and the injected spike
 * still opens exactly one alert. Like the ingest scale-out test, both
 * instances share this process's chdb, each with its own Kafka consumer.
 */
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { baselines } from '../../src/pipelines/baselines.ts';
import { detect } from '../../src/pipelines/detect.ts';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { openResources } from '../../src/app/resources.ts';
import { startPipeline } from '../../src/app/runner.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';
import { KAFKA_BROKERS } from '../support/services.ts';

const MINUTE = 60_000;

describe('detect rebalance', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(() => h.close());

  it('moves detector state with its partitions and raises the incident once', async () => {
    const t0 = Math.floor(Date.now() / MINUTE) * MINUTE - 120 * MINUTE;
    const history = h.start(generate, {
      rate: '30',
      duration: '60m',
      speed: 'max',
      seed: '31',
      flat: true,
      start: new Date(t0).toISOString(),
    });
    await history.done;
    const ingesting = h.start(ingest, {});
    const generated = async () =>
      (await h.metrics.recordsOut.get()).values
        .filter((v) => v.labels.pipeline === 'generate')
        .reduce((a, v) => a + v.value, 0);
    await h.waitFor(async () => (await h.count('SELECT count() FROM logs')) >= (await generated()), 'history ingested');
    await h.start(baselines, { once: true, now: new Date(t0 + 60 * MINUTE).toISOString() }).done;
    const produced = async () =>
      [...(await h.resources.topics().endOffsets(h.config.topics.rawLogs)).values()].reduce((x, y) => x + y, 0);
    const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
    const shared = { engines: h.resources.engines() };
    const instanceA = openResources(h.config, logger, shared);
    const instanceB = openResources(h.config, logger, shared);
    const metricsA = createMetrics({ defaultMetrics: false });
    const metricsB = createMetrics({ defaultMetrics: false });
    const { postgres } = await h.resources.engines();
    const covered = async () =>
      Number(
        (await postgres.query<{ n: string }>('SELECT coalesce(sum(next_offset), 0) AS n FROM detector_checkpoints'))
          .rows[0]?.n,
      );

    // The first instance alone works through the history and checkpoints every partition.
    const a = startPipeline(detect, {
      config: h.config,
      logger,
      metrics: metricsA,
      resources: instanceA,
      options: { 'checkpoint-ms': '200' },
    });
    const historyEnd = await produced();
    await h.waitFor(async () => (await covered()) >= historyEnd, 'the first instance to cover the history', 240_000);

    // The second joins; only once the group has two members does the traffic with the incident arrive.
    const b = startPipeline(detect, {
      config: h.config,
      logger,
      metrics: metricsB,
      resources: instanceB,
      options: { 'checkpoint-ms': '200' },
    });
    const admin = new Kafka({ clientId: 'rebalance-test', brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const group = `${h.config.topicPrefix}logflow-detect`;
    await h.waitFor(
      async () => {
        const { groups } = await admin.describeGroups([group]);
        return groups[0]?.state === 'Stable' && groups[0].members.length === 2;
      },
      'the group to rebalance onto two members',
      120_000,
    );
    await admin.disconnect();
    const incidents = h.start(generate, {
      rate: '30',
      duration: '15m',
      speed: 'max',
      seed: '32',
      flat: true,
      start: new Date(t0 + 60 * MINUTE).toISOString(),
      scenario: 'test/fixtures/scenario-rebalance.json',
    });
    await incidents.done;
    const inputEnd = await produced();
    await h.waitFor(async () => (await covered()) >= inputEnd, 'both instances to reach the end', 240_000);
    expect((await a.stop()).status).toBe('stopped');
    expect((await b.stop()).status).toBe('stopped');
    await instanceA.close();
    await instanceB.close();
    await ingesting.stop();

    const processed = async (m: typeof metricsA) => (await m.recordsIn.get()).values.reduce((x, v) => x + v.value, 0);
    expect(await processed(metricsA)).toBeGreaterThan(0);
    expect(await processed(metricsB)).toBeGreaterThan(0);
    const repositories = await h.resources.repositories();
    const alerts = (await repositories.anomalyAlerts.list({ limit: 500 })).items.filter((x) => x.openedAt !== null);
    const spikes = alerts.filter((x) => x.rule === 'spike' && x.service === 'payment-service' && x.level === 'ERROR');
    expect(spikes).toHaveLength(1);
    const keys = alerts.map((x) => x.dedupKey);
    expect(new Set(keys).size).toBe(keys.length);
  }, 420_000);
});
