/**
 * detect's checkpoints (ARCHITECTURE.md, section 5): every assigned
 * partition's detector state, restored when the partition is assigned and
 * saved to PostgreSQL in one transaction with the alert events it emitted,
 * with the next offset it covers. Only then are the chunks it counted acked,
 * so the committed offset never runs ahead of the saved state, and an alert
 * event is written exactly when the state that emitted it is: a SIGKILL
 * between the two cannot replay it nor drop it.
 *
 * Window state is saved as a changelog (src/domain/window-state.ts): only
 * the series that changed since the last checkpoint, so its cost follows the
 * change, not the state held. The adaptive levels of the series
 * (src/domain/adaptive-level.ts) are saved the same way, in the same entries
 * table under keys with `LEVEL_ENTRY_PREFIX`; a checkpoint written before them
 * has none, and its series start at their weekly baselines. So are the series'
 * last windows towards a sparse run (src/domain/sparse-runs.ts), under
 * `RUN_ENTRY_PREFIX`; a checkpoint without them restores as no run in progress.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { concatMap, map, pipe, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { z } from 'zod';
import type { Chunk } from '../core/chunk.ts';
import type { Logger } from '../core/logger.ts';
import type { EngineMetrics } from '../core/metrics.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import { AdaptiveLevels } from '../domain/adaptive-level.ts';
import { AlertLifecycleState, type AlertEvent, type LifecycleSettings } from '../domain/anomaly.ts';
import { PartitionDetector, type PartitionSave } from '../domain/partition-detector.ts';
import { SparseRuns } from '../domain/sparse-runs.ts';
import { WindowState, type WindowStateOptions } from '../domain/window-state.ts';
import { batch } from '../operators/batch.ts';
import type { TopicPartition } from '../sources/topics.ts';
import { toClickHouseDateTime } from '../stores/logs-table.ts';
import type { JsonValue } from '../stores/postgres/db.ts';
import type { NotificationTargets } from '../stores/postgres/alert-notifications.ts';
import type { PoolRepositories } from '../stores/postgres/index.ts';
import { applyAlertEvent } from './alert-events.ts';

/** A spike window whose logs are flagged `is_anomaly` once its checkpoint is saved. */
export interface AnomalousWindow {
  readonly service: string;
  readonly environment: string;
  readonly level: string;
  readonly start: number;
  readonly end: number;
  readonly score: number;
}

/** What the detector's graph hands the sink: chunks to ack once saved, alert events to save with them, windows to flag. */
export type DetectorOutput =
  | Chunk<unknown>
  | { readonly kind: 'alert'; readonly detector: PartitionDetector; readonly event: AlertEvent }
  | { readonly kind: 'anomalous'; readonly window: AnomalousWindow };

export interface Checkpoint {
  readonly saves: readonly PartitionSave[];
  readonly anomalous: readonly AnomalousWindow[];
  readonly chunks: readonly Chunk<unknown>[];
  /** Records the detectors read since the last checkpoint. */
  readonly counted: number;
}

export interface DetectorCheckpointsOptions {
  readonly pipeline: string;
  readonly windows: WindowStateOptions;
  readonly metrics: EngineMetrics;
  readonly logger: Logger;
  /** Where the alert events' notifications go (queued in the same transaction); default: nowhere. */
  readonly notifications?: NotificationTargets;
  /** Told after a checkpoint that wrote alert events is saved, so a sender need not wait for its next poll. */
  readonly onAlertEvents?: () => void;
}

/**
 * Marks an adaptive level's entry among the window keys' entries. A window key starts with its service's name, which
 * is letters, digits and `._:-` (src/domain/log-fields.ts), never a control character, so the two cannot collide.
 */
export const LEVEL_ENTRY_PREFIX = '\u0002level\u0002';

/** Marks a sparse run's entry among the window keys' entries, as `LEVEL_ENTRY_PREFIX` does a level's. */
export const RUN_ENTRY_PREFIX = '\u0002run\u0002';

/**
 * The checkpoint row's state. Format 2 keeps the window keys in
 * detector_checkpoint_entries; format 1 (whole snapshots, written before the
 * changelog) is still read.
 */
