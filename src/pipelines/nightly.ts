/**
 * nightly (the seed's llm-analyzer): on a cron schedule (default 02:00 UTC,
 * or app_config nightly.cron) for the previous day, on demand for a date
 * (--date, `npm run analyze`), and for analysis_jobs rows the API leaves
 * pending (polled). Each run: the job goes pending -> running ->
 * completed/failed with tokens, model and processing time; the day's
 * statistics; error_patterns upserted; error_catalog entries for new
 * patterns (never overwriting an engineer's edits); the day's statistical
 * anomalies as alerts; an analysis from the LLM (validated before use) or,
 * without one, a statistical report labelled as such; one nightly_reports
 * row per date, replaced by a re-run.
 */
import { concatMap, defer, from, ignoreElements, interval, map, merge, mergeMap, of, takeUntil } from 'rxjs';
import { z } from 'zod';
import { DEFAULT_DETECTOR_SETTINGS, score, type Baseline } from '../domain/anomaly.ts';
import { ErrorCodes, LogflowError } from '../core/errors.ts';
import type { AnalysisAnomaly, AnalysisReport, Analyst } from '../clients/llm.ts';
import { createStatisticalAnalyst } from '../clients/llm.ts';
import { definePipeline, type PipelineContext } from '../core/pipeline.ts';
import { DailyAnalytics, dayRange } from '../stores/analytics.ts';
import { loadBaselines } from '../stores/baselines.ts';
import type { Engines } from '../clients/engines.ts';
import { ErrorPatternStore } from '../stores/error-patterns.ts';
import type { AnalysisJob } from '../stores/postgres/analysis-jobs.ts';
import type { PoolRepositories } from '../stores/postgres/index.ts';
import { isUniqueViolation } from '../stores/postgres/db.ts';
import { cronSchedule, parseCron } from '../sources/schedule.ts';
import { parseOptions } from '../core/options.ts';
import type { Resources } from './resources.ts';
import { truncateText } from '../core/text.ts';

const optionsSchema = z
  .object({
    date: z.iso.date().optional(),
    once: z.coerce.boolean().default(false),
    cron: z.string().optional(),
    'poll-ms': z.coerce.number().int().min(100).max(3_600_000).default(5_000),
  })
  .strict();

export const DEFAULT_NIGHTLY_CRON = '0 2 * * *';
const TOP_PATTERNS = 50;
const MAX_STATISTICAL_ALERTS = 20;

export interface NightlyResult {
  readonly jobId: number;
  readonly date: string;
  readonly producedBy: 'llm' | 'statistical';
  readonly llmError?: string;
}

/** The UTC date before `at`. */
export function previousDay(at: Date): string {
  return new Date(at.getTime() - 86_400_000).toISOString().slice(0, 10);
}

export const nightly = definePipeline<Resources>({
  name: 'nightly',
  description:
    'the daily analysis (cron, default 02:00 UTC; --date for one day): statistics, patterns, catalog, anomalies, LLM or statistical report',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'nightly');
    return defer(async () => {
      const engines = await ctx.resources.engines();
      const repositories = await ctx.resources.repositories();
      const settings = await repositories.appConfig.getAll();
      const configured = settings.get('nightly.cron');
      const cron = options.cron ?? (typeof configured === 'string' ? configured : DEFAULT_NIGHTLY_CRON);
      parseCron(cron);
      return { engines, repositories, cron, analyst: ctx.resources.analyst() };
    }).pipe(
      mergeMap(({ engines, repositories, cron, analyst }) => {
        const run = (job: AnalysisJob) => runJob(ctx, engines, repositories, analyst, job);
        /** Runs every pending job, oldest first; a job created by the caller is among them. */
        const drain = async () => {
          for (
            let job = await repositories.analysisJobs.claimNextPending();
            job !== null;
            job = await repositories.analysisJobs.claimNextPending()
          ) {
            await run(job);
          }
        };
        const request = async (jobType: 'nightly' | 'on_demand', date: string) => {
          await repositories.analysisJobs.create({ jobType, targetDate: date, requestedBy: 'logflow' });
          await drain();
        };
        if (options.once || options.date !== undefined) {
          const date = options.date ?? previousDay(new Date(ctx.scheduler.now()));
          return from(request(options.date === undefined ? 'nightly' : 'on_demand', date)).pipe(ignoreElements());
        }
        ctx.logger.info({ cron }, 'nightly analysis scheduled');
        const scheduled$ = cronSchedule(cron, { scheduler: ctx.scheduler }).pipe(
          map((at) => () => request('nightly', previousDay(at))),
        );
        const polled$ = interval(options['poll-ms'], ctx.scheduler).pipe(map(() => drain));
        return merge(of(drain), scheduled$, polled$).pipe(
          takeUntil(ctx.stopping$),
          concatMap((task) => from(task())),
          ignoreElements(),
        );
      }),
    );
  },
});

