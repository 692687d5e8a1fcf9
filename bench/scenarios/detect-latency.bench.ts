/**
 * Detection latency in wall-clock time: from an injected incident's first
 * event to its anomaly_alerts row, for several incidents at once.
 *
 * Set-up as test/pipelines/detect.test.ts does it: 90 minutes of normal
 * history (generate at full speed, flat traffic, `--rate` logs/s, default
 * 30) ingested into ClickHouse and baselines computed from it. Detect then
 * reads a fresh topic where generate runs live from the next minute
 * boundary (speed 1, event time = wall time; the history is on its own
 * topic, so the set-up's minutes are not a gap in detect's input), with a
 * scenario of incidents starting 1 to 2 minutes in:
 * error spikes on payment-service and auth-service and a silence of
 * search-service (production). Every 250 ms the alerts are read back; an
 * incident's latency is the time its first matching alert row (pending)
 * and its opened alert were first seen, minus the wall time of its first
 * event (its start second). The floor is set by design, not speed: 1-minute
 * windows, 30 s allowed lateness, and two anomalous windows before an alert
 * opens (anomaly.pending_windows), so about 1.5 min to pending and 2.5 min
 * to open are expected.
 *
 * Args: --rate N (30), --live 8m (longest live run; it ends once every
 * incident's alert opened), --pglite.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { baselines } from '../../src/pipelines/baselines.ts';
import { detect } from '../../src/pipelines/detect.ts';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { startPipeline, type RunningPipeline } from '../../src/app/runner.ts';
import type { Incident } from '../../src/sources/generator.ts';
import { createRepositories } from '../../src/stores/postgres/index.ts';
import { durationArg, numberArg } from '../support/args.ts';
import { deleteTopics, kafkaClient } from '../support/load.ts';
import { counterTotal, quantile } from '../support/sampler.ts';
import { benchStack, uniqueName } from '../support/stack.ts';
import type { Benchmark, BenchContext, BenchOutput, BenchRow } from '../support/types.ts';

const MINUTE = 60_000;

const INCIDENTS: readonly Incident[] = [
  {
    kind: 'spike',
    service: 'payment-service',
    environment: 'production',
    level: 'ERROR',
    startMinute: 1,
    durationMinutes: 4,
    multiplier: 20,
  },
  {
    kind: 'spike',
    service: 'auth-service',
    environment: 'production',
    level: 'ERROR',
    startMinute: 1.5,
    durationMinutes: 4,
    multiplier: 20,
  },
  { kind: 'silence', service: 'search-service', environment: 'production', startMinute: 2, durationMinutes: 4 },
];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function finished(running: RunningPipeline, what: string): Promise<void> {
  const outcome = await running.done;
  if (outcome.status !== 'completed') throw new Error(`${what} ended ${JSON.stringify(outcome)}`);
}

interface Observed {
  readonly incident: Incident;
  readonly startWall: number;
  firstRowSeen?: number;
  openedSeen?: number;
  firstRowCreated?: number;
}

const benchmark: Benchmark = {
  name: 'detect-latency',
  description:
    "wall-clock time from an injected incident's first event to its anomaly_alerts row (pending and open), several incidents",
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const rate = numberArg(ctx.args, 'rate', 30);
    const liveMs = durationArg(ctx.args, 'live', 8 * MINUTE);
    const stack = await benchStack(ctx.args);
    const runId = uniqueName('bench-detect');
    // History and live traffic on separate topics: detect reads only the live one, so the minutes the set-up takes
    // are not a gap in its input (a gap reads as every service going silent).
    const historyConfig = stack.config(`${runId}-history.`);
    const config = stack.config(`${runId}-live.`);
    const engines = await stack.engines();
    // Rows other benchmarks left would be taken for history by the baselines.
    await engines.clickhouse.command({ query: 'TRUNCATE TABLE logs' });
    const metrics = createMetrics({ defaultMetrics: false });
    const resources = stack.resources(config);
    const repositories = createRepositories(engines.postgres);
    const started: RunningPipeline[] = [];
    const start = (
      definition: Parameters<typeof startPipeline>[0],
      options: Record<string, unknown>,
      runConfig = config,
    ) => {
      const running = startPipeline(definition, {
        config: runConfig,
        logger: stack.logger,
        metrics,
        resources,
        options,
      });
      started.push(running);
      return running;
    };
    try {
      const now = Date.now();
      const t0 = Math.floor(now / MINUTE) * MINUTE - 90 * MINUTE;
      const history = ctx.phase('history: 90 min generated, ingested, baselines', 3);
      await finished(
        start(
          generate,
          {
            rate: String(rate),
            duration: '90m',
            speed: 'max',
            seed: '31',
            flat: true,
            start: new Date(t0).toISOString(),
            progress: false,
          },
          historyConfig,
        ),
        'generate (history)',
      );
      history.tick(1);
      start(ingest, {}, historyConfig);
      const generated = await counterTotal(metrics, 'recordsOut', { pipeline: 'generate' });
      while ((await counterTotal(metrics, 'recordsOut', { pipeline: 'ingest', stage: 'clickhouse' })) < generated)
        await sleep(250);
      history.tick(2);
      await finished(start(baselines, { once: true, now: new Date(now).toISOString() }), 'baselines');
      history.done();

      const detecting = start(detect, {});
      const scenarioFile = path.join(stack.dir, `${uniqueName('scenario')}.json`);
      await writeFile(scenarioFile, JSON.stringify({ name: 'bench-detect-latency', incidents: INCIDENTS }));
      // Live traffic starts on a minute boundary, so the first window is a whole one and incidents fall where the
      // scenario says.
      const waiting = ctx.phase('wait for the next minute boundary', 1);
      const liveStart = Math.ceil((Date.now() + 2_000) / MINUTE) * MINUTE;
      await sleep(liveStart - Date.now());
      waiting.done();
      const live = start(generate, {
        rate: String(rate),
        duration: `${Math.ceil(liveMs / 1000)}s`,
        speed: '1',
        seed: '32',
        flat: true,
        start: new Date(liveStart).toISOString(),
        scenario: scenarioFile,
        truth: path.join(stack.dir, 'truth.jsonl'),
        progress: false,
      });
      const observed: Observed[] = INCIDENTS.map((incident) => ({
        incident,
        startWall: liveStart + incident.startMinute * MINUTE,
      }));
      const progress = ctx.phase(`live: ${INCIDENTS.length} incidents, waiting for their alerts`, INCIDENTS.length * 2);
      const deadline = liveStart + liveMs;
      while (Date.now() < deadline && observed.some((o) => o.openedSeen === undefined)) {
        const seenAt = Date.now();
        const alerts = (await repositories.anomalyAlerts.list({ limit: 500 })).items.filter(
          (a) => a.alertType !== 'novel_pattern',
        );
        for (const o of observed) {
          const rule = o.incident.kind === 'silence' ? 'silence' : 'spike';
          const level = o.incident.kind === 'spike' ? o.incident.level : undefined;
          const matching = alerts.filter(
            (a) =>
              a.rule === rule &&
              a.service === o.incident.service &&
              a.environment === o.incident.environment &&
              (level === undefined || a.level === level),
          );
          if (matching.length > 0 && o.firstRowSeen === undefined) {
            o.firstRowSeen = seenAt;
            o.firstRowCreated = Math.min(...matching.map((a) => a.createdAt.getTime()));
          }
          if (matching.some((a) => a.openedAt !== null) && o.openedSeen === undefined) o.openedSeen = seenAt;
        }
        progress.tick(
          observed.reduce(
            (n, o) => n + (o.firstRowSeen === undefined ? 0 : 1) + (o.openedSeen === undefined ? 0 : 1),
            0,
          ),
        );
        const outcome = await Promise.race([detecting.done, sleep(250).then(() => undefined)]);
        if (outcome !== undefined) throw new Error(`detect ended during the live run: ${JSON.stringify(outcome)}`);
      }
      progress.done();
      await live.stop();

      const rows: BenchRow[] = [];
      const toFirst: number[] = [];
      const toOpen: number[] = [];
      for (const o of observed) {
        const scenario = `${o.incident.kind} ${o.incident.service}/${o.incident.environment}${o.incident.kind === 'spike' ? ` ${o.incident.level}` : ''}`;
        const first = o.firstRowSeen === undefined ? Number.NaN : (o.firstRowSeen - o.startWall) / 1000;
        const opened = o.openedSeen === undefined ? Number.NaN : (o.openedSeen - o.startWall) / 1000;
        if (Number.isFinite(first)) toFirst.push(first);
        if (Number.isFinite(opened)) toOpen.push(opened);
        rows.push(
          { scenario, metric: 'first alert row (pending) seen', value: first, unit: 's' },
          {
            scenario,
            metric: 'first alert row, by its created_at',
            value: o.firstRowCreated === undefined ? Number.NaN : (o.firstRowCreated - o.startWall) / 1000,
            unit: 's',
          },
          { scenario, metric: 'alert opened, seen', value: opened, unit: 's' },
        );
      }
      rows.push(
        {
          scenario: `all ${INCIDENTS.length} incidents`,
          metric: 'median time to first alert row',
          value: quantile(toFirst, 0.5),
          unit: 's',
        },
        {
          scenario: `all ${INCIDENTS.length} incidents`,
          metric: 'max time to first alert row',
          value: Math.max(...toFirst),
          unit: 's',
        },
        {
          scenario: `all ${INCIDENTS.length} incidents`,
          metric: 'median time to opened alert',
          value: quantile(toOpen, 0.5),
          unit: 's',
        },
        {
          scenario: `all ${INCIDENTS.length} incidents`,
          metric: 'max time to opened alert',
          value: Math.max(...toOpen),
          unit: 's',
        },
        {
          scenario: `all ${INCIDENTS.length} incidents`,
          metric: 'incidents whose alert opened',
          value: toOpen.length,
          unit: 'count',
        },
      );
      return {
        rows,
        notes: [
          `history: 90 min at ${rate} logs/s (flat); live: generate at speed 1 from a minute boundary, incidents at minutes ${INCIDENTS.map((i) => i.startMinute).join(', ')}`,
          "latency = first time the alert was seen (polled every 250 ms) - wall time of the incident's first second; design floor: 1-min windows + 30 s lateness (+1 window for open: pending_windows = 2)",
        ],
      };
    } finally {
      await Promise.allSettled(started.map((r) => r.stop()));
      await resources.close();
      await deleteTopics(kafkaClient('logflow-bench-detect'), [
        ...[config, historyConfig].flatMap((c) => [c.topics.rawLogs, c.topics.vectorizationQueue, c.topics.rawLogsDlq]),
      ]);
    }
  },
};

export default benchmark;
