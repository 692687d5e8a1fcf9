/**
 * detect (the seed's dedicated anomaly-detection service): raw-logs in its
 * own consumer group -> 1-minute event-time windows per (service,
 * environment, level), zero-filled -> scored against anomaly_baselines for
 * the window's hour of day and day of week -> alert lifecycle (pending, open,
 * resolved; dedup key, cooldown, silences) -> anomaly_alerts, and
 * logs.is_anomaly / anomaly_score for the anomalous windows.
 *
 * State lives per input partition (raw-logs is keyed by service, so a key's
 * windows live on one partition): each partition's windows, watermark and
 * alert lifecycle are checkpointed to PostgreSQL in the same transaction as
 * its alert writes, with the next offset they cover. Records are acked only
 * once a checkpoint covers them, so the committed offset never runs ahead of
 * the saved state; after a restart or a rebalance the state is restored on
 * assignment and records the checkpoint already covers are skipped.
 */
import { concatMap, defer, from, ignoreElements, mergeMap } from 'rxjs';
import { z } from 'zod';
import {
  AlertLifecycleState,
  DEFAULT_DETECTOR_SETTINGS,
  indexBaselines,
  lookupBaseline,
  mergeDetectorSettings,
  score,
  serviceDetectorOverrides,
  type AlertEvent,
  type BaselineIndex,
  type DetectorSettings,
  type LifecycleSettings,
} from '../domain/anomaly.ts';
import type { Envelope } from '../core/envelope.ts';
import { parseLogEventKey } from '../domain/log-event.ts';
import { batch } from '../operators/batch.ts';
import { definePipeline } from '../core/pipeline.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import { loadBaselines } from '../stores/baselines.ts';
import { toClickHouseDateTime } from '../stores/logs-table.ts';
import type { Repositories } from '../stores/postgres/index.ts';
import type { AlertSilence } from '../stores/postgres/alert-silences.ts';
import type { ConsumedRecord, TopicPartition } from '../sources/topics.ts';
import { WindowState, type WindowResult } from '../domain/window-state.ts';
import { durationMs } from '../core/duration.ts';
import { consume, thenClose } from '../sources/consume.ts';
import { parseOptions } from '../core/options.ts';
import type { Resources } from './resources.ts';

const optionsSchema = z
  .object({
    'out-of-order': durationMs.default(30_000),
    grace: z.union([z.literal('0'), durationMs]).default(0),
    'checkpoint-ms': z.coerce.number().int().min(10).max(600_000).default(1_000),
    'refresh-ms': z.coerce.number().int().min(100).max(3_600_000).default(30_000),
    partitions: z.coerce.number().int().min(1).max(1_000).default(4),
  })
  .strict();

const WINDOW_MS = 60_000;
const SEPARATOR = '\u0001';

interface PartitionDetector {
  readonly partition: TopicPartition;
  windows: WindowState;
  lifecycle: AlertLifecycleState;
  /** Records below this offset are already in the restored state. */
  readonly restoredUpTo: number;
  nextOffset: number;
}

interface AnomalousWindow {
  readonly service: string;
  readonly environment: string;
  readonly level: string;
  readonly start: number;
  readonly end: number;
  readonly score: number;
}

const stateSchema = z.object({ windows: z.unknown(), lifecycle: z.unknown() });