async function runJob(
  ctx: PipelineContext<Resources>,
  engines: Engines,
  repositories: PoolRepositories,
  analyst: Analyst,
  job: AnalysisJob,
): Promise<NightlyResult | undefined> {
  const started = Date.now();
  const logger = ctx.logger.child({ jobId: job.id, date: job.targetDate });
  try {
    const range = dayRange(job.targetDate);
    const analytics = new DailyAnalytics(engines.clickhouse);
    const statistics = await analytics.statistics(range);
    const patterns = await analytics.errorPatterns(range);

    // error_patterns: all-time counts (so a re-run writes the same numbers), embedding state kept.
    const store = new ErrorPatternStore(engines.clickhouse);
    const hashes = patterns.map((p) => p.errorHash);
    const [existing, totals] = await Promise.all([store.get(hashes), analytics.totals(hashes)]);
    await store.upsert(
      patterns.map((p) => {
        const prior = existing.get(p.errorHash);
        const total = totals.get(p.errorHash);
        return {
          error_hash: p.errorHash,
          template: p.template,
          sample_message: prior?.sample_message ?? truncateText(p.sampleMessage, 4_096),
          services: [...new Set([...(prior?.services ?? []), ...p.services])].sort(),
          level: p.level,
          first_seen: total?.first ?? p.firstSeen,
          last_seen: total?.last ?? p.lastSeen,
          occurrence_count: String(total?.count ?? p.occurrences),
          has_embedding: prior?.has_embedding ?? 0,
          qdrant_point_id: prior?.qdrant_point_id ?? '',
        };
      }),
    );
    for (const p of patterns) {
      const total = totals.get(p.errorHash);
      await repositories.errorCatalog.upsertAutoCreated({
        errorHash: p.errorHash,
        template: p.template,
        title: truncateText(p.template, 120),
        description: `Seen ${p.occurrences} times on ${job.targetDate} in ${p.services.join(', ')}.`,
        severity: p.level === 'FATAL' ? 'critical' : 'medium',
        services: p.services,
        occurrenceCount: total?.count ?? p.occurrences,
        firstSeen: new Date(`${(total?.first ?? p.firstSeen).replace(' ', 'T')}Z`),
        lastSeen: new Date(`${(total?.last ?? p.lastSeen).replace(' ', 'T')}Z`),
      });
    }

    const anomalies = await statisticalAnomalies(analytics, engines, range);
    for (const a of anomalies.slice(0, MAX_STATISTICAL_ALERTS))
      await recordStatisticalAlert(repositories, job.targetDate, a);

    const input = {
      date: job.targetDate,
      statistics: { ...statistics, anomaliesDetected: anomalies.length },
      topPatterns: patterns.slice(0, TOP_PATTERNS),
      anomalies,
    };
    let report: AnalysisReport;
    let producedBy: 'llm' | 'statistical' = analyst.producedBy;
    let model: string | null;
    let tokensUsed = 0;
    let llmError: string | undefined;
    try {
      const analysed = await analyst.analyze(input);
      report = analysed.report;
      model = analysed.model;
      tokensUsed = analysed.tokensUsed;
    } catch (error) {
      // An LLM answer that fails validation is recorded and never used; the day still gets its statistical report.
      if (!(error instanceof LogflowError) || (error.code !== ErrorCodes.LLM_OUTPUT_INVALID && !error.retriable))
        throw error;
      llmError = `${error.code}: ${error.message}`;
      tokensUsed = Number((error.details as { tokensUsed?: unknown } | undefined)?.tokensUsed ?? 0) || 0;
      logger.warn({ err: error }, 'LLM analysis unusable; writing the statistical report instead');
      const fallback = await createStatisticalAnalyst().analyze(input);
      report = fallback.report;
      model = null;
      producedBy = 'statistical';
    }

    await repositories.nightlyReports.upsertForDate({
      reportDate: job.targetDate,
      jobId: job.id,
      producedBy,
      modelUsed: model,
      summary: report.summary,
      keyIssues: report.keyIssues,
      probableCauses: report.probableCauses,
      recommendations: report.recommendations,
      patternSeverity: report.patternSeverity,
      statistics: JSON.parse(JSON.stringify(input.statistics)) as never,
      totalLogs: statistics.totalLogs,
      totalErrors: statistics.totalErrors,
      errorRate: statistics.errorRate,
      uniquePatterns: statistics.uniquePatterns,
      anomaliesDetected: anomalies.length,
      tokensUsed,
    });
    await repositories.analysisJobs.complete(job.id, {
      tokensUsed,
      modelUsed: model,
      processingTimeMs: Date.now() - started,
      result: {
        producedBy,
        patterns: patterns.length,
        anomalies: anomalies.length,
        ...(llmError === undefined ? {} : { llmError }),
      },
    });
    ctx.metrics.recordsOut.inc({ pipeline: ctx.name, stage: 'nightly_reports' });
    logger.info(
      { producedBy, patterns: patterns.length, anomalies: anomalies.length, tokensUsed },
      'nightly analysis written',
    );
    return { jobId: job.id, date: job.targetDate, producedBy, ...(llmError === undefined ? {} : { llmError }) };
  } catch (error) {
    logger.error({ err: error }, 'nightly analysis failed');
    await repositories.analysisJobs
      .fail(job.id, error instanceof Error ? error.message : String(error))
      .catch(() => undefined);
    return undefined;
  }
}

