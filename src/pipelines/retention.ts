/**
 * retention: removes logs past their service's retention (services.retention_days,
 * or the app_config entry retention.logs_days for services with no row), hourly
 * by default (app_config retention.cron, or --cron) inside the long-running
 * process, and on demand with --once. The table's TTL (LOGFLOW_LOGS_TTL_DAYS)
 * stays the longest any log is kept (src/stores/retention.ts).
 */
import { concatMap, defer, ignoreElements, mergeMap, tap } from 'rxjs';
import { z } from 'zod';
import { parseOptions } from '../core/options.ts';
import { definePipeline } from '../core/pipeline.ts';
import { retry } from '../core/retry.ts';
import { parseCron, scheduledRuns } from '../sources/schedule.ts';
import { applyRetention, retentionPlan } from '../stores/retention.ts';
import type { Resources } from './resources.ts';

const optionsSchema = z
  .object({
    once: z.coerce.boolean().default(false),
    cron: z.string().optional(),
    now: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();

export const DEFAULT_RETENTION_CRON = '17 * * * *';

/** A run that cannot reach the stores waits out a few minutes, then fails the run. */
const RUN_RETRY = { maxAttempts: 10, baseDelayMs: 1_000, maxDelayMs: 60_000, jitter: 'full' } as const;

export const retention = definePipeline<Resources>({
  name: 'retention',
  description:
    "removes logs older than their service's retention_days (app_config retention.logs_days for others); hourly, --once on demand",
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'retention');
    return defer(async () => {
      const engines = await ctx.resources.engines();
      const repositories = await ctx.resources.repositories();
      const settings = await repositories.appConfig.getAll();
      const configured = settings.get('retention.cron');
      const cron = options.cron ?? (typeof configured === 'string' ? configured : DEFAULT_RETENTION_CRON);
      parseCron(cron);
      return { engines, repositories, cron };
    }).pipe(
      mergeMap(({ engines, repositories, cron }) => {
        const runs$ = scheduledRuns(options, cron, ctx);
        if (!options.once) ctx.logger.info({ cron }, 'retention scheduled');
        const run = async (at: Date) => {
          // Read each run: retention is edited through the API while the process runs.
          const [services, settings] = await Promise.all([
            repositories.services.list(),
            repositories.appConfig.getAll(),
          ]);
          const configured = settings.get('retention.logs_days');
          const tableTtlDays = ctx.config.logsTtlDays;
          const defaultDays = typeof configured === 'number' ? configured : tableTtlDays;
          const plan = retentionPlan(services, defaultDays, tableTtlDays);
          const registered = services.map((s) => s.name);
          return applyRetention(engines.clickhouse, plan, at.getTime(), registered);
        };
        return runs$.pipe(
          concatMap((at) => retry(() => run(at), RUN_RETRY)),
          tap((result) => {
            ctx.logger.info({ deleted: result.deleted, removed: result.removed }, 'retention applied');
            ctx.metrics.recordsOut.inc({ pipeline: ctx.name, stage: 'logs_deleted' }, result.deleted);
          }),
          ignoreElements(),
        );
      }),
    );
  },
});
