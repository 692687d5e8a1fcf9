/**
 * detect (the seed's dedicated anomaly-detection service): raw-logs in its
 * own consumer group -> 1-minute event-time windows per (service,
 * environment, level), zero-filled -> scored against anomaly_baselines for
 * the window's hour of day and day of week -> alert lifecycle (pending, open,
 * resolved; dedup key, cooldown, silences) -> anomaly_alerts, and
 * logs.is_anomaly / anomaly_score for the anomalous windows.
 *
 * Chunks flow (src/core/chunk.ts): one partition's records with one
 * acknowledgement. State lives per input partition (raw-logs is keyed by
 * service, so a series' windows live on one partition): each assigned
 * partition runs its own branch, on the state restored for it when it was
 * assigned. Every `--checkpoint-ms` the states are saved with the alert
 * events they emitted, and only then are the chunks they counted acked, so
 * the committed offset never runs ahead of the saved state
 * (src/sinks/detector-checkpoints.ts). Records a restored checkpoint already
 * covers are read again after a restart or a rebalance, and passed by.
 *
 * Event time: a partition that delivers nothing for `--idle-timeout` of
 * processing time is idle, and its watermark then moves on with processing
 * time (read from the pipeline's scheduler), so the windows of a service that
 * stopped, even alone on its partition, still close and its silence is
 * scored. Events behind the watermark are late: counted in no window, but in
 * logflow_late_events_total and in a warning per checkpoint.
 *
 * Notifications: the alert transitions a checkpoint saves queue their webhook
 * in the same transaction; the process's alert notifier sends them
 * (README.md, "Notifications").
 */
import { concat, concatMap, connect, defer, filter, finalize, ignoreElements, map, merge, mergeMap, pipe } from 'rxjs';
import { z } from 'zod';
import { durationMs } from '../core/duration.ts';
import { parseOptions } from '../core/options.ts';
import { definePipeline } from '../core/pipeline.ts';
import type { ScoredWindow } from '../domain/anomaly.ts';
import { seriesEventOf, seriesOfKey, type PartitionDetector, type SeriesEvent } from '../domain/partition-detector.ts';
import { alertLifecycle } from '../operators/alertLifecycle.ts';
import { branchPerPartition } from '../operators/branchPerPartition.ts';
import { flattenChunks } from '../operators/flattenChunks.ts';
import { reportInFlight } from '../operators/reportInFlight.ts';
import { reportLate } from '../operators/reportLate.ts';
import { scoreWindows } from '../operators/scoreWindows.ts';
import { windowByEventTime } from '../operators/windowByEventTime.ts';
import { AlertNotifier } from '../sinks/alert-notifier.ts';
import { DetectorCheckpoints, saveCheckpoints, type DetectorOutput } from '../sinks/detector-checkpoints.ts';
import { consume, thenClose } from '../sources/consume.ts';
import type { ConsumedRecord } from '../sources/topics.ts';
import { partitionAssignments } from '../sources/partition-assignments.ts';
import { DetectorSettingsStore } from '../stores/detector-settings.ts';
import { dashboardUrlOption, notificationTargets } from '../stores/postgres/alert-notifications.ts';
import type { Resources } from './resources.ts';

const optionsSchema = z
  .object({
    'out-of-order': durationMs.default(30_000),
    grace: z.union([z.literal('0'), durationMs]).default(0),
    'idle-timeout': durationMs.default(60_000),
    'checkpoint-ms': z.coerce.number().int().min(10).max(600_000).default(1_000),
    'refresh-ms': z.coerce.number().int().min(100).max(3_600_000).default(30_000),
    partitions: z.coerce.number().int().min(1).max(1_000).default(4),
    'dashboard-url': dashboardUrlOption,
  })
  .strict();

const WINDOW_MS = 60_000;

const isAnomalousSpike = (w: ScoredWindow) => w.anomalous && w.kind === 'spike';