export const detect = definePipeline<Resources>({
  name: 'detect',
  description:
    'raw-logs -> 1-minute event-time windows per service/environment/level -> baselines -> alert lifecycle -> anomaly_alerts',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'detect');
    const graceMs = typeof options.grace === 'number' ? options.grace : 0;
    const windowOptions = {
      sizeMs: WINDOW_MS,
      allowedOutOfOrdernessMs: options['out-of-order'],
      graceMs,
      keyTtlMs: 6 * 3_600_000,
    };

    return defer(async () => {
      const topics = ctx.resources.topics();
      await topics.ensureTopic(ctx.config.topics.rawLogs, options.partitions);
      const engines = await ctx.resources.engines();
      const repositories = await ctx.resources.repositories();
      return { topics, engines, repositories };
    }).pipe(
      mergeMap(({ topics, engines, repositories }) => {
        const { config, metrics, name, logger } = ctx;
        const detectors = new Map<number, PartitionDetector>();
        let baselines: BaselineIndex = indexBaselines([]);
        let globalSettings: DetectorSettings = DEFAULT_DETECTOR_SETTINGS;
        let lifecycleSettings: Partial<LifecycleSettings> = {};
        let serviceSettings = new Map<string, DetectorSettings>();
        let silences: readonly AlertSilence[] = [];
        let refreshedAt = -Infinity;

        const refresh = async (now: number) => {
          const [rows, appConfig, services, active] = await Promise.all([
            loadBaselines(engines.clickhouse),
            repositories.appConfig.getAll(),
            repositories.services.list(),
            repositories.alertSilences.listActive(new Date(now)),
          ]);
          baselines = indexBaselines(rows);
          const num = (key: string) => {
            const v = appConfig.get(key);
            return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
          };
          globalSettings = mergeDetectorSettings(DEFAULT_DETECTOR_SETTINGS, {
            ...(num('anomaly.z_threshold') === undefined ? {} : { zThreshold: num('anomaly.z_threshold')! }),
            ...(num('anomaly.min_count') === undefined ? {} : { minCount: num('anomaly.min_count')! }),
          });
          lifecycleSettings = {
            ...(num('anomaly.pending_windows') === undefined
              ? {}
              : { pendingWindows: num('anomaly.pending_windows')! }),
            ...(num('anomaly.resolve_windows') === undefined
              ? {}
              : { resolveWindows: num('anomaly.resolve_windows')! }),
            ...(num('anomaly.cooldown_minutes') === undefined
              ? {}
              : { cooldownMs: num('anomaly.cooldown_minutes')! * 60_000 }),
          };
          serviceSettings = new Map(
            services.map((s) => [s.name, mergeDetectorSettings(globalSettings, serviceDetectorOverrides(s))]),
          );
          silences = active;
          refreshedAt = ctx.scheduler.now();
        };

        const settingsFor = (service: string) => serviceSettings.get(service) ?? globalSettings;
        const isSilenced = (
          alert: { rule: string; service: string; environment: string; level: string; dedupKey: string },
          at: number,
        ) =>
          silences.some(
            (s) =>
              s.startsAt.getTime() <= at &&
              s.expiresAt.getTime() > at &&
              (s.rule === null || s.rule === alert.rule) &&
              (s.service === null || s.service === alert.service) &&
              (s.environment === null || s.environment === alert.environment) &&
              (s.level === null || s.level === alert.level) &&
              (s.dedupKey === null || s.dedupKey === alert.dedupKey),
          );

        const restore = async (partitions: readonly TopicPartition[]) => {
          await retry(() => refresh(ctx.scheduler.now()), RETRY_UNTIL_STOPPED);
          for (const tp of partitions) {
            const checkpoint = await retry(
              () => repositories.detectorCheckpoints.load(name, tp.topic, tp.partition),
              RETRY_UNTIL_STOPPED,
            );
            const parsed = checkpoint === null ? undefined : stateSchema.safeParse(checkpoint.state);
            const restored = parsed?.success === true;
            detectors.set(tp.partition, {
              partition: tp,
              windows: restored
                ? WindowState.fromSnapshot(parsed.data.windows, windowOptions)
                : new WindowState(windowOptions),
              lifecycle: restored
                ? AlertLifecycleState.fromSnapshot(parsed.data.lifecycle, lifecycleSettings)
                : new AlertLifecycleState(lifecycleSettings),
              restoredUpTo: restored ? checkpoint!.nextOffset : 0,
              nextOffset: restored ? checkpoint!.nextOffset : 0,
            });
            logger.info(
              { partition: tp.partition, restored, nextOffset: checkpoint?.nextOffset ?? 0 },
              'detector partition assigned',
            );
          }
        };

        const subscription = consume(ctx, topics, config.topics.rawLogs, {
          onAssign: restore,
          onRevoke: async (partitions) => {
            for (const tp of partitions) detectors.delete(tp.partition);
          },
        });

        /** Writes one partition's alert events and its checkpoint in one transaction. */
        const persist = async (detector: PartitionDetector, events: readonly AlertEvent[]) => {
          const state = { windows: detector.windows.snapshot(), lifecycle: detector.lifecycle.snapshot() };
          const json = JSON.stringify(state);
          metrics.checkpointBytes.inc({ pipeline: name }, Buffer.byteLength(json));
          await repositories.transaction(async (tx) => {
            for (const event of events) await applyAlertEvent(tx, event);
            await tx.detectorCheckpoints.save({
              pipeline: name,
              topic: detector.partition.topic,
              partition: detector.partition.partition,
              nextOffset: detector.nextOffset,
              state: JSON.parse(json) as never,
            });
          });
        };

        /** Marks the rows of anomalous spike windows (silences have no rows to mark). */
        const flagAnomalies = async (windows: readonly AnomalousWindow[]) => {
          for (const w of windows) {
            await engines.clickhouse.command({
              query: `UPDATE logs SET is_anomaly = 1, anomaly_score = {score:Float32}
                      WHERE service = {service:String} AND environment = {environment:String} AND level = {level:String}
                        AND timestamp >= {from:DateTime64(3, 'UTC')} AND timestamp < {to:DateTime64(3, 'UTC')}`,
              query_params: {
                score: w.score,
                service: w.service,
                environment: w.environment,
                level: w.level,
                from: toClickHouseDateTime(w.start),
                to: toClickHouseDateTime(w.end),
              },
            });
          }
        };

        const process = async (records: Envelope<ConsumedRecord>[]) => {
          const now = ctx.scheduler.now();
          if (now - refreshedAt >= options['refresh-ms']) await retry(() => refresh(now), RETRY_UNTIL_STOPPED);
          const touched = new Map<number, AlertEvent[]>();
          // One window sink per partition and batch, not one closure per record.
          const sinks = new Map<number, { window: (w: WindowResult) => void }>();
          const anomalous: AnomalousWindow[] = [];
          const skipped: Envelope<ConsumedRecord>[] = [];
          for (const envelope of records) {
            const detector = detectors.get(envelope.origin.partition);
            // Revoked meanwhile, or already covered by the restored checkpoint.
            if (detector === undefined || envelope.origin.offset < detector.restoredUpTo) {
              skipped.push(envelope);
              continue;
            }
            detector.nextOffset = envelope.origin.offset + 1;
            let sink = sinks.get(envelope.origin.partition);
            if (sink === undefined) {
              const events: AlertEvent[] = [];
              touched.set(envelope.origin.partition, events);
              sink = { window: (w: WindowResult) => events.push(...scoreAndApply(detector, w, anomalous)) };
              sinks.set(envelope.origin.partition, sink);
            }
            let event;
            try {
              // Only the counting fields, under the same verdict as ingest's full parse.
              event = parseLogEventKey(envelope.value.value, now);
            } catch {
              // ingest dead-letters invalid records; the detector just does not count them.
              continue;
            }
            const key = `${event.service}${SEPARATOR}${event.environment}${SEPARATOR}${event.level}`;
            detector.windows.add(key, event.timestamp, 0, 1, now, sink);
          }
          const stats = { events: 0 };
          for (const [partition, events] of touched) {
            const detector = detectors.get(partition)!;
            await retry(() => persist(detector, events), RETRY_UNTIL_STOPPED);
            stats.events += events.length;
          }
          // After the checkpoint: a crash before this line replays the windows, and the UPDATE is idempotent.
          await retry(() => flagAnomalies(anomalous), RETRY_UNTIL_STOPPED);
          for (const r of records) r.ack();
          metrics.recordsIn.inc({ pipeline: name, stage: 'source' }, records.length - skipped.length);
          if (stats.events > 0) metrics.recordsOut.inc({ pipeline: name, stage: 'alert-events' }, stats.events);
        };

        const scoreAndApply = (
          detector: PartitionDetector,
          window: WindowResult,
          anomalous: AnomalousWindow[],
        ): AlertEvent[] => {
          const [service = '', environment = '', level = ''] = window.key.split(SEPARATOR);
          const settings = settingsFor(service);
          const { baseline } = lookupBaseline(baselines, { service, environment, level }, window.start);
          const scored = score(window.count, settings.enabled ? baseline : undefined, settings);
          if (scored.anomalous && scored.kind === 'spike')
            anomalous.push({ service, environment, level, start: window.start, end: window.end, score: scored.score });
          return detector.lifecycle.apply(
            {
              service,
              environment,
              level,
              start: window.start,
              end: window.end,
              count: window.count,
              alerting: settings.alerting,
              ...scored,
            },
            isSilenced,
          );
        };

        const graph$ = subscription.records$.pipe(
          batch({
            maxRecords: 20_000,
            maxBytes: 32 * 1024 * 1024,
            maxWaitMs: options['checkpoint-ms'],
            scheduler: ctx.scheduler,
          }),
          concatMap((records) => from(process(records))),
          ignoreElements(),
        );
        return thenClose(graph$, subscription);
      }),
    );
  },
});

