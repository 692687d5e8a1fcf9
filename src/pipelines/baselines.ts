/**
 * baselines: recomputes anomaly_baselines from the last N weeks of zero-filled
 * per-minute counts, on a cron schedule (default Sunday 03:00 UTC, or the
 * baselines.cron app_config entry) inside the long-running process, and on
 * demand with --once.
 */
import { concatMap, defer, ignoreElements, mergeMap, tap } from 'rxjs';
import { z } from 'zod';
import { definePipeline } from '../core/pipeline.ts';
import { retry } from '../core/retry.ts';
import { computeBaselines } from '../stores/baselines.ts';
import { parseCron, scheduledRuns } from '../sources/schedule.ts';
import { parseOptions } from '../core/options.ts';
import type { Resources } from './resources.ts';

const optionsSchema = z
  .object({
    once: z.coerce.boolean().default(false),
    cron: z.string().optional(),
    weeks: z.coerce.number().int().min(1).max(52).optional(),
    now: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();

export const DEFAULT_BASELINES_CRON = '0 3 * * 0';

/** Ten attempts, backing off to a minute: an outage of a few minutes is waited out, a longer one fails the run. */
const RUN_RETRY = { maxAttempts: 10, baseDelayMs: 1_000, maxDelayMs: 60_000, jitter: 'full' } as const;

export const baselines = definePipeline<Resources>({
  name: 'baselines',
  description:
    'anomaly_baselines from zero-filled per-minute counts of the last N weeks (cron, default Sunday 03:00; --once on demand)',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'baselines');
    return defer(async () => {
      const engines = await ctx.resources.engines();
      const repositories = await ctx.resources.repositories();
      const settings = await repositories.appConfig.getAll();
      const cron = options.cron ?? stringSetting(settings.get('baselines.cron')) ?? DEFAULT_BASELINES_CRON;
      parseCron(cron);
      const weeks = options.weeks ?? numberSetting(settings.get('baselines.weeks')) ?? 4;
      const zThreshold = numberSetting(settings.get('anomaly.z_threshold')) ?? 3;
      return { engines, cron, weeks, zThreshold };
    }).pipe(
      mergeMap(({ engines, cron, weeks, zThreshold }) => {
        const runs$ = scheduledRuns(options, cron, ctx);
        if (!options.once) ctx.logger.info({ cron, weeks }, 'baselines scheduled');
        return runs$.pipe(
          concatMap((at) =>
            retry(() => computeBaselines(engines.clickhouse, { now: at.getTime(), weeks, zThreshold }), RUN_RETRY),
          ),
          tap((run) => {
            ctx.logger.info({ ...run }, 'baselines computed');
            ctx.metrics.recordsOut.inc({ pipeline: ctx.name, stage: 'anomaly_baselines' }, run.rows);
          }),
          ignoreElements(),
        );
      }),
    );
  },
});

function stringSetting(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

function numberSetting(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