const stateSchema = z.union([
  z.object({ format: z.literal(2), windows: z.unknown(), lifecycle: z.unknown() }),
  z.object({ windows: z.unknown(), lifecycle: z.unknown() }),
]);

export class DetectorCheckpoints {
  readonly #assigned = new Map<number, PartitionDetector>();
  /**
   * Checkpoints captured and not yet written. A partition's entries are written as changes, so its next owner (this
   * instance again, or another) must not load them while an older owner's changes are still on their way.
   */
  #unwritten = 0;
  #onWritten: Array<() => void> = [];

  constructor(
    private readonly repositories: PoolRepositories,
    private readonly clickhouse: ClickHouseClient,
    private readonly options: DetectorCheckpointsOptions,
  ) {}

  /** The detectors of newly assigned partitions, from their checkpoints once those still on their way have landed. */
  async restore(
    partitions: readonly TopicPartition[],
    lifecycle: Partial<LifecycleSettings>,
  ): Promise<PartitionDetector[]> {
    await this.written();
    const detectors: PartitionDetector[] = [];
    for (const tp of partitions) {
      const detector = await this.restoreOne(tp, lifecycle);
      this.#assigned.set(tp.partition, detector);
      detectors.push(detector);
    }
    return detectors;
  }

  /** Forgets revoked partitions (what they counted since their last checkpoint is read again by the next owner). */
  async release(partitions: readonly TopicPartition[]): Promise<void> {
    for (const tp of partitions) this.#assigned.delete(tp.partition);
    await this.written();
  }

  /**
   * Taken synchronously when a checkpoint's items are cut (by time only, so never in the middle of a chunk's
   * synchronous processing): the states then hold exactly the chunks counted so far and have emitted exactly the alert
   * events in this and earlier checkpoints.
   */
  capture(items: readonly DetectorOutput[]): Checkpoint {
    const { metrics, logger, pipeline } = this.options;
    const chunks: Chunk<unknown>[] = [];
    const anomalous: AnomalousWindow[] = [];
    const events = new Map<PartitionDetector, AlertEvent[]>();
    for (const item of items) {
      if (!('kind' in item)) chunks.push(item);
      else if (item.kind === 'anomalous') anomalous.push(item.window);
      else {
        let list = events.get(item.detector);
        if (list === undefined) events.set(item.detector, (list = []));
        list.push(item.event);
      }
    }
    const saves: PartitionSave[] = [];
    let counted = 0;
    for (const detector of this.#assigned.values()) {
      counted += detector.takeCounted();
      const late = detector.takeLate();
      if (late !== undefined) {
        metrics.lateEvents.inc({ pipeline }, late.count);
        logger.warn(
          { partition: detector.partition, late: late.count, example: late.example },
          'late events: arrived behind the watermark, counted in no window',
        );
      }
      const save = detector.takeSave(events.get(detector) ?? []);
      if (save !== undefined) saves.push(save);
    }
    this.#unwritten += 1;
    return { saves, anomalous, chunks, counted };
  }

  /** Saves a captured checkpoint, flags its anomalous windows, then acks its chunks. */
  async write(cp: Checkpoint): Promise<void> {
    try {
      const { metrics, pipeline } = this.options;
      let events = 0;
      for (const save of cp.saves) {
        const bytes = await retry(() => this.persist(save), RETRY_UNTIL_STOPPED);
        metrics.checkpointBytes.inc({ pipeline }, bytes);
        events += save.events.length;
      }
      // After the checkpoint: a crash before this line replays the windows, and the UPDATE is idempotent.
      await retry(() => this.flag(cp.anomalous), RETRY_UNTIL_STOPPED);
      for (const chunk of cp.chunks) chunk.ack();
      if (cp.counted > 0) metrics.recordsIn.inc({ pipeline, stage: 'source' }, cp.counted);
      if (events > 0) {
        metrics.recordsOut.inc({ pipeline, stage: 'alert-events' }, events);
        this.options.onAlertEvents?.();
      }
    } finally {
      this.#unwritten -= 1;
      if (this.#unwritten === 0) {
        const waiting = this.#onWritten;
        this.#onWritten = [];
        for (const resolve of waiting) resolve();
      }
    }
  }

  private written(): Promise<void> {
    return this.#unwritten === 0 ? Promise.resolve() : new Promise((resolve) => this.#onWritten.push(resolve));
  }