/** One lifecycle event as a row change in anomaly_alerts. */
async function applyAlertEvent(tx: Repositories, event: AlertEvent): Promise<void> {
  const window = { windowStart: new Date(event.windowStart), windowEnd: new Date(event.windowEnd) };
  const measures = {
    score: event.score,
    observed: event.observed,
    expected: event.expected,
    anomalousWindows: event.anomalousWindows,
    normalWindows: event.normalWindows,
  };
  const active = await tx.anomalyAlerts.findActive(event.dedupKey);
  const description =
    event.rule === 'silence'
      ? `${event.service} (${event.environment}) ${event.level} logs stopped: 0 per minute where about ${event.expected.toFixed(1)} are usual`
      : `${event.service} (${event.environment}) ${event.level} logs at ${event.observed} per minute, about ${event.expected.toFixed(1)} usual (score ${event.score.toFixed(1)})`;
  switch (event.type) {
    case 'pending':
    case 'opened': {
      if (active === null) {
        await tx.anomalyAlerts.insert({
          dedupKey: event.dedupKey,
          rule: event.rule,
          alertType: event.rule === 'silence' ? 'silence' : 'spike',
          status: event.type === 'opened' ? 'open' : 'pending',
          severity: event.level === 'FATAL' || event.rule === 'silence' ? 'high' : 'medium',
          service: event.service,
          environment: event.environment,
          level: event.level,
          description,
          details: { silenced: event.silenced },
          ...window,
          ...measures,
          ...(event.type === 'opened' ? { openedAt: new Date(event.windowEnd) } : {}),
        });
      } else {
        if (event.type === 'opened' && active.status === 'pending')
          await tx.anomalyAlerts.open(active.id, new Date(event.windowEnd));
        await tx.anomalyAlerts.touch(active.id, { ...window, ...measures, description });
      }
      return;
    }
    case 'renotify':
      if (active !== null)
        await tx.anomalyAlerts.touch(active.id, { ...window, ...measures, lastNotifiedAt: new Date(event.windowEnd) });
      return;
    case 'resolved':
      if (active !== null) {
        await tx.anomalyAlerts.touch(active.id, { ...measures });
        await tx.anomalyAlerts.resolve(active.id, new Date(event.windowEnd));
      }
      return;
  }
}