/** Hours of the day whose count is anomalous against the per-minute baseline scaled to an hour. */
async function statisticalAnomalies(
  analytics: DailyAnalytics,
  engines: Engines,
  range: { from: number; to: number },
): Promise<AnalysisAnomaly[]> {
  const [hours, baselines] = await Promise.all([analytics.hourlyCounts(range), loadBaselines(engines.clickhouse)]);
  const bySlot = new Map(
    baselines.map((b) => [`${b.service}|${b.environment}|${b.level}|${b.hourOfDay}|${b.dayOfWeek}`, b]),
  );
  const found: AnalysisAnomaly[] = [];
  for (const h of hours) {
    const at = new Date(h.hour);
    const day = ((at.getUTCDay() + 6) % 7) + 1;
    const b = bySlot.get(`${h.service}|${h.environment}|${h.level}|${at.getUTCHours()}|${day}`);
    if (b === undefined) continue;
    // Sixty independent minutes: the mean scales by 60, the spread by sqrt(60).
    const hourly: Baseline = {
      ...b,
      mean: b.mean * 60,
      stddev: b.stddev * Math.sqrt(60),
      median: b.median * 60,
      p95: b.p95 * 60,
      p99: b.p99 * 60,
      upperThreshold: b.upperThreshold * 60,
      lowerThreshold: b.lowerThreshold * 60,
    };
    const s = score(h.count, hourly, DEFAULT_DETECTOR_SETTINGS);
    if (s.anomalous && s.kind !== null) {
      found.push({
        service: h.service,
        environment: h.environment,
        level: h.level,
        kind: s.kind,
        score: s.score,
        windowStart: at.toISOString(),
      });
    }
  }
  return found.sort((a, b) => Math.abs(b.score) - Math.abs(a.score));
}

async function recordStatisticalAlert(repositories: PoolRepositories, date: string, a: AnalysisAnomaly): Promise<void> {
  const dedupKey = `statistical:${date}:${a.kind}:${a.service}:${a.environment}:${a.level}`;
  if ((await repositories.anomalyAlerts.findActive(dedupKey)) !== null) return;
  try {
    await repositories.anomalyAlerts.insert({
      dedupKey,
      rule: `statistical_${a.kind}`,
      alertType: 'statistical',
      status: 'open',
      severity: 'medium',
      service: a.service,
      environment: a.environment,
      level: a.level,
      score: a.score,
      windowStart: new Date(a.windowStart),
      windowEnd: new Date(Date.parse(a.windowStart) + 3_600_000),
      description: `Nightly analysis of ${date}: ${a.service} (${a.environment}) ${a.level} ${a.kind} in the hour from ${a.windowStart}`,
    });
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
  }
}
