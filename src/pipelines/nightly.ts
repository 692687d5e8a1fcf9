/**
 * nightly (the seed's llm-analyzer): on a cron schedule (default 02:00 UTC,
 * or app_config nightly.cron) for the previous day, on demand for a date
 * (--date, `npm run analyze`), and for analysis_jobs rows the API leaves
 * pending (polled). Each run: the job goes pending -> running ->
 * completed/failed with tokens, model and processing time; the day's
 * statistics; error_patterns upserted; error_catalog entries for new
 * patterns (never overwriting an engineer's edits); the day's statistical
 * anomalies as alerts; an analysis and suggested actions for every open
 * alert without one (LLM within the run's token budget, or statistical); an analysis from the LLM (validated before use) or,
 * without one, a statistical report labelled as such; one nightly_reports
 * row per date, replaced by a re-run.
 *
 * The graph is the pipe in `build`: requests (the given date, or the cron,
 * the poll and a first look) -> their pending jobs, claimed one at a time ->
 * the steps of src/sinks/daily-analysis.ts; a failing job is marked failed
 * and the next one runs.
 */
import {
  catchError,
  concat,
  concatMap,
  defer,
  EMPTY,
  expand,
  from,
  ignoreElements,
  interval,
  map,
  merge,
  mergeMap,
  type Observable,
  of,
  takeUntil,
  takeWhile,
  tap,
} from 'rxjs';
import { z } from 'zod';
import { parseOptions } from '../core/options.ts';
import { definePipeline } from '../core/pipeline.ts';
import { DailyAnalysis, DEFAULT_DAILY_ANALYSIS_OPTIONS } from '../sinks/daily-analysis.ts';
import { vectorNeighbours } from '../sinks/catalog-descriptions.ts';
import { cronSchedule, parseCron } from '../sources/schedule.ts';
import type { AnalysisJob } from '../stores/postgres/analysis-jobs.ts';
import { dashboardUrlOption, notificationTargets } from '../stores/postgres/alert-notifications.ts';
import type { Resources } from './resources.ts';

export type { NightlyResult } from '../sinks/daily-analysis.ts';

const optionsSchema = z
  .object({
    date: z.iso.date().optional(),
    once: z.coerce.boolean().default(false),
    cron: z.string().optional(),
    'dashboard-url': dashboardUrlOption,
    'poll-ms': z.coerce.number().int().min(100).max(3_600_000).default(5_000),
    'token-budget': z.coerce
      .number()
      .int()
      .min(0)
      .max(1_000_000_000)
      .default(DEFAULT_DAILY_ANALYSIS_OPTIONS.tokenBudget),
    'llm-concurrency': z.coerce.number().int().min(1).max(64).default(DEFAULT_DAILY_ANALYSIS_OPTIONS.concurrency),
  })
  .strict();

export const DEFAULT_NIGHTLY_CRON = '0 2 * * *';

/** A job to create before running what is pending, or none: run what the API left pending. */
type Request = { readonly jobType: 'nightly' | 'on_demand'; readonly date: string } | null;

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
        const jobs = repositories.analysisJobs;
        const analysis = new DailyAnalysis(engines, repositories, analyst, ctx.logger, {
          tokenBudget: options['token-budget'],
          concurrency: options['llm-concurrency'],
          notifications: notificationTargets(ctx.config, options['dashboard-url']),
          neighbours: vectorNeighbours(
            ctx.resources.embedder(),
            () => ctx.resources.vectorStore(),
            repositories.errorCatalog,
            ctx.logger,
          ),
        });

        const once = options.once || options.date !== undefined;
        if (!once) ctx.logger.info({ cron }, 'nightly analysis scheduled');
        const requests$: Observable<Request> = once
          ? of({
              jobType: options.date === undefined ? 'nightly' : 'on_demand',
              date: options.date ?? previousDay(new Date(ctx.scheduler.now())),
            })
          : merge(
              of(null),
              cronSchedule(cron, { scheduler: ctx.scheduler }).pipe(
                map((at): Request => ({ jobType: 'nightly', date: previousDay(at) })),
              ),
              interval(options['poll-ms'], ctx.scheduler).pipe(map((): Request => null)),
            ).pipe(takeUntil(ctx.stopping$));

        /** Every pending job, oldest first, each claimed only once the one before it has finished. */
        const pending = (): Observable<AnalysisJob> =>
          defer(() => jobs.claimNextPending()).pipe(
            expand((job) =>
              job === null
                ? EMPTY
                : concat(
                    analyse(job),
                    defer(() => jobs.claimNextPending()),
                  ),
            ),
            takeWhile((job): job is AnalysisJob => job !== null),
            ignoreElements(),
          );

        const analyse = (job: AnalysisJob): Observable<never> =>
          defer(() => analysis.read(job)).pipe(
            concatMap((day) => analysis.writePatterns(day)),
            concatMap((day) => analysis.recordAnomalies(day)),
            // The steps that ask the LLM within the run's token budget, alerts first (README: "What the analysis writes").
            concatMap((day) =>
              defer(() => analysis.analyseAlerts(day)).pipe(
                concatMap((d) => analysis.describePatterns(d)),
                concatMap((d) => analysis.gatherContext(d)),
              ),
            ),
            concatMap((day) => analysis.analyse(day)),
            concatMap((day) => analysis.writeReport(day)),
            tap(() => ctx.metrics.recordsOut.inc({ pipeline: ctx.name, stage: 'nightly_reports' })),
            catchError((error: unknown) => from(analysis.fail(job, error))),
            ignoreElements(),
          );

        return requests$.pipe(
          concatMap((request) =>
            concat(
              request === null
                ? EMPTY
                : from(jobs.create({ jobType: request.jobType, targetDate: request.date, requestedBy: 'logflow' })),
              pending(),
            ),
          ),
          ignoreElements(),
        );
      }),
    );
  },
});
