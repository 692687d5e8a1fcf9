/**
 * No alert lost or duplicated across crashes: baselines from 90 minutes of
 * normal history, then the real detect process (`logflow run detect`) is
 * SIGKILLed at 5 random moments while 40 minutes of traffic with an error
 * spike and a silence (the detect scenario, so the incidents are known) flow
 * into raw-logs; a sixth process finishes the job. Every incident must then
 * have its alert, each alert's key must have been opened exactly once, and
 * normal traffic must have opened nothing: a kill between an alert write and
 * its checkpoint must neither replay the alert nor drop it. The kill moments
 * come from a seed the test prints (RELIABILITY_SEED replays them).
 */
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/core/config.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import type { PipelineDefinition } from '../../src/core/pipeline.ts';
import { baselines } from '../../src/pipelines/baselines.ts';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { openResources, type Resources } from '../../src/app/resources.ts';
import { startPipeline } from '../../src/app/runner.ts';
import type { GroundTruth } from '../../src/sources/generator.ts';
import { createRepositories } from '../../src/stores/postgres/index.ts';
import { KafkaTopics } from '../../src/sources/kafka-topics.ts';
import { KAFKA_BROKERS, uniqueName } from '../support/services.ts';
import { createStack, seededRandom, sleep, spawnPipeline, testSeed, waitFor, type Stack } from './support.ts';

const MINUTE = 60_000;
const KILLS = 5;
/** detect's default: raw-logs is created with this many partitions. */
const PARTITIONS = 4;

