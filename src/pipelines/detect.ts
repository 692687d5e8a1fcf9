/**
 * detect (the seed's dedicated anomaly-detection service): raw-logs in its
 * own consumer group -> 1-minute event-time windows per (service,
 * environment, level), zero-filled -> scored against anomaly_baselines for
 * the window's hour of day and day of week -> alert lifecycle (pending, open,
 * resolved; dedup key, cooldown, silences) -> anomaly_alerts, and
 * logs.is_anomaly / anomaly_score for the anomalous windows.
 *
 * State lives per input partition (raw-logs is keyed by service, so a key's
 * windows live on one partition): each assigned partition runs its own
 * branch of the graph, windowByEventTime -> scoreWindows -> alertLifecycle,
 * on its own WindowState and AlertLifecycleState. Every `--checkpoint-ms` the
 * states are captured and written to PostgreSQL with the alert events they
 * emitted, in one transaction per partition, with the next offset they cover;
 * records are acked only after that, so the committed offset never runs ahead
 * of the saved state. Window state is saved as a changelog (only the keys that
 * changed; see src/domain/window-state.ts), so a checkpoint costs what changed,
 * not all the series held. After a restart or a rebalance the state is
 * restored on assignment and records the checkpoint already covers are skipped.
 *
 * Event time: a partition that delivers nothing for `--idle-timeout` of
 * processing time is idle, and its watermark then moves on with processing
 * time (read from the pipeline's scheduler), so the windows of a service that
 * stopped, even alone on its partition, still close and its silence is
 * scored. Events behind the watermark are late: counted in no window, but in
 * logflow_late_events_total and in a warning per checkpoint.
 */
import { EventEmitter } from 'node:events';
import {
  concatMap,
  connect,
  endWith,
  filter,
  fromEvent,
  ignoreElements,
  map,
  merge,
  mergeMap,
  takeUntil,
  tap,
  defer,
  type Observable,
  type OperatorFunction,
} from 'rxjs';
import { z } from 'zod';
import {
  AlertLifecycleState,
  DEFAULT_DETECTOR_SETTINGS,
  indexBaselines,
  lookupBaseline,
  mergeDetectorSettings,
  serviceDetectorOverrides,
  type AlertEvent,
  type AlertLifecycleSnapshot,
  type BaselineIndex,
  type DetectorSettings,
  type LifecycleSettings,
  type ScoredWindow,
  type SeriesKey,
} from '../domain/anomaly.ts';
import type { Envelope } from '../core/envelope.ts';
import { parseLogEventKey } from '../domain/log-event.ts';
import { batch } from '../operators/batch.ts';
import { alertLifecycle } from '../operators/alertLifecycle.ts';
import { scoreWindows } from '../operators/scoreWindows.ts';
import { reportInFlight } from '../operators/reportInFlight.ts';
import { windowByEventTime, type WindowOutput } from '../operators/windowByEventTime.ts';
import { definePipeline } from '../core/pipeline.ts';
import { InputError } from '../core/errors.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import { loadBaselines } from '../stores/baselines.ts';
import { toClickHouseDateTime } from '../stores/logs-table.ts';
import type { Repositories } from '../stores/postgres/index.ts';
import type { AlertSilence } from '../stores/postgres/alert-silences.ts';
import type { JsonValue } from '../stores/postgres/db.ts';
import type { ConsumedRecord, TopicPartition } from '../sources/topics.ts';
import { WindowState, type WindowResult, type WindowStateChanges } from '../domain/window-state.ts';
import { durationMs } from '../core/duration.ts';
import { consume, thenClose } from '../sources/consume.ts';
import { parseOptions } from '../core/options.ts';
import type { Resources } from './resources.ts';

const optionsSchema = z
  .object({
    'out-of-order': durationMs.default(30_000),
    grace: z.union([z.literal('0'), durationMs]).default(0),
    'idle-timeout': durationMs.default(60_000),
    'checkpoint-ms': z.coerce.number().int().min(10).max(600_000).default(1_000),
    'refresh-ms': z.coerce.number().int().min(100).max(3_600_000).default(30_000),
    partitions: z.coerce.number().int().min(1).max(1_000).default(4),
  })
  .strict();

const WINDOW_MS = 60_000;
const SEPARATOR = '\u0001';

interface PartitionDetector {
  readonly partition: TopicPartition;
  readonly windows: WindowState;
  readonly lifecycle: AlertLifecycleState;
  /** Records below this offset are already in the restored state. */
  readonly restoredUpTo: number;
  /** The next offset the state has not seen; moves as records are counted. */
  nextOffset: number;
  /** What the last checkpoint saved, so an unchanged partition is not written again. */
  savedOffset: number;
  savedWatermark: number;
  /** The store holds no entries of this state yet (fresh, or restored from a whole snapshot): replace them all. */
  replaceEntries: boolean;
  /** Counted since the last checkpoint. */
  applied: number;
  late: number;
  lastLate: { readonly time: number; readonly watermark: number } | undefined;
}