export const detect = definePipeline<Resources>({
  name: 'detect',
  description:
    'raw-logs -> 1-minute event-time windows per service/environment/level -> baselines -> alert lifecycle -> anomaly_alerts',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'detect');
    const windows = {
      sizeMs: WINDOW_MS,
      allowedOutOfOrdernessMs: options['out-of-order'],
      graceMs: typeof options.grace === 'number' ? options.grace : 0,
      keyTtlMs: 6 * 3_600_000,
      idleTimeoutMs: options['idle-timeout'],
      advanceWithProcessingTime: true,
    };

    return defer(async () => {
      const topics = ctx.resources.topics();
      await topics.ensureTopic(ctx.config.topics.rawLogs, options.partitions);
      const engines = await ctx.resources.engines();
      const repositories = await ctx.resources.repositories();
      return { topics, engines, repositories };
    }).pipe(
      mergeMap(({ topics, engines, repositories }) => {
        const { config, metrics, name, logger, scheduler } = ctx;
        const settings = new DetectorSettingsStore(engines.clickhouse, repositories, scheduler);
        // Beside the graph, not in it: a slow or failing receiver delays only the notifications (src/sinks/alert-notifier.ts).
        const notifier = new AlertNotifier(repositories.alertNotifications, {
          logger: logger.child({ component: 'alert-notifier' }),
          metrics,
          pipeline: name,
        }).start();
        const checkpoints = new DetectorCheckpoints(repositories, engines.clickhouse, {
          pipeline: name,
          windows,
          metrics,
          logger,
          notifications: notificationTargets(config, options['dashboard-url']),
          onAlertEvents: () => notifier.wake(),
        });
        const assignments = partitionAssignments({
          assign: async (partitions) => {
            await settings.refresh();
            return checkpoints.restore(partitions, settings.lifecycle);
          },
          revoke: (partitions) => checkpoints.release(partitions),
        });
        const subscription = consume(ctx, topics, config.topics.rawLogs, assignments);

        /** One partition's branch, on its own state: from its chunks to its alert events and anomalous windows. */
        const detectPartition = (detector: PartitionDetector) =>
          pipe(
            flattenChunks({
              fromOffset: detector.restoredUpTo,
              valueOf: (record: ConsumedRecord, now) => seriesEventOf(record.value, now),
              onRead: (nextOffset, records) => detector.read(nextOffset, records),
              scheduler,
            }),
            windowByEventTime<SeriesEvent>({
              state: detector.windows,
              keyOf: (event) => event.key,
              timeOf: (event) => event.time,
              partitionOf: () => detector.partition,
              scheduler,
              // Completion means stopping to resume from the checkpoint, not the end of the data.
              flushOnComplete: false,
            }),
            reportLate((late) => detector.late(late.event.time, late.watermark)),
            scoreWindows({
              parseKey: seriesOfKey,
              baselineFor: settings.baselineFor,
              settingsFor: settings.settingsFor,
              levels: detector.levels,
              runs: detector.runs,
            }),
            connect((scored$) =>
              merge(
                scored$.pipe(
                  filter(isAnomalousSpike),
                  map((window): DetectorOutput => ({ kind: 'anomalous', window })),
                ),
                scored$.pipe(
                  alertLifecycle({ state: detector.lifecycle, isSilenced: settings.isSilenced }),
                  map((event): DetectorOutput => ({ kind: 'alert', detector, event })),
                ),
              ),
            ),
          );

        const graph$ = subscription.chunks$.pipe(
          branchPerPartition(assignments.changes$, detectPartition),
          saveCheckpoints(checkpoints, { everyMs: options['checkpoint-ms'], scheduler }),
          concatMap(() => settings.refreshIfOlderThan(options['refresh-ms'])),
          reportInFlight(
            () => subscription.inFlight.records,
            (records) => metrics.inFlight.set({ pipeline: name }, records),
            { scheduler },
          ),
        );
        // Closed after the graph has saved its last checkpoint, so the notifications it queued get their chance.
        return concat(thenClose(graph$, subscription), defer(() => notifier.close()).pipe(ignoreElements())).pipe(
          finalize(() => void notifier.close()),
        );
      }),
    );
  },
});
