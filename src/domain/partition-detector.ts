/**
 * What detect holds per input partition, and what it counts: the partition's
 * window state, the levels adapting its series' baselines, its series' last
 * windows towards a sparse run and its alert lifecycle, how far into the
 * partition they reach,
 * and what a checkpoint has still to save of them. raw-logs is keyed by
 * service, so a series' windows live on one partition (ARCHITECTURE.md,
 * section 5).
 */
import { InputError } from '../core/errors.ts';
import type { AdaptiveLevels, LevelEntry } from './adaptive-level.ts';
import type { AlertEvent, AlertLifecycleSnapshot, AlertLifecycleState, SeriesKey } from './anomaly.ts';
import { parseLogEventKey } from './log-event.ts';
import { SparseRuns, type SparseRunEntry } from './sparse-runs.ts';
import type { WindowState, WindowStateChanges } from './window-state.ts';

/** What a record counts as: its series' window key and its event time. */
export interface SeriesEvent {
  readonly key: string;
  readonly time: number;
}

const SEPARATOR = '\u0001';

/**
 * The series event of a raw log, or undefined for a record ingest would
 * dead-letter: only the counting fields are read, under the same verdict as
 * ingest's full parse (src/domain/log-event.ts).
 */
export function seriesEventOf(payload: Buffer, now: number): SeriesEvent | undefined {
  try {
    const event = parseLogEventKey(payload, now);
    return { key: `${event.service}${SEPARATOR}${event.environment}${SEPARATOR}${event.level}`, time: event.timestamp };
  } catch {
    return undefined;
  }
}

/** The series a window key (seriesEventOf's `key`) stands for. */
export function seriesOfKey(key: string): SeriesKey {
  const [service, environment, level] = key.split(SEPARATOR);
  if (service === undefined || environment === undefined || level === undefined)
    throw new InputError(`detect: window key ${JSON.stringify(key)} is not service/environment/level`, {
      stage: 'operator',
    });
  return { service, environment, level };
}

/** One partition's part of a checkpoint: its state as changed since the last one, and the alert events it emitted. */
export interface PartitionSave {
  readonly topic: string;
  readonly partition: number;
  readonly nextOffset: number;
  readonly windows: WindowStateChanges;
  /** The adaptive levels of the series observed since the last save. */
  readonly levels: ReadonlyMap<string, LevelEntry>;
  /** The sparse-run entries of the series recorded since the last save. */
  readonly runs: ReadonlyMap<string, SparseRunEntry>;
  readonly lifecycle: AlertLifecycleSnapshot;
  /** The store holds none of this state's entries yet: replace them all. */
  readonly replaceEntries: boolean;
  readonly events: readonly AlertEvent[];
}

export interface LateEvents {
  readonly count: number;
  readonly example: { readonly time: number; readonly watermark: number };
}

export class PartitionDetector {
  #nextOffset: number;
  #savedOffset: number;
  #savedWatermark: number;
  #replaceEntries: boolean;
  #counted = 0;
  #late = 0;
  #lastLate: LateEvents['example'] | undefined;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly windows: WindowState,
    readonly levels: AdaptiveLevels,
    readonly lifecycle: AlertLifecycleState,
    /** Records below this offset are already in the restored state. */
    readonly restoredUpTo: number,
    /** True when the checkpoint store holds none of the state's entries (fresh, or a whole snapshot). */
    replaceEntries: boolean,
    readonly runs: SparseRuns = new SparseRuns(),
  ) {
    this.#nextOffset = restoredUpTo;
    this.#savedOffset = restoredUpTo;
    this.#savedWatermark = windows.watermark;
    this.#replaceEntries = replaceEntries;
  }

  /** The next offset the state has not seen. */
  get nextOffset(): number {
    return this.#nextOffset;
  }

  /** The state now holds every record below `nextOffset`; `records` of them came since the last call. */
  read(nextOffset: number, records: number): void {
    this.#nextOffset = nextOffset;
    this.#counted += records;
  }

  /** An event arrived behind the watermark: counted in no window. */
  late(time: number, watermark: number): void {
    this.#late += 1;
    this.#lastLate = { time, watermark };
  }

  /** Records read since the last call. */
  takeCounted(): number {
    const counted = this.#counted;
    this.#counted = 0;
    return counted;
  }

  /** Late events since the last call, with the last as an example; undefined when there were none. */
  takeLate(): LateEvents | undefined {
    if (this.#late === 0 || this.#lastLate === undefined) return undefined;
    const late = { count: this.#late, example: this.#lastLate };
    this.#late = 0;
    return late;
  }

  /**
   * What a checkpoint taken now saves of this partition, with the alert
   * events it emitted since the last one; undefined when nothing changed. The
   * next call starts from here. Levels and runs move only when windows close,
   * which moves the watermark, so the watermark stands for them here.
   */
  takeSave(events: readonly AlertEvent[]): PartitionSave | undefined {
    if (
      events.length === 0 &&
      this.#nextOffset === this.#savedOffset &&
      this.windows.watermark === this.#savedWatermark
    )
      return undefined;
    const save: PartitionSave = {
      topic: this.topic,
      partition: this.partition,
      nextOffset: this.#nextOffset,
      windows: this.windows.takeChanges(),
      levels: this.levels.takeChanges(),
      runs: this.runs.takeChanges(),
      lifecycle: this.lifecycle.snapshot(),
      replaceEntries: this.#replaceEntries,
      events,
    };
    this.#savedOffset = this.#nextOffset;
    this.#savedWatermark = this.windows.watermark;
    this.#replaceEntries = false;
    return save;
  }
}
