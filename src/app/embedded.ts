/**
 * `npm start`: the whole system in one process on the embedded engines
 * (in-process topics, chdb, PGlite, the ClickHouse vector store, the local
 * embedder, the in-memory cache, the statistical report unless an LLM is
 * configured), running the same pipeline definitions as server mode.
 *
 * Demo time: event time runs `--speed` times faster than the wall clock, so
 * a minute-window detector shows an alert within a minute of watching. The
 * first start backfills recent history and computes baselines from it; the
 * baselines and nightly schedules then run on event time too, and analyses
 * the dashboard asks for run within seconds.
 */
import { readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { loadConfig, redactedConfig, type Config } from '../core/config.ts';
import { LOCK_FILE_NAME, lockDataDir } from '../core/data-dir-lock.ts';
import { openEngines, type Engines } from '../clients/engines.ts';
import { embedderChoice } from '../clients/embeddings.ts';
import { ConfigError, describeCause } from '../core/errors.ts';
import { Health } from '../core/health.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { createMetrics, type EngineMetrics } from '../core/metrics.ts';
import { migrateAll } from './migrate.ts';
import type { SchedulerLike } from 'rxjs';
import { EventTimeScheduler } from '../core/event-time-scheduler.ts';
import type { PipelineDefinition } from '../core/pipeline.ts';
import { serveProcessEndpoints, startPipeline, type RunningPipeline } from './runner.ts';
import { loadBaselines } from '../stores/baselines.ts';
import { InProcessTopics } from '../sources/in-process-topics.ts';
import { durationMs } from '../core/duration.ts';
import { api } from './api.ts';
import { baselines } from '../pipelines/baselines.ts';
import { detect } from '../pipelines/detect.ts';
import { receiverName } from '../sinks/alert-notifier.ts';
import { generate } from '../pipelines/generate.ts';
import { ingest } from '../pipelines/ingest.ts';
import { nightly } from '../pipelines/nightly.ts';
import { retention } from '../pipelines/retention.ts';
import { openResources, type Resources } from './resources.ts';
import { fetchModelAtStart } from './start-model.ts';
import { vectorize } from '../pipelines/vectorize.ts';

export const startFlagsSchema = z
  .object({
    rate: z.coerce.number().positive().max(1_000_000).default(500),
    duration: durationMs.optional(),
    scenario: z.string().default('quickstart'),
    'data-dir': z.string().optional(),
    reset: z.coerce.boolean().default(false),
    'analyze-after': durationMs.optional(),
    speed: z.coerce.number().positive().max(1_000).default(20),
    history: durationMs.default(20 * 60_000),
    seed: z.coerce.number().int().optional(),
    'api-port': z.coerce.number().int().min(0).max(65_535).optional(),
  })
  .strict();
export type StartFlags = z.output<typeof startFlagsSchema>;

/**
 * Records raw-logs may hold that ingest or detect has not committed before the
 * generator waits (about 90 MB of payload at the generator's 609 bytes a log;
 * five seconds at 30,000 logs/s).
 * The topics live in this process's memory: on a machine too slow for the
 * rate asked, the generator slows down rather than the backlog grow until
 * memory runs out or retention drops logs nobody has read.
 */
const MAX_BACKLOG = 150_000;

/**
 * Logs per second of the history backfill when --rate is lower: a default start generates its 30,000 history logs in
 * under two seconds.
 */
const BACKFILL_MIN_RATE = 20_000;

/** Wall milliseconds between the nightly pipeline's looks for analysis jobs the dashboard asked for. */
const ANALYSIS_POLL_MS = 5_000;

/** The pipelines `npm start` runs: the same definitions `npm run pipeline` runs in server mode. */
export const EMBEDDED_PIPELINES = { generate, ingest, vectorize, detect, baselines, nightly, retention, api } as const;

export interface RunSummary {
  readonly generated: number;
  readonly stored: number;
  readonly deadLettered: number;
  readonly vectorizedPatterns: number;
  readonly openAlerts: number;
  readonly reports: number;
  readonly dataDir: string;
}

type StartEmbedded = (
  definition: PipelineDefinition<Resources>,
  options: Record<string, unknown>,
  optional?: boolean,
  scheduler?: SchedulerLike,
) => RunningPipeline;

interface Running {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: EngineMetrics;
  readonly resources: Resources;
  readonly engines: Engines;
  readonly topics: InProcessTopics;
}

export async function runEmbedded(
  rawFlags: Readonly<Record<string, unknown>>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const parsed = startFlagsSchema.safeParse(rawFlags);
  if (!parsed.success)
    throw new ConfigError(
      parsed.error.issues.map((i) =>
        i.code === 'unrecognized_keys'
          ? `unknown option ${i.keys.map((k) => `--${k}`).join(', ')}`
          : `--${i.path.join('.')}: ${i.message}`,
      ),
    );
  const flags = parsed.data;
  const config = loadConfig({
    ...env,
    ...(flags['data-dir'] === undefined ? {} : { LOGFLOW_DATA_DIR: flags['data-dir'] }),
  });
  const dataDir = path.resolve(config.dataDir);
  // Before --reset and before the first line: a second start on a directory in use changes nothing and says only why.
  const lock = await lockDataDir(dataDir);
  try {
    if (flags.reset) await emptyDir(dataDir, [LOCK_FILE_NAME]);
    return await runInDataDir(flags, config, dataDir);
  } finally {
    lock.release();
  }
}

/** Deletes what `dir` holds except the entries named in `keep`. */
async function emptyDir(dir: string, keep: readonly string[]): Promise<void> {
  for (const entry of await readdir(dir))
    if (!keep.includes(entry)) await rm(path.join(dir, entry), { recursive: true, force: true });
}

async function runInDataDir(flags: StartFlags, config: Config, dataDir: string): Promise<number> {
  const interactive = process.stdout.isTTY === true;
  // The terminal shows the live view; the engine's own JSON logs go to a file.
  const logFile = path.join(dataDir, 'logflow.log');
  const { createWriteStream } = await import('node:fs');
  const logStream = createWriteStream(logFile, { flags: 'a' });
  const logger = createLogger({ level: config.logLevel, destination: logStream });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  logger.info({ flags, config: redactedConfig(config) }, 'starting embedded');
  say(`logflow: embedded mode, data in ${dataDir} (logs: ${logFile})`);
  // Before the embedder is chosen, so a start that fetched the model runs with it.
  await fetchModelAtStart(config, { write: (text) => process.stdout.write(text) });
  // Similarity and novelty mean something else with each embedder (README.md, "Local embeddings"): said at once.
  say(`logflow: ${embedderChoice(config).line}`);

  const engines = await openEngines(config, { createDatabases: true });
  await migrateAll(engines, { logsTtlDays: config.logsTtlDays });
  const topics = new InProcessTopics();
  const resources = openResources(config, logger, { topics, engines: Promise.resolve(engines) });
  const metrics = createMetrics();
  const health = new Health();
  // The process, not each pipeline, says when it runs: the bootstrap's backfill and baselines jobs come and go before.
  health.setPhase('starting');
  const server =
    config.metricsPort === 0
      ? undefined
      : await serveMetrics({ metrics, health, port: config.metricsPort }, logger, say);
  const ctx: Running = { config, logger, metrics, resources, engines, topics };
  const running: RunningPipeline[] = [];
  let interrupted = false;
  /** Set when a pipeline fails: the run stops rather than wait forever for it to catch up. */
  let failure: string | undefined;
  const stopping = () => interrupted || failure !== undefined;
  let wake: () => void = () => undefined;
  const interruption = new Promise<void>((resolve) => {
    wake = resolve;
  });
  /** An optional pipeline (the dashboard's API) may fail without stopping the run. */
  const start: StartEmbedded = (definition, options, optional = false, scheduler = undefined) => {
    const r = startPipeline(definition, {
      config,
      logger,
      metrics,
      resources,
      options,
      health,
      ...(scheduler === undefined ? {} : { scheduler }),
    });
    running.push(r);
    void r.done.then((outcome) => {
      if (optional || outcome.status !== 'failed' || failure !== undefined) return;
      failure = `${r.name} failed: ${describeCause(outcome.error)}`;
      say(`\nlogflow: ${failure}; stopping (details in ${logFile})`);
      wake();
    });
    return r;
  };
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    health.setPhase('stopping');
    say('\nstopping: flushing and committing (Ctrl-C again to exit at once)');
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const eventRate = flags.rate / flags.speed;
  // Each run gets its own seed unless one is given: the generator derives log ids from it, and a
  // second start with the same seed would produce the first start's ids again.
  const seed = flags.seed ?? Math.floor(Math.random() * 2 ** 31);
  logger.info({ seed }, 'generator seed');
  const startedAt = Date.now();
  let exitCode = 0;
  let view: NodeJS.Timeout | undefined;
  try {
    // One partition and batches of up to 20,000 rows: chdb's cost per insert (a new part for logs and one
    // per view, then their merges) dominated when four partitions and the 500 ms batch wait cut ~3,000-row inserts;
    // an insert's rows wait off the JS heap (encoded) and reach chdb copied once, into the insert's body.
    start(ingest, { 'batch-size': 20_000, partitions: 1 });
    const dashboard = await startApi(ctx, flags['api-port'] ?? config.apiPort, start, running, say);
    const hasBaselines = (await loadBaselines(engines.clickhouse)).length > 0;
    if (!hasBaselines) {
      say(`bootstrapping: ${Math.round(flags.history / 60_000)} minutes of history for the baselines`);
      const historyStart = startedAt - flags.history;
      // Paced, not as fast as it can: in-process topics hold what ingest has not read yet in memory,
      // and an unpaced backfill ran hundreds of thousands of records ahead of it.
      const backfillSpeed = Math.max(flags.rate, BACKFILL_MIN_RATE) / eventRate;
      const backfill = start(generate, {
        rate: eventRate,
        duration: flags.history,
        speed: backfillSpeed,
        seed,
        flat: true,
        worker: true,
        start: new Date(historyStart).toISOString(),
        progress: false,
        'max-backlog': MAX_BACKLOG,
      });
      await backfill.done;
      await waitUntil(() => caughtUp(ctx, 'ingest'), stopping);
      const computed = start(baselines, { once: true, now: new Date(startedAt).toISOString() });
      await computed.done;
    }
    // The dashboard's address goes into alert notifications as their link.
    const link = dashboard === undefined ? {} : { 'dashboard-url': dashboard };
    start(vectorize, { 'learning-period': flags.history, ...link });
    if (config.alertWebhookUrl !== undefined)
      // The origin only: a webhook's path is its secret (SECURITY.md).
      say(`alert notifications: POST to ${receiverName(config.alertWebhookUrl)} (LOGFLOW_ALERT_WEBHOOK_URL)`);
    start(detect, link);
    // The weekly baselines, the nightly analysis and the hourly retention keep their cron schedules, read in event
    // time: at x20 the baselines refresh every 8.4 hours and a day's analysis comes every 72 minutes.
    const eventTime = new EventTimeScheduler(startedAt, flags.speed);
    start(baselines, {}, false, eventTime);
    start(retention, {}, false, eventTime);
    // Its poll for the jobs the dashboard's "Run analysis" leaves pending is in event time too: 5 wall seconds.
    start(nightly, { 'poll-ms': Math.min(ANALYSIS_POLL_MS * flags.speed, 3_600_000), ...link }, false, eventTime);
    const live = start(generate, {
      rate: eventRate,
      speed: flags.speed,
      seed: seed + 1,
      flat: true,
      worker: true,
      'max-backlog': MAX_BACKLOG,
      start: new Date(startedAt).toISOString(),
      scenario: flags.scenario,
      truth: path.join(dataDir, 'ground-truth.jsonl'),
      progress: false,
      ...(flags.duration === undefined ? { duration: 365 * 86_400_000 } : { duration: flags.duration * flags.speed }),
    });
    health.setPhase('running');
    say(
      `running generate, ingest, vectorize, detect at ${flags.rate} logs/s (event time x${flags.speed})${server === undefined ? '' : `; metrics on http://127.0.0.1:${config.metricsPort}/metrics`}${dashboard === undefined ? '' : `; dashboard on ${dashboard}`}`,
    );
    const lastView: LastView = { at: Date.now(), generated: await recordsOut(ctx, 'generate', 'raw-logs') };
    view = setInterval(
      () =>
        void liveView(ctx, startedAt, lastView, interactive)
          .then((text) => (dashboard === undefined ? text : `${text}  dashboard ${dashboard}`))
          .then((line) => (interactive ? process.stdout.write(`\r\u001b[2K${line}`) : say(line))),
      interactive ? 1_000 : 5_000,
    );
    view.unref();

    let analyzed = false;
    const analyze = async () => {
      if (analyzed) return;
      analyzed = true;
      const date = new Date(startedAt).toISOString().slice(0, 10);
      // A job like the dashboard's, run by the nightly pipeline above.
      const jobs = (await resources.repositories()).analysisJobs;
      const job = await jobs.create({ jobType: 'on_demand', targetDate: date, requestedBy: 'logflow start' });
      let status = job.status;
      await waitUntil(async () => {
        status = (await jobs.get(job.id))?.status ?? 'failed';
        return status === 'completed' || status === 'failed';
      }, stopping);
      if (status === 'completed') say(`\nnightly report for ${date} written`);
      else if (status === 'failed')
        say(`\nnightly report for ${date} failed (analysis job ${job.id}; details in ${logFile})`);
    };
    const analyzeTimer =
      flags['analyze-after'] === undefined ? undefined : setTimeout(() => void analyze(), flags['analyze-after']);

    await Promise.race([live.done, interruption]);
    if (!stopping()) {
      await waitUntil(
        async () =>
          (await caughtUp(ctx, 'ingest')) && (await caughtUp(ctx, 'vectorize')) && (await caughtUp(ctx, 'detect')),
        stopping,
      );
      if (flags['analyze-after'] !== undefined) await analyze();
    }
    if (analyzeTimer !== undefined) clearTimeout(analyzeTimer);
  } catch (error) {
    exitCode = 1;
    logger.error({ err: error }, 'embedded run failed');
    say(`logflow: ${(error as Error).message}`);
  } finally {
    health.setPhase('stopping');
    if (view !== undefined) clearInterval(view);
    const outcomes = await Promise.all([...running].reverse().map((r) => r.stop()));
    if (outcomes.some((o) => o.status === 'failed' || o.status === 'timeout')) exitCode = 1;
    const summary = await summarize(ctx, dataDir).catch(() => undefined);
    if (summary !== undefined) {
      await writeFile(path.join(dataDir, 'last-run.json'), JSON.stringify(summary, null, 2));
      say(
        `\nstored ${summary.stored} logs (${summary.deadLettered} dead-lettered), ${summary.vectorizedPatterns} patterns vectorized, ${summary.openAlerts} open alerts, ${summary.reports} reports; data in ${dataDir}`,
      );
    }
    await resources.close();
    await engines.close();
    server?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    logStream.end();
  }
  return exitCode;
}

/**
 * Serves /metrics, /healthz and /readyz, or says in one line why not: a port
 * in use (often a previous run still stopping, or a pipeline process, which
 * listens on the same default port) used to leave the run without them and
 * without a word.
 */
async function serveMetrics(
  options: Parameters<typeof serveProcessEndpoints>[0],
  logger: Logger,
  say: (line: string) => void,
): Promise<Awaited<ReturnType<typeof serveProcessEndpoints>> | undefined> {
  try {
    return await serveProcessEndpoints(options);
  } catch (error) {
    logger.warn({ err: error, port: options.port }, 'metrics endpoint not served');
    say(`metrics not served: ${describeCause(error)} (choose another port with LOGFLOW_METRICS_PORT, or 0 for none)`);
    return undefined;
  }
}

/** Whether a pipeline's consumer group has committed everything its topic holds. */
async function caughtUp(ctx: Running, pipeline: 'ingest' | 'vectorize' | 'detect'): Promise<boolean> {
  const topic = pipeline === 'vectorize' ? ctx.config.topics.vectorizationQueue : ctx.config.topics.rawLogs;
  const ends = await ctx.topics.endOffsets(topic).catch(() => new Map<number, number>());
  const committed = await ctx.topics.committedOffsets(`${ctx.config.topicPrefix}logflow-${pipeline}`, topic);
  for (const [partition, end] of ends) if ((committed.get(partition) ?? -1) < end) return false;
  return true;
}

async function waitUntil(check: () => Promise<boolean>, stop: () => boolean): Promise<void> {
  while (!stop() && !(await check())) await new Promise((r) => setTimeout(r, 250));
}

async function count(engines: Engines, query: string): Promise<number> {
  const [row] = await (await engines.clickhouse.query({ query, format: 'JSONEachRow' })).json<Record<string, string>>();
  return Number(Object.values(row ?? {})[0] ?? 0);
}

async function summarize(ctx: Running, dataDir: string): Promise<RunSummary> {
  const deadLettered = (await ctx.metrics.deadLetters.get()).values.reduce((a, v) => a + v.value, 0);
  const repositories = await ctx.resources.repositories();
  return {
    generated: await recordsOut(ctx, 'generate', 'raw-logs'),
    stored: await count(ctx.engines, 'SELECT count() FROM logs'),
    deadLettered,
    vectorizedPatterns: await count(ctx.engines, 'SELECT count() FROM error_patterns FINAL WHERE has_embedding = 1'),
    openAlerts: (await repositories.anomalyAlerts.list({ status: 'open', limit: 1_000 })).items.length,
    reports: (await repositories.nightlyReports.list({ limit: 1_000 })).length,
    dataDir,
  };
}

/**
 * The previous live view's reading, so the rate shown is of the last interval (the backfill would skew a running
 * average).
 */
interface LastView {
  at: number;
  generated: number;
}

/** Records a pipeline stage has passed on so far, summed over the metric's other labels. */
async function recordsOut(ctx: Running, pipeline: string, stage: string): Promise<number> {
  return (await ctx.metrics.recordsOut.get()).values
    .filter((v) => v.labels.pipeline === pipeline && v.labels.stage === stage)
    .reduce((a, v) => a + v.value, 0);
}

async function liveView(ctx: Running, startedAt: number, last: LastView, interactive: boolean): Promise<string> {
  const now = Date.now();
  const seconds = Math.max(1, (now - startedAt) / 1000);
  const generated = await recordsOut(ctx, 'generate', 'raw-logs');
  const stored = await recordsOut(ctx, 'ingest', 'clickhouse');
  const embedded = await recordsOut(ctx, 'vectorize', 'embedded');
  const lag = (await ctx.metrics.consumerLag.get()).values
    .filter((v) => v.labels.pipeline === 'ingest')
    .reduce((a, v) => a + v.value, 0);
  const repositories = await ctx.resources.repositories();
  const open = (await repositories.anomalyAlerts.list({ status: 'open', limit: 100 })).items.length;
  const rate = Math.round(((generated - last.generated) * 1000) / Math.max(1, now - last.at));
  last.at = now;
  last.generated = generated;
  const line = `${Math.round(seconds)}s  generated ${generated} (${rate}/s)  stored ${stored}  ingest lag ${lag}  patterns embedded ${embedded}  open alerts ${open}`;
  return interactive ? line : `[logflow] ${line}`;
}

/** Name of the admin key each `npm start` creates for its dashboard link (the previous run's is revoked). */
export const RUN_KEY_NAME = 'npm-start';

/**
 * Starts the API and dashboard and, once it listens, makes a fresh admin key
 * for this run (revoking the previous run's). The URL carrying the key goes
 * to the terminal only, never to the log file. A busy port leaves the rest of
 * the system running and says so.
 */
async function startApi(
  ctx: Running,
  port: number,
  start: StartEmbedded,
  running: RunningPipeline[],
  say: (line: string) => void,
): Promise<string | undefined> {
  if (port === 0) return undefined;
  const host = ctx.config.apiHost === '0.0.0.0' || ctx.config.apiHost === '::' ? '127.0.0.1' : ctx.config.apiHost;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  let onListening: (url: string) => void = () => undefined;
  const listening = new Promise<string>((resolve) => (onListening = resolve));
  const server = start(api, { port, onListening, 'dashboard-url': base }, true);
  const outcome = await Promise.race([server.done, listening]);
  if (typeof outcome !== 'string') {
    // Not a failure of the run: ingest and detection go on without the dashboard, and health does not count it.
    running.splice(running.indexOf(server), 1);
    server.forget();
    const why = outcome.status === 'failed' ? describeCause(outcome.error) : `it ended (${outcome.status})`;
    say(`dashboard not started: ${why} (choose another port with --api-port, or 0 for none)`);
    return undefined;
  }
  const { apiKeys } = await ctx.resources.repositories();
  for (const previous of await apiKeys.list())
    if (previous.name === RUN_KEY_NAME && previous.revokedAt === null) await apiKeys.revoke(previous.id);
  const { key } = await apiKeys.create(RUN_KEY_NAME, 'admin');
  say(`dashboard: ${base}#key=${key}  (admin key for this run; \`npm run keys -- create\` makes lasting ones)`);
  return base;
}