/** What a partition's branch counts: the window key and the event time. */
interface CountedEvent {
  readonly key: string;
  readonly time: number;
}

interface AnomalousWindow {
  readonly service: string;
  readonly environment: string;
  readonly level: string;
  readonly start: number;
  readonly end: number;
  readonly score: number;
}

/** What reaches the checkpoint stage: the records to ack once saved, the alert events to save with them, the windows to flag. */
type DetectItem =
  | Envelope<ConsumedRecord>
  | { readonly kind: 'alert'; readonly detector: PartitionDetector; readonly event: AlertEvent }
  | { readonly kind: 'anomalous'; readonly window: AnomalousWindow };

interface PartitionSave {
  readonly detector: PartitionDetector;
  readonly nextOffset: number;
  readonly windows: WindowStateChanges;
  readonly lifecycle: AlertLifecycleSnapshot;
  readonly replaceEntries: boolean;
  readonly events: AlertEvent[];
}

interface Checkpoint {
  readonly saves: readonly PartitionSave[];
  readonly anomalous: readonly AnomalousWindow[];
  readonly acks: readonly Envelope<ConsumedRecord>[];
  readonly applied: number;
}

/**
 * The checkpoint row's state. Format 2 keeps the window keys in
 * detector_checkpoint_entries; format 1 (whole snapshots, written before the
 * changelog) is still read.
 */
const stateSchema = z.union([
  z.object({ format: z.literal(2), windows: z.unknown(), lifecycle: z.unknown() }),
  z.object({ windows: z.unknown(), lifecycle: z.unknown() }),
]);