describe('detect killed 5 times while incidents flow', () => {
  let stack: Stack | undefined;
  afterAll(async () => {
    await stack?.drop();
  });

  it('ends with exactly one alert per incident series and nothing else', async () => {
    const seed = testSeed();
    const random = seededRandom(seed);
    console.info(`crash-detect: RELIABILITY_SEED=${seed}`);
    stack = await createStack();
    const { config, env } = stack;
    const logger = createLogger({ level: config.logLevel });
    const metrics = createMetrics({ defaultMetrics: false });
    const run = async (
      resources: Resources,
      runConfig: Config,
      definition: PipelineDefinition<Resources>,
      options: Record<string, unknown>,
    ) => startPipeline(definition, { config: runConfig, logger, metrics, resources, options });

    // Baselines from history the detector never reads: it went through raw-logs of another prefix, so the
    // detector's input is the scenario's traffic alone and every kill falls while incidents are processed.
    const t0 = Math.floor(Date.now() / MINUTE) * MINUTE - 150 * MINUTE;
    const t1 = t0 + 90 * MINUTE;
    const historyConfig = loadConfig({ ...env, LOGFLOW_TOPIC_PREFIX: `${uniqueName('rel-history')}.` });
    const setup = openResources(historyConfig, logger);
    try {
      const history = await run(setup, historyConfig, generate, {
        rate: '30',
        duration: '90m',
        speed: 'max',
        seed: '11',
        flat: true,
        start: new Date(t0).toISOString(),
      });
      expect(await history.done).toEqual({ status: 'completed' });
      const generated = (await metrics.recordsOut.get()).values
        .filter((v) => v.labels.pipeline === 'generate')
        .reduce((a, v) => a + v.value, 0);
      const ingesting = await run(setup, historyConfig, ingest, {});
      const engines = await setup.engines();
      const logs = async () =>
        Number(
          (
            await (
              await engines.clickhouse.query({ query: 'SELECT count() AS n FROM logs', format: 'JSONEachRow' })
            ).json<{ n: string }>()
          )[0]?.n,
        );
      await waitFor(async () => (await logs()) >= generated, 'the history ingested', 180_000, 500);
      expect(await ingesting.stop()).toEqual({ status: 'stopped' });
      const computed = await run(setup, historyConfig, baselines, { once: true, now: new Date(t1).toISOString() });
      expect(await computed.done).toEqual({ status: 'completed' });
    } finally {
      // The detect processes open this chdb directory next: one process at a time.
      await setup.close();
    }

    // The scenario's traffic, paced so it is still arriving while the detector is killed.
    const traffic = openResources(config, logger);
    const truthFile = `${stack.dir}/truth.jsonl`;
    const incidents = await run(traffic, config, generate, {
      rate: '30',
      duration: '40m',
      speed: '15',
      seed: '12',
      flat: true,
      start: new Date(t1).toISOString(),
      scenario: 'test/fixtures/scenario-detect.json',
      truth: truthFile,
    });

    // PostgreSQL only: the engines would open chdb, which belongs to the detect process.
    const pool = new pg.Pool({ connectionString: env.LOGFLOW_POSTGRES_URL, max: 2 });
    const repositories = createRepositories(pool);
    const covered = async () =>
      Number(
        (
          await pool.query<{ n: string }>(
            "SELECT coalesce(sum(next_offset), 0) AS n FROM detector_checkpoints WHERE pipeline = 'detect'",
          )
        ).rows[0]?.n,
      );
    const options = { 'checkpoint-ms': '200' };
    const kills: Array<{ afterMs: number; coveredAtKill: number; signal: string | null }> = [];
    let trafficDone = false;
    void incidents.done.then(() => {
      trafficDone = true;
    });
    for (let k = 0; k < KILLS; k += 1) {
      const child = spawnPipeline('detect', env, options);
      await child.running;
      // Mid-work, not during start-up or a rebalance: once this process has checkpointed progress, at a random moment
      // of the next 2 s.
      const before = await covered();
      await waitFor(
        async () => (await covered()) > before,
        `detect process ${k + 1} to checkpoint progress`,
        120_000,
        100,
      );
      const afterMs = Math.floor(random() * 2_000);
      await sleep(afterMs);
      const coveredAtKill = await covered();
      const exit = await child.kill('SIGKILL');
      kills.push({ afterMs, coveredAtKill, signal: exit.signal });
    }
    const trafficFlowedThroughKills = !trafficDone;
    expect(await incidents.done).toEqual({ status: 'completed' });
    const truth = (await readFile(truthFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as GroundTruth);

    const topics = new KafkaTopics({ brokers: KAFKA_BROKERS, clientId: 'crash-detect' });
    const inputEnd = [...(await topics.endOffsets(config.topics.rawLogs)).values()].reduce((a, b) => a + b, 0);
    await topics.close();
    const last = spawnPipeline('detect', env, options);
    await last.running;
    // The last process restored every partition's checkpoint (after the dead member's session ran out), then caught up.
    const assigned = () => last.logs.filter((l) => l.msg === 'detector partition assigned').length;
    await waitFor(() => assigned() >= PARTITIONS, 'the last detect to be assigned every partition', 120_000, 250);
    await waitFor(async () => (await covered()) >= inputEnd, 'the last detect to cover all of raw-logs', 240_000, 500);
    const exit = await last.kill('SIGTERM');
    console.info(
      `crash-detect: ${inputEnd} records; kills ${JSON.stringify(kills)}; traffic still flowing at the last kill: ${trafficFlowedThroughKills}`,
    );

    try {
      expect(exit, last.output().slice(-4_000)).toEqual({ code: 0, signal: null });
      expect(kills.map((k) => k.signal)).toEqual(Array(KILLS).fill('SIGKILL'));
      // The kills fell while records were being processed: before the detector had covered its input.
      expect(kills.filter((k) => k.coveredAtKill < inputEnd)).toHaveLength(KILLS);

      const all = (await repositories.anomalyAlerts.list({ limit: 500 })).items.filter(
        (a) => a.alertType !== 'novel_pattern',
      );
      const opened = all.filter((a) => a.openedAt !== null);
      const summary = opened.map((a) => `${a.dedupKey} ${a.status}`);
      for (const incident of truth) {
        const rule = incident.kind === 'silence' ? 'silence' : 'spike';
        const matching = opened.filter(
          (a) =>
            a.rule === rule &&
            a.service === incident.service &&
            a.environment === incident.environment &&
            (incident.level === null || a.level === incident.level),
        );
        // A spike is one series; a silence silences every level of the service, and each busy level may alert.
        if (rule === 'spike')
          expect(matching, `${incident.kind} on ${incident.service}: ${summary.join(', ')}`).toHaveLength(1);
        else
          expect(
            matching.length,
            `${incident.kind} on ${incident.service}: ${summary.join(', ')}`,
          ).toBeGreaterThanOrEqual(1);
      }
      // Normal traffic opened nothing: every opened alert belongs to an incident.
      const explained = (a: (typeof opened)[number]) =>
        truth.some(
          (t) =>
            (t.kind === 'silence' ? 'silence' : 'spike') === a.rule &&
            t.service === a.service &&
            t.environment === a.environment,
        );
      expect(opened.filter((a) => !explained(a))).toEqual([]);
      // Nothing duplicated: each series' alert was opened once, whether still active or resolved since.
      const keys = opened.map((a) => a.dedupKey);
      expect(keys.length).toBeGreaterThanOrEqual(truth.length);
      expect(new Set(keys).size, summary.join(', ')).toBe(keys.length);
      const active = all.filter((a) => a.status !== 'resolved').map((a) => a.dedupKey);
      expect(new Set(active).size).toBe(active.length);
    } finally {
      await pool.end();
      await traffic.close();
    }
  }, 480_000);
});