  private async restoreOne(tp: TopicPartition, lifecycle: Partial<LifecycleSettings>): Promise<PartitionDetector> {
    const { pipeline, windows: windowOptions, logger } = this.options;
    const store = this.repositories.detectorCheckpoints;
    const checkpoint = await retry(() => store.load(pipeline, tp.topic, tp.partition), RETRY_UNTIL_STOPPED);
    const parsed = checkpoint === null ? undefined : stateSchema.safeParse(checkpoint.state);
    let windows: WindowState;
    let levels = new AdaptiveLevels();
    let runs = new SparseRuns();
    let replaceEntries = true;
    if (parsed?.success === true && 'format' in parsed.data) {
      const entries = await retry(() => store.loadEntries(pipeline, tp.topic, tp.partition), RETRY_UNTIL_STOPPED);
      const windowEntries: [string, unknown][] = [];
      const levelEntries: [string, unknown][] = [];
      const runEntries: [string, unknown][] = [];
      for (const [key, entry] of entries) {
        if (key.startsWith(LEVEL_ENTRY_PREFIX)) levelEntries.push([key.slice(LEVEL_ENTRY_PREFIX.length), entry]);
        else if (key.startsWith(RUN_ENTRY_PREFIX)) runEntries.push([key.slice(RUN_ENTRY_PREFIX.length), entry]);
        else windowEntries.push([key, entry]);
      }
      windows = WindowState.fromChangelog(parsed.data.windows, windowEntries, windowOptions);
      levels = AdaptiveLevels.fromEntries(levelEntries);
      levels.startChangelog('this state');
      runs = SparseRuns.fromEntries(runEntries);
      runs.startChangelog('this state');
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
    const alerts = restored
      ? AlertLifecycleState.fromSnapshot(parsed.data.lifecycle, lifecycle)
      : new AlertLifecycleState(lifecycle);
    return new PartitionDetector(tp.topic, tp.partition, windows, levels, alerts, nextOffset, replaceEntries, runs);
  }

  /** Writes one partition's alert events and its checkpoint in one transaction. */
  private persist(save: PartitionSave): Promise<number> {
    const upserts = new Map<string, JsonValue>(save.windows.upserts as ReadonlyMap<string, JsonValue>);
    for (const [key, entry] of save.levels) upserts.set(`${LEVEL_ENTRY_PREFIX}${key}`, [...entry]);
    for (const [key, entry] of save.runs) upserts.set(`${RUN_ENTRY_PREFIX}${key}`, [...entry]);
    return this.repositories.transaction(async (tx) => {
      for (const event of save.events) await applyAlertEvent(tx, event, this.options.notifications);
      return tx.detectorCheckpoints.saveChanges(
        {
          pipeline: this.options.pipeline,
          topic: save.topic,
          partition: save.partition,
          nextOffset: save.nextOffset,
          state: { format: 2, windows: save.windows.header, lifecycle: save.lifecycle } as unknown as JsonValue,
        },
        {
          replaceAll: save.replaceEntries,
          removed: save.windows.removed,
          upserts,
        },
      );
    });
  }

  /** Marks the rows of anomalous spike windows (silences have no rows to mark). */
  private async flag(windows: readonly AnomalousWindow[]): Promise<void> {
    for (const w of windows) {
      await this.clickhouse.command({
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
  }
}

/**
 * The sink: every `everyMs` (scheduler time) the items since the last cut are
 * captured with the detectors' states and written; emits once per checkpoint
 * written, after its chunks are acked.
 */
export function saveCheckpoints(
  checkpoints: DetectorCheckpoints,
  options: { readonly everyMs: number; readonly scheduler: SchedulerLike },
): OperatorFunction<DetectorOutput, void> {
  return pipe(
    // Cut by time only: a chunk is passed on before its records are counted, and a cut by count falling between the
    // two would ack a chunk the saved state has not seen.
    batch<DetectorOutput>({
      maxRecords: Number.MAX_SAFE_INTEGER,
      maxBytes: Infinity,
      maxWaitMs: options.everyMs,
      scheduler: options.scheduler,
      sizeOf: () => 0,
    }),
    map((items) => checkpoints.capture(items)),
    concatMap((cp) => checkpoints.write(cp)),
  );
}