const isEnvelope = (item: DetectItem): item is Envelope<ConsumedRecord> => !('kind' in item);

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
        const { config, metrics, name, logger } = ctx;
        const detectors = new Map<number, PartitionDetector>();
        // Assignments arrive as source callbacks; the graph sees them as events.
        const assignments = new EventEmitter().setMaxListeners(0);
        /**
         * Checkpoints captured and not yet written. A partition's entries are written as changes, so its next owner
         * (this instance again, or another) must not load them while an older owner's changes are still on their way.
         */
        let unwritten = 0;
        let onWritten: Array<() => void> = [];
        const allWritten = (): Promise<void> =>
          unwritten === 0 ? Promise.resolve() : new Promise((resolve) => onWritten.push(resolve));
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

        const restoreOne = async (tp: TopicPartition): Promise<PartitionDetector> => {
          const checkpoint = await retry(
            () => repositories.detectorCheckpoints.load(name, tp.topic, tp.partition),
            RETRY_UNTIL_STOPPED,
          );
          const parsed = checkpoint === null ? undefined : stateSchema.safeParse(checkpoint.state);
          let windows: WindowState;
          let replaceEntries = true;
          if (parsed?.success === true && 'format' in parsed.data) {
            const entries = await retry(
              () => repositories.detectorCheckpoints.loadEntries(name, tp.topic, tp.partition),
              RETRY_UNTIL_STOPPED,
            );
            windows = WindowState.fromChangelog(parsed.data.windows, entries, windowOptions);
            replaceEntries = false;
          } else {
            windows =
              parsed?.success === true
                ? WindowState.fromSnapshot(parsed.data.windows, windowOptions)
                : new WindowState(windowOptions);
            windows.startChangelog('nothing');
          }
          const restored = parsed?.success === true;
          const nextOffset = restored ? checkpoint!.nextOffset : 0;
          logger.info({ partition: tp.partition, restored, nextOffset }, 'detector partition assigned');
          return {
            partition: tp,
            windows,
            lifecycle: restored
              ? AlertLifecycleState.fromSnapshot(parsed.data.lifecycle, lifecycleSettings)
              : new AlertLifecycleState(lifecycleSettings),
            restoredUpTo: nextOffset,
            nextOffset,
            savedOffset: nextOffset,
            savedWatermark: windows.watermark,
            replaceEntries,
            applied: 0,
            late: 0,
            lastLate: undefined,
          };
        };

        const subscription = consume(ctx, topics, config.topics.rawLogs, {
          onAssign: async (partitions) => {
            await allWritten();
            await retry(() => refresh(ctx.scheduler.now()), RETRY_UNTIL_STOPPED);
            for (const tp of partitions) {
              const detector = await restoreOne(tp);
              detectors.set(tp.partition, detector);
              assignments.emit('assigned', detector);
            }
          },
          onRevoke: async (partitions) => {
            for (const tp of partitions) {
              const detector = detectors.get(tp.partition);
              detectors.delete(tp.partition);
              if (detector !== undefined) assignments.emit('revoked', detector);
            }
            await allWritten();
          },
        });

        /** Each record of the partition the state has not seen yet, as the key and time it counts under. */
        const countRecords =
          (detector: PartitionDetector): OperatorFunction<Envelope<ConsumedRecord>, CountedEvent> =>
          (records$) =>
            records$.pipe(
              filter(
                (record) =>
                  record.origin.partition === detector.partition.partition &&
                  // Already covered by the restored checkpoint: skipped (and acked with the next checkpoint).
                  record.origin.offset >= detector.restoredUpTo,
              ),
              map((record): CountedEvent | undefined => {
                detector.nextOffset = record.origin.offset + 1;
                detector.applied += 1;
                try {
                  // Only the counting fields, under the same verdict as ingest's full parse.
                  const event = parseLogEventKey(record.value.value, ctx.scheduler.now());
                  return {
                    key: `${event.service}${SEPARATOR}${event.environment}${SEPARATOR}${event.level}`,
                    time: event.timestamp,
                  };
                } catch {
                  // ingest dead-letters invalid records; the detector just does not count them.
                  return undefined;
                }
              }),
              filter((event): event is CountedEvent => event !== undefined),
            );

        /** Closed windows on; late events counted for the metric and the checkpoint's warning. */
        const reportLate =
          (detector: PartitionDetector): OperatorFunction<WindowOutput<CountedEvent>, WindowResult> =>
          (outputs$) =>
            outputs$.pipe(
              tap((output) => {
                if (output.kind !== 'late') return;
                detector.late += 1;
                detector.lastLate = { time: output.event.time, watermark: output.watermark };
              }),
              filter((output): output is WindowResult => output.kind === 'window'),
            );

        const parseKey = (key: string): SeriesKey => {
          const [service, environment, level] = key.split(SEPARATOR);
          if (service === undefined || environment === undefined || level === undefined)
            throw new InputError(`detect: window key ${JSON.stringify(key)} is not service/environment/level`, {
              stage: 'operator',
            });
          return { service, environment, level };
        };

        /** One partition's graph, from its records to its alert events and anomalous windows. */
        const detectPartition =
          (detector: PartitionDetector): OperatorFunction<Envelope<ConsumedRecord>, DetectItem> =>
          (records$) =>
            records$.pipe(
              countRecords(detector),
              windowByEventTime<CountedEvent>({
                state: detector.windows,
                keyOf: (event) => event.key,
                timeOf: (event) => event.time,
                partitionOf: () => detector.partition.partition,
                scheduler: ctx.scheduler,
                // Completion means stopping to resume from the checkpoint, not the end of the data.
                flushOnComplete: false,
              }),
              reportLate(detector),
              scoreWindows({
                parseKey,
                baselineFor: (series, start) => lookupBaseline(baselines, series, start).baseline,
                settingsFor,
              }),
              connect((scored$: Observable<ScoredWindow>) =>
                merge(
                  scored$.pipe(
                    filter((w) => w.anomalous && w.kind === 'spike'),
                    map((w): DetectItem => ({ kind: 'anomalous', window: w })),
                  ),
                  scored$.pipe(
                    alertLifecycle({ state: detector.lifecycle, isSilenced }),
                    map((event): DetectItem => ({ kind: 'alert', detector, event })),
                  ),
                ),
              ),
            );

        /**
         * Taken synchronously when a checkpoint's items are cut (by time only, so never in the middle of a record's
         * synchronous processing): the states then hold exactly the records counted so far and have emitted exactly
         * the alert events in this and earlier checkpoints.
         */
        const capture = (items: readonly DetectItem[]): Checkpoint => {
          const acks: Envelope<ConsumedRecord>[] = [];
          const anomalous: AnomalousWindow[] = [];
          const events = new Map<PartitionDetector, AlertEvent[]>();
          for (const item of items) {
            if (isEnvelope(item)) acks.push(item);
            else if (item.kind === 'anomalous') anomalous.push(item.window);
            else {
              let list = events.get(item.detector);
              if (list === undefined) events.set(item.detector, (list = []));
              list.push(item.event);
            }
          }
          const saves: PartitionSave[] = [];
          let applied = 0;
          for (const detector of detectors.values()) {
            applied += detector.applied;
            detector.applied = 0;
            if (detector.late > 0) {
              metrics.lateEvents.inc({ pipeline: name }, detector.late);
              logger.warn(
                { partition: detector.partition.partition, late: detector.late, example: detector.lastLate },
                'late events: arrived behind the watermark, counted in no window',
              );
              detector.late = 0;
            }
            const own = events.get(detector) ?? [];
            if (
              own.length === 0 &&
              detector.nextOffset === detector.savedOffset &&
              detector.windows.watermark === detector.savedWatermark
            )
              continue;
            saves.push({
              detector,
              nextOffset: detector.nextOffset,
              windows: detector.windows.takeChanges(),
              lifecycle: detector.lifecycle.snapshot(),
              replaceEntries: detector.replaceEntries,
              events: own,
            });
            detector.savedOffset = detector.nextOffset;
            detector.savedWatermark = detector.windows.watermark;
            detector.replaceEntries = false;
          }
          unwritten += 1;
          return { saves, anomalous, acks, applied };
        };

        /** Writes one partition's alert events and its checkpoint in one transaction. */
        const persist = (save: PartitionSave): Promise<number> =>
          repositories.transaction(async (tx) => {
            for (const event of save.events) await applyAlertEvent(tx, event);
            return tx.detectorCheckpoints.saveChanges(
              {
                pipeline: name,
                topic: save.detector.partition.topic,
                partition: save.detector.partition.partition,
                nextOffset: save.nextOffset,
                state: { format: 2, windows: save.windows.header, lifecycle: save.lifecycle } as unknown as JsonValue,
              },
              {
                replaceAll: save.replaceEntries,
                removed: save.windows.removed,
                upserts: save.windows.upserts as ReadonlyMap<string, JsonValue>,
              },
            );
          });

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

        const checkpoint = async (cp: Checkpoint): Promise<void> => {
          try {
            await write(cp);
          } finally {
            unwritten -= 1;
            if (unwritten === 0) {
              const waiting = onWritten;
              onWritten = [];
              for (const resolve of waiting) resolve();
            }
          }
        };

        const write = async (cp: Checkpoint): Promise<void> => {
          let events = 0;
          for (const save of cp.saves) {
            const bytes = await retry(() => persist(save), RETRY_UNTIL_STOPPED);
            metrics.checkpointBytes.inc({ pipeline: name }, bytes);
            events += save.events.length;
          }
          // After the checkpoint: a crash before this line replays the windows, and the UPDATE is idempotent.
          await retry(() => flagAnomalies(cp.anomalous), RETRY_UNTIL_STOPPED);
          for (const record of cp.acks) record.ack();
          if (cp.applied > 0) metrics.recordsIn.inc({ pipeline: name, stage: 'source' }, cp.applied);
          if (events > 0) metrics.recordsOut.inc({ pipeline: name, stage: 'alert-events' }, events);
          const now = ctx.scheduler.now();
          if (now - refreshedAt >= options['refresh-ms']) await retry(() => refresh(now), RETRY_UNTIL_STOPPED);
        };

        const graph$ = subscription.records$.pipe(
          connect((records$) => {
            const ended$ = records$.pipe(ignoreElements(), endWith(true));
            return merge(
              // One branch per assigned partition, for as long as it stays assigned.
              fromEvent(assignments, 'assigned', (detector: PartitionDetector) => detector).pipe(
                takeUntil(ended$),
                mergeMap((detector) =>
                  records$.pipe(
                    takeUntil(fromEvent(assignments, 'revoked').pipe(filter((revoked) => revoked === detector))),
                    detectPartition(detector),
                  ),
                ),
              ),
              // Every record, to be acked once a checkpoint covers it.
              records$,
            );
          }),
          // Cut by time only: a cut by count could fall while a record's closed windows are still on their way to the
          // lifecycle, and capture would save the two states at different points.
          batch<DetectItem>({
            maxRecords: Number.MAX_SAFE_INTEGER,
            maxBytes: Infinity,
            maxWaitMs: options['checkpoint-ms'],
            scheduler: ctx.scheduler,
            sizeOf: () => 0,
          }),
          map(capture),
          concatMap((cp) => checkpoint(cp)),
          reportInFlight(
            () => subscription.inFlight.records,
            (records) => metrics.inFlight.set({ pipeline: name }, records),
            { scheduler: ctx.scheduler },
          ),
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
      : `${event.service} (${event.environment}) ${event.level} logs ${event.rule === 'drop' ? 'down to' : 'at'} ${event.observed} per minute, about ${event.expected.toFixed(1)} usual (score ${event.score.toFixed(1)})`;
  switch (event.type) {
    case 'pending':
    case 'opened': {
      if (active === null) {
        await tx.anomalyAlerts.insert({
          dedupKey: event.dedupKey,
          rule: event.rule,
          alertType: event.rule,
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
