/**
 * Event-time window bookkeeping with Kafka Streams / Flink semantics, free of
 * RxJS so the hot path stays a handful of array writes per event and the
 * state can be checkpointed and restored exactly. The operator
 * `windowByEventTime` drives it; pipelines may also own an instance to call
 * `snapshot()` at checkpoint time.
 *
 * Model. Time is cut into panes of `advanceMs` aligned to the epoch; a window
 * is `panesPerWindow = sizeMs / advanceMs` consecutive panes, window `w`
 * covering [w * advanceMs, w * advanceMs + sizeMs). An event increments the
 * one pane it falls in, so hopping windows cost no more per event than
 * tumbling ones; a window's count is the sum of its panes when it closes.
 *
 * Watermark. Per partition: the highest event time seen. The effective
 * watermark is the minimum over non-idle partitions minus
 * `allowedOutOfOrdernessMs`, and never goes backwards. A partition that has
 * had no event for `idleTimeoutMs` of processing time stops holding it back
 * and rejoins with its next event. When every partition is idle the
 * watermark moves to the highest event time of all partitions (Flink's
 * valve does the same), and with `advanceWithProcessingTime` it then keeps
 * moving at the pace of processing time, so a silent stream still closes
 * windows.
 *
 * Closing. Window [start, end) closes when watermark >= end + grace and
 * yields exactly one result per known key. One advance that closes several
 * windows yields them ordered by (end, key), comparing keys by UTF-16 code
 * units, so the whole result stream is sorted by (end, key).
 *
 * Zero-fill and key expiry. A key is remembered for `keyTtlMs` of event time
 * after the start of the last pane it had events in: every window starting
 * less than `keyTtlMs` after that pane's start is emitted, with count 0 when
 * empty, from the key's first window on. Past that the key is forgotten
 * (counted as expired) and a later event starts it afresh. This is decided
 * from panes that are complete when the window closes, so it does not depend
 * on arrival order. `maxKeys` bounds the keys held: the least recently seen
 * key is evicted, its pending counts are lost and counted.
 *
 * Late events. An event whose every window is closed is late: it is counted
 * in no window, the caller routes it to a late output, and the counter
 * `lateEvents` counts it. For hopping windows an event some of whose windows
 * are still open is counted in those and is not late (Flink's choice, so the
 * late output holds exactly the events counted nowhere); `partiallyLateEvents`
 * counts them.
 *
 * Changelog. Besides whole snapshots, the state can be checkpointed as a
 * changelog (Kafka Streams' state stores do the same): a small header (watermark,
 * partitions, counters) plus one entry per key, and each checkpoint writes only
 * the entries of keys that received events, were created or were removed since
 * the previous one (`startChangelog`, `takeChanges`). Closing windows changes
 * every key, but only in a way the key's own entry determines (its ring moves on,
 * zero-filled), so that is not written: on restore each entry is caught up to the
 * header's closed-window mark by the same per-key closing steps
 * (`fromChangelog`), which gives exactly the state the live instance held.
 */
import { z } from 'zod';
import { ErrorCodes, InputError, LogflowError } from '../core/errors.ts';

export interface WindowStateOptions {
  /** Window length, ms; a positive integer. */
  readonly sizeMs: number;
  /** Hop between window starts, ms; divides `sizeMs`. Defaults to `sizeMs` (tumbling). */
  readonly advanceMs?: number;
  /** How far behind a partition's highest event time an event may still arrive; default 0. */
  readonly allowedOutOfOrdernessMs?: number;
  /** Extra event time a window waits after its end before closing; default 0. */
  readonly graceMs?: number;
  /** Processing time without events after which a partition stops holding the watermark; default Infinity (never). */
  readonly idleTimeoutMs?: number;
  /** See the zero-fill paragraph above; default one hour. `Infinity` keeps keys until evicted. */
  readonly keyTtlMs?: number;
  /** Bound on keys held; default 100,000. */
  readonly maxKeys?: number;
  /** When all partitions are idle, let the watermark advance with processing time; needs a finite `idleTimeoutMs`. */
  readonly advanceWithProcessingTime?: boolean;
  /**
   * Partitions that hold the watermark back from the start, before their first
   * event (e.g. the partitions assigned to this instance), until they deliver
   * or go idle. Their idle clock starts at the first processing time the
   * state is given (`resume` or `advanceProcessingTime`).
   */
  readonly expectedPartitions?: readonly number[];
}

export interface ResolvedWindowOptions {
  readonly sizeMs: number;
  readonly advanceMs: number;
  readonly panesPerWindow: number;
  readonly allowedOutOfOrdernessMs: number;
  readonly graceMs: number;
  readonly idleTimeoutMs: number;
  readonly keyTtlMs: number;
  readonly maxKeys: number;
  readonly advanceWithProcessingTime: boolean;
  readonly expectedPartitions: readonly number[];
}

export interface WindowResult {
  readonly kind: 'window';
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly count: number;
}

/** Receives results once the state is consistent again, so a sink may call `snapshot()` from inside. */
export interface WindowSink {
  window(result: WindowResult): void;
  /** Called after each advance that closed windows (even if no key had one). */
  watermark?(watermark: number): void;
}

export interface WindowCounters {
  /** Every event offered, late ones included. */
  readonly events: number;
  readonly lateEvents: number;
  readonly partiallyLateEvents: number;
  readonly windowsEmitted: number;
  readonly expiredKeys: number;
  readonly evictedKeys: number;
  /** Sum of the weights of events lost with evicted keys' open panes. */
  readonly evictedWeight: number;
}

const snapshotSchema = z.object({
  version: z.literal(1),
  sizeMs: z.number(),
  advanceMs: z.number(),
  watermark: z.number().nullable(),
  closedBelow: z.number().nullable(),
  lastNow: z.number().nullable(),
  seq: z.number(),
  partitions: z.array(
    z.object({
      id: z.number(),
      maxTime: z.number().nullable(),
      lastActivity: z.number().nullable(),
      idle: z.boolean(),
    }),
  ),
  keys: z.array(
    z.object({
      key: z.string(),
      nextWindow: z.number(),
      lastActivePane: z.number().nullable(),
      maxPane: z.number(),
      lastSeenSeq: z.number(),
      panes: z.array(z.tuple([z.number(), z.number()])),
    }),
  ),
  counters: z.object({
    events: z.number(),
    lateEvents: z.number(),
    partiallyLateEvents: z.number(),
    windowsEmitted: z.number(),
    expiredKeys: z.number(),
    evictedKeys: z.number(),
    evictedWeight: z.number(),
  }),
});

/**
 * JSON-serializable; unbounded values (no watermark yet, say) are null. Pane and window numbers are indices in units of
 * `advanceMs`.
 */
export type WindowStateSnapshot = z.infer<typeof snapshotSchema>;

/**
 * One key's changelog entry, compact because a checkpoint may carry thousands:
 * `[nextWindow, lastActivePane | null, maxPane, lastSeenSeq, pane, count, pane, count, ...]`.
 */
export type KeyEntry = readonly (number | null)[];

/** What a changelog checkpoint writes: apply `removed` before `upserts` (a key can be removed and created again). */
export interface WindowStateChanges {
  /** The snapshot without keys; it replaces the previous header whole. */
  readonly header: WindowStateSnapshot;
  readonly upserts: ReadonlyMap<string, KeyEntry>;
  readonly removed: readonly string[];
}

function encodeKey(saved: WindowStateSnapshot['keys'][number]): KeyEntry {
  const entry: (number | null)[] = [saved.nextWindow, saved.lastActivePane, saved.maxPane, saved.lastSeenSeq];
  for (const [pane, count] of saved.panes) entry.push(pane, count);
  return entry;
}

function decodeKey(key: string, entry: KeyEntry): WindowStateSnapshot['keys'][number] {
  const panes: [number, number][] = [];
  for (let i = 4; i + 1 < entry.length; i += 2) panes.push([entry[i] as number, entry[i + 1] as number]);
  return {
    key,
    nextWindow: entry[0] as number,
    lastActivePane: entry[1] ?? null,
    maxPane: entry[2] as number,
    lastSeenSeq: entry[3] as number,
    panes,
  };
}

/**
 * Beyond this many panes ahead of a key's oldest open window, panes live in a sparse map, so a far-future timestamp
 * cannot balloon a ring.
 */
const MAX_DENSE_PANES = 4096;
const MAX_PANES_PER_WINDOW = 1024;
const MIN_RING = 4;

class KeyState {
  head = 0;
  mask: number;
  counts: Float64Array;
  /** A pane can hold events and still sum to 0 (weights), so activity is tracked apart from counts. */
  touched: Uint8Array;
  lastActivePane = -Infinity;
  lastSeenSeq = 0;
  far: Map<number, number> | undefined = undefined;
  farMin = Infinity;
  removed = false;
  /** Changed since the last `takeChanges` (only while a changelog runs). */
  dirty = false;

  constructor(
    readonly key: string,
    /** Oldest window not yet closed for this key; also the pane at ring offset 0. */
    public nextWindow: number,
    capacity: number,
    public maxPane: number,
  ) {
    this.mask = capacity - 1;
    this.counts = new Float64Array(capacity);
    this.touched = new Uint8Array(capacity);
  }
}

class PartitionClock {
  constructor(
    readonly id: number,
    public maxTime: number,
    /** Processing time of the last event; NaN until the clock starts (expected partitions). */
    public lastActivity: number,
    public idle: boolean,
  ) {}
}

type MutableCounters = { -readonly [K in keyof WindowCounters]: WindowCounters[K] };

function nextPowerOfTwo(n: number): number {
  let p = MIN_RING;
  while (p < n) p *= 2;
  return p;
}

function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

function isNonNegativeNumber(value: number): boolean {
  return typeof value === 'number' && value >= 0;
}

export function resolveWindowOptions(options: WindowStateOptions): ResolvedWindowOptions {
  const sizeMs = options.sizeMs;
  const advanceMs = options.advanceMs ?? sizeMs;
  const problems: string[] = [];
  if (!Number.isSafeInteger(sizeMs) || sizeMs <= 0) problems.push(`sizeMs must be a positive integer, got ${sizeMs}`);
  if (!Number.isSafeInteger(advanceMs) || advanceMs <= 0)
    problems.push(`advanceMs must be a positive integer, got ${advanceMs}`);
  else if (sizeMs % advanceMs !== 0) problems.push(`sizeMs (${sizeMs}) must be a multiple of advanceMs (${advanceMs})`);
  else if (sizeMs / advanceMs > MAX_PANES_PER_WINDOW)
    problems.push(`sizeMs / advanceMs must be at most ${MAX_PANES_PER_WINDOW}`);
  const allowedOutOfOrdernessMs = options.allowedOutOfOrdernessMs ?? 0;
  if (!Number.isFinite(allowedOutOfOrdernessMs) || allowedOutOfOrdernessMs < 0)
    problems.push(`allowedOutOfOrdernessMs must be a finite number >= 0, got ${allowedOutOfOrdernessMs}`);
  const graceMs = options.graceMs ?? 0;
  if (!Number.isFinite(graceMs) || graceMs < 0) problems.push(`graceMs must be a finite number >= 0, got ${graceMs}`);
  const idleTimeoutMs = options.idleTimeoutMs ?? Infinity;
  if (!isNonNegativeNumber(idleTimeoutMs) || idleTimeoutMs === 0)
    problems.push(`idleTimeoutMs must be > 0, got ${idleTimeoutMs}`);
  const keyTtlMs = options.keyTtlMs ?? 3_600_000;
  if (!isNonNegativeNumber(keyTtlMs) || keyTtlMs === 0) problems.push(`keyTtlMs must be > 0, got ${keyTtlMs}`);
  const maxKeys = options.maxKeys ?? 100_000;
  if (!(Number.isSafeInteger(maxKeys) || maxKeys === Infinity) || maxKeys < 1)
    problems.push(`maxKeys must be an integer >= 1, got ${maxKeys}`);
  const advanceWithProcessingTime = options.advanceWithProcessingTime ?? false;
  if (advanceWithProcessingTime && !Number.isFinite(idleTimeoutMs))
    problems.push('advanceWithProcessingTime needs a finite idleTimeoutMs');
  const expectedPartitions = [...new Set(options.expectedPartitions ?? [])];
  if (expectedPartitions.some((id) => !Number.isFinite(id))) problems.push('expectedPartitions must be finite numbers');
  if (problems.length > 0) throw new RangeError(`window options: ${problems.join('; ')}`);
  return {
    sizeMs,
    advanceMs,
    panesPerWindow: sizeMs / advanceMs,
    allowedOutOfOrdernessMs,
    graceMs,
    idleTimeoutMs,
    keyTtlMs,
    maxKeys,
    advanceWithProcessingTime,
    expectedPartitions,
  };
}

const byKey = (a: KeyState, b: KeyState): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * The state of one windowing stage. Not shared between concurrent
 * subscriptions. Processing time is whatever clock the caller passes as
 * `now` (the operator passes `scheduler.now()`).
 */
export class WindowState {
  readonly options: ResolvedWindowOptions;

  private readonly advanceMs: number;
  private readonly sizeMs: number;
  private readonly panesPerWindow: number;
  private readonly outOfOrdernessMs: number;
  private readonly graceMs: number;
  private readonly idleTimeoutMs: number;
  /** Windows starting fewer than this many panes after the last active pane are emitted. */
  private readonly zeroFillPanes: number;
  private readonly maxKeys: number;

  private wm = -Infinity;
  /** Every window with a smaller index is closed. */
  private closedBelow = -Infinity;
  /** The watermark at which `closedBelow` next moves; saves a division per event. */
  private nextCloseAt = -Infinity;
  private lastNow = NaN;
  private seq = 0;

  private readonly keys = new Map<string, KeyState>();
  private sortedKeys: KeyState[] = [];
  private sortedKeysDirty = false;

  private changelog = false;
  private changed: KeyState[] = [];
  private readonly removedSinceChanges = new Set<string>();

  private readonly partitions = new Map<number, PartitionClock>();
  private readonly partitionList: PartitionClock[] = [];
  private activeCount = 0;
  /** Minimum `maxTime` over non-idle partitions; Infinity when none is active. */
  private activeMin = Infinity;
  private maxAll = -Infinity;

  private readonly stats: MutableCounters = {
    events: 0,
    lateEvents: 0,
    partiallyLateEvents: 0,
    windowsEmitted: 0,
    expiredKeys: 0,
    evictedKeys: 0,
    evictedWeight: 0,
  };

  constructor(options: WindowStateOptions) {
    this.options = resolveWindowOptions(options);
    this.advanceMs = this.options.advanceMs;
    this.sizeMs = this.options.sizeMs;
    this.panesPerWindow = this.options.panesPerWindow;
    this.outOfOrdernessMs = this.options.allowedOutOfOrdernessMs;
    this.graceMs = this.options.graceMs;
    this.idleTimeoutMs = this.options.idleTimeoutMs;
    this.zeroFillPanes = Math.ceil(this.options.keyTtlMs / this.advanceMs);
    this.maxKeys = this.options.maxKeys;
    for (const id of this.options.expectedPartitions) this.registerPartition(id, NaN);
  }

  /**
   * Rebuilds a state from `snapshot()` output (after a JSON round trip, say).
   * Window geometry must match; the other options may change between runs.
   */
  static fromSnapshot(snapshot: unknown, options: WindowStateOptions): WindowState {
    const parsed = snapshotSchema.safeParse(snapshot);
    if (!parsed.success) {
      throw new LogflowError(ErrorCodes.INPUT_INVALID, `window snapshot is malformed: ${parsed.error.message}`, {
        stage: 'operator',
      });
    }
    const data = parsed.data;
    const state = new WindowState(options);
    if (data.sizeMs !== state.sizeMs || data.advanceMs !== state.advanceMs) {
      throw new LogflowError(
        ErrorCodes.CONFIG_INVALID,
        `window snapshot was taken with sizeMs=${data.sizeMs}, advanceMs=${data.advanceMs}; options say sizeMs=${state.sizeMs}, advanceMs=${state.advanceMs}`,
        { stage: 'operator' },
      );
    }
    state.load(data);
    return state;
  }

  /**
   * Rebuilds a state from a changelog: the last header and the last entry of
   * every key (see the module comment). The changelog runs on from here, with
   * the store holding this state.
   */
  static fromChangelog(
    header: unknown,
    entries: Iterable<readonly [string, unknown]>,
    options: WindowStateOptions,
  ): WindowState {
    const keys: WindowStateSnapshot['keys'] = [];
    for (const [key, entry] of entries) {
      // Element types are checked with the rest of the snapshot in fromSnapshot.
      if (!Array.isArray(entry) || entry.length < 4 || entry.length % 2 !== 0)
        throw new LogflowError(ErrorCodes.INPUT_INVALID, `window changelog entry of key ${key} is malformed`, {
          stage: 'operator',
        });
      keys.push(decodeKey(key, entry));
    }
    const state = WindowState.fromSnapshot(
      typeof header === 'object' && header !== null ? { ...header, keys } : header,
      options,
    );
    state.changelog = true;
    return state;
  }

  get watermark(): number {
    return this.wm;
  }

  get counters(): WindowCounters {
    return { ...this.stats };
  }

  get keyCount(): number {
    return this.keys.size;
  }

  /** True when some partition's idle clock is running, i.e. `nextDeadline()` may be finite. */
  get tracksProcessingTime(): boolean {
    return this.idleTimeoutMs !== Infinity;
  }

  /**
   * Offers one event. Returns false when it is late (counted in no window);
   * windows the event's watermark advance closes go to `sink` first.
   */
  add(key: string, time: number, partition: number, weight: number, now: number, sink: WindowSink): boolean {
    if (!Number.isFinite(time))
      throw new InputError(`event time must be a finite number of epoch ms, got ${time}`, {
        stage: 'operator',
        details: { key },
      });
    if (!Number.isFinite(weight))
      throw new InputError(`event weight must be finite, got ${weight}`, { stage: 'operator', details: { key } });
    this.stats.events += 1;
    this.lastNow = now;
    let part = this.partitions.get(partition);
    if (part === undefined) {
      part = this.registerPartition(partition, now);
    } else {
      part.lastActivity = now;
      if (part.idle) this.rejoin(part);
    }
    const pane = Math.floor(time / this.advanceMs);
    let accepted = true;
    if (pane < this.closedBelow) {
      this.stats.lateEvents += 1;
      accepted = false;
    } else {
      if (pane - this.panesPerWindow + 1 < this.closedBelow) this.stats.partiallyLateEvents += 1;
      this.place(key, pane, weight);
    }
    if (time > part.maxTime) {
      const previous = part.maxTime;
      part.maxTime = time;
      if (time > this.maxAll) this.maxAll = time;
      if (previous === this.activeMin) {
        this.activeMin = this.scanActiveMin();
        this.raiseWatermark(this.activeMin - this.outOfOrdernessMs, sink);
      }
    }
    return accepted;
  }

  /** Marks partitions idle whose timeout has passed and advances the watermark accordingly. */
  advanceProcessingTime(now: number, sink: WindowSink): void {
    this.lastNow = now;
    let changed = false;
    for (const part of this.partitionList) {
      if (Number.isNaN(part.lastActivity)) part.lastActivity = now;
      if (!part.idle && now - part.lastActivity >= this.idleTimeoutMs) {
        part.idle = true;
        this.activeCount -= 1;
        changed = true;
      }
    }
    if (changed) this.activeMin = this.scanActiveMin();
    this.raiseWatermark(this.watermarkCandidate(now), sink);
  }

  /**
   * The processing time at which `advanceProcessingTime` next has something
   * to do (a partition going idle, or a processing-time advance closing a
   * window); Infinity when nothing is pending.
   */
  nextDeadline(): number {
    if (this.activeCount > 0) {
      if (this.idleTimeoutMs === Infinity) return Infinity;
      let earliest = Infinity;
      for (const part of this.partitionList) {
        if (!part.idle && !Number.isNaN(part.lastActivity))
          earliest = Math.min(earliest, part.lastActivity + this.idleTimeoutMs);
      }
      return earliest;
    }
    if (!this.options.advanceWithProcessingTime || this.partitionList.length === 0 || this.maxAll === -Infinity)
      return Infinity;
    return this.allIdleSince() + (this.nextCloseAt - (this.maxAll - this.outOfOrdernessMs));
  }

  /**
   * Call when processing resumes (subscription, restore): time that passed
   * while nobody was processing does not count as idleness, so restored
   * partitions get their full idle timeout to deliver again.
   */
  resume(now: number): void {
    const shift = Number.isNaN(this.lastNow) ? 0 : now - this.lastNow;
    for (const part of this.partitionList) {
      part.lastActivity = Number.isNaN(part.lastActivity) ? now : part.lastActivity + shift;
    }
    this.lastNow = now;
  }

  /**
   * End of input: closes every window that overlaps the observed event time,
   * i.e. advances the watermark to the end (+ grace) of the last window
   * containing the highest event time seen. Zero-fill applies up to there, not
   * beyond. The state stays usable; those windows are simply closed.
   */
  flush(sink: WindowSink): void {
    if (this.maxAll === -Infinity) return;
    const target = Math.floor(this.maxAll / this.advanceMs) + 1;
    if (target <= this.closedBelow) return;
    this.wm = Math.max(this.wm, (target - 1 + this.panesPerWindow) * this.advanceMs + this.graceMs);
    this.closeBelow(target, sink);
  }

  snapshot(): WindowStateSnapshot {
    const keys: WindowStateSnapshot['keys'] = [];
    for (const ks of this.sortedKeys) if (!ks.removed) keys.push(this.keySnapshot(ks));
    return this.header(keys);
  }

  /**
   * Starts (or restarts) the changelog. `storeHolds: 'nothing'` when the store
   * the changes go to is empty, so the first `takeChanges` carries every key;
   * `'this state'` when it already holds what this state is.
   */
  startChangelog(storeHolds: 'nothing' | 'this state'): void {
    this.changelog = true;
    for (const ks of this.changed) ks.dirty = false;
    this.changed = [];
    this.removedSinceChanges.clear();
    if (storeHolds === 'this state') return;
    for (const ks of this.keys.values()) {
      ks.dirty = true;
      this.changed.push(ks);
    }
  }

  /** What changed since the last call (or `startChangelog`); the next call starts from here. */
  takeChanges(): WindowStateChanges {
    if (!this.changelog) throw new Error('takeChanges needs startChangelog first');
    const upserts = new Map<string, KeyEntry>();
    for (const ks of this.changed) {
      ks.dirty = false;
      if (!ks.removed) upserts.set(ks.key, encodeKey(this.keySnapshot(ks)));
    }
    this.changed = [];
    const removed = [...this.removedSinceChanges].filter((key) => !upserts.has(key));
    this.removedSinceChanges.clear();
    return { header: this.header([]), upserts, removed };
  }

  private keySnapshot(ks: KeyState): WindowStateSnapshot['keys'][number] {
    return {
      key: ks.key,
      nextWindow: ks.nextWindow,
      lastActivePane: finiteOrNull(ks.lastActivePane),
      maxPane: ks.maxPane,
      lastSeenSeq: ks.lastSeenSeq,
      panes: this.collectPanes(ks),
    };
  }

  private header(keys: WindowStateSnapshot['keys']): WindowStateSnapshot {
    return {
      version: 1,
      sizeMs: this.sizeMs,
      advanceMs: this.advanceMs,
      watermark: finiteOrNull(this.wm),
      closedBelow: finiteOrNull(this.closedBelow),
      lastNow: finiteOrNull(this.lastNow),
      seq: this.seq,
      partitions: this.partitionList.map((part) => ({
        id: part.id,
        maxTime: finiteOrNull(part.maxTime),
        lastActivity: finiteOrNull(part.lastActivity),
        idle: part.idle,
      })),
      keys,
      counters: { ...this.stats },
    };
  }

  private load(data: WindowStateSnapshot): void {
    this.wm = data.watermark ?? -Infinity;
    this.closedBelow = data.closedBelow ?? -Infinity;
    this.nextCloseAt =
      data.closedBelow === null ? -Infinity : (data.closedBelow + this.panesPerWindow) * this.advanceMs + this.graceMs;
    this.lastNow = data.lastNow ?? NaN;
    this.seq = data.seq;
    for (const saved of data.partitions) {
      const part = this.partitions.get(saved.id) ?? this.registerPartition(saved.id, NaN);
      part.maxTime = saved.maxTime ?? -Infinity;
      part.lastActivity = saved.lastActivity ?? NaN;
      part.idle = saved.idle;
    }
    this.activeCount = 0;
    this.maxAll = -Infinity;
    for (const part of this.partitionList) {
      if (!part.idle) this.activeCount += 1;
      if (part.maxTime > this.maxAll) this.maxAll = part.maxTime;
    }
    this.activeMin = this.scanActiveMin();
    for (const saved of data.keys) {
      const ks = new KeyState(saved.key, saved.nextWindow, nextPowerOfTwo(this.panesPerWindow + 1), saved.maxPane);
      ks.lastActivePane = saved.lastActivePane ?? -Infinity;
      ks.lastSeenSeq = saved.lastSeenSeq;
      for (const [pane, count] of saved.panes) {
        if (!Number.isSafeInteger(pane) || pane < saved.nextWindow) {
          throw new LogflowError(
            ErrorCodes.INPUT_INVALID,
            `window snapshot is inconsistent: key ${saved.key} has pane ${pane} before its open window ${saved.nextWindow}`,
            {
              stage: 'operator',
            },
          );
        }
        this.placeAnywhere(ks, pane, count);
      }
      this.catchUp(ks);
      if (ks.removed) continue;
      this.keys.set(ks.key, ks);
      this.sortedKeys.push(ks);
    }
    this.sortedKeysDirty = true;
    Object.assign(this.stats, data.counters);
  }

  /**
   * A changelog entry stays as written while only window closing changes its
   * key, so it may lag the header's closed-window mark: replay those closings
   * here, exactly as `closeBelow` ran them (per key, they depend on nothing
   * else). An entry from a whole snapshot is never behind, so this is a no-op
   * for those. The results were emitted before the checkpoint and are dropped;
   * the counters come from the header.
   */
  private catchUp(ks: KeyState): void {
    const discarded: WindowResult[] = [];
    while (!ks.removed && ks.nextWindow < this.closedBelow) {
      this.closeWindowOfKey(ks, ks.nextWindow, discarded);
      discarded.length = 0;
    }
  }

  private registerPartition(id: number, now: number): PartitionClock {
    const part = new PartitionClock(id, -Infinity, now, false);
    this.partitions.set(id, part);
    this.partitionList.push(part);
    this.activeCount += 1;
    this.activeMin = -Infinity;
    return part;
  }

  private rejoin(part: PartitionClock): void {
    part.idle = false;
    this.activeCount += 1;
    if (part.maxTime < this.activeMin) this.activeMin = part.maxTime;
  }

  private scanActiveMin(): number {
    let min = Infinity;
    for (const part of this.partitionList) if (!part.idle && part.maxTime < min) min = part.maxTime;
    return min;
  }

  private allIdleSince(): number {
    let latest = -Infinity;
    for (const part of this.partitionList) if (part.lastActivity > latest) latest = part.lastActivity;
    return latest + this.idleTimeoutMs;
  }

  private watermarkCandidate(now: number): number {
    if (this.activeCount > 0) return this.activeMin - this.outOfOrdernessMs;
    if (this.partitionList.length === 0) return -Infinity;
    const flushed = this.maxAll - this.outOfOrdernessMs;
    if (!this.options.advanceWithProcessingTime) return flushed;
    return flushed + Math.max(0, now - this.allIdleSince());
  }

  private raiseWatermark(candidate: number, sink: WindowSink): void {
    if (candidate <= this.wm) return;
    this.wm = candidate;
    if (candidate >= this.nextCloseAt) {
      this.closeBelow(Math.floor((candidate - this.graceMs) / this.advanceMs) - this.panesPerWindow + 1, sink);
    }
  }

  private place(key: string, pane: number, weight: number): void {
    let ks = this.keys.get(key);
    if (ks === undefined) {
      ks = this.createKey(key, pane);
    } else {
      const firstOpenWindow = Math.max(this.closedBelow, pane - this.panesPerWindow + 1);
      if (firstOpenWindow < ks.nextWindow) this.rebase(ks, firstOpenWindow);
    }
    const offset = pane - ks.nextWindow;
    if (offset <= ks.mask) {
      const slot = (ks.head + offset) & ks.mask;
      ks.counts[slot] = ks.counts[slot]! + weight;
      ks.touched[slot] = 1;
    } else {
      this.placeBeyondRing(ks, pane, weight);
    }
    if (pane > ks.maxPane) ks.maxPane = pane;
    ks.lastSeenSeq = ++this.seq;
    if (this.changelog && !ks.dirty) {
      ks.dirty = true;
      this.changed.push(ks);
    }
  }

  private createKey(key: string, pane: number): KeyState {
    if (this.keys.size >= this.maxKeys) this.evictLeastRecentlySeen();
    const nextWindow = Math.max(this.closedBelow, pane - this.panesPerWindow + 1);
    const ks = new KeyState(key, nextWindow, nextPowerOfTwo(this.panesPerWindow + 1), pane);
    this.keys.set(key, ks);
    this.sortedKeys.push(ks);
    this.sortedKeysDirty = true;
    return ks;
  }

  private evictLeastRecentlySeen(): void {
    let victim: KeyState | undefined;
    for (const ks of this.keys.values()) if (victim === undefined || ks.lastSeenSeq < victim.lastSeenSeq) victim = ks;
    if (victim === undefined) return;
    let lost = 0;
    for (const [, count] of this.collectPanes(victim)) lost += count;
    this.keys.delete(victim.key);
    victim.removed = true;
    if (this.changelog) this.removedSinceChanges.add(victim.key);
    this.sortedKeys = this.sortedKeys.filter((ks) => !ks.removed);
    this.stats.evictedKeys += 1;
    this.stats.evictedWeight += lost;
  }

  /** Touched panes of a key in increasing order, ring and sparse map alike. */
  private collectPanes(ks: KeyState): [number, number][] {
    const panes: [number, number][] = [];
    for (let offset = 0; offset <= ks.mask; offset++) {
      const slot = (ks.head + offset) & ks.mask;
      if (ks.touched[slot] === 1) panes.push([ks.nextWindow + offset, ks.counts[slot] ?? 0]);
    }
    if (ks.far !== undefined) {
      for (const entry of [...ks.far.entries()].sort((a, b) => a[0] - b[0])) panes.push(entry);
    }
    return panes;
  }

  /** Re-lays a key's panes from a new oldest window (rare: an earlier event of a young key). */
  private rebase(ks: KeyState, nextWindow: number): void {
    const panes = this.collectPanes(ks);
    ks.far = undefined;
    ks.farMin = Infinity;
    ks.nextWindow = nextWindow;
    const span = panes.length === 0 ? 1 : panes[panes.length - 1]![0] - nextWindow + 1;
    const capacity = nextPowerOfTwo(Math.min(Math.max(span, this.panesPerWindow + 1), MAX_DENSE_PANES));
    ks.head = 0;
    ks.mask = capacity - 1;
    ks.counts = new Float64Array(capacity);
    ks.touched = new Uint8Array(capacity);
    for (const [pane, count] of panes) this.placeAnywhere(ks, pane, count);
  }

  private placeAnywhere(ks: KeyState, pane: number, weight: number): void {
    const offset = pane - ks.nextWindow;
    if (offset <= ks.mask) {
      const slot = (ks.head + offset) & ks.mask;
      ks.counts[slot] = ks.counts[slot]! + weight;
      ks.touched[slot] = 1;
    } else {
      this.placeBeyondRing(ks, pane, weight);
    }
  }

  private placeBeyondRing(ks: KeyState, pane: number, weight: number): void {
    const offset = pane - ks.nextWindow;
    if (offset >= MAX_DENSE_PANES) {
      ks.far ??= new Map();
      ks.far.set(pane, (ks.far.get(pane) ?? 0) + weight);
      if (pane < ks.farMin) ks.farMin = pane;
      return;
    }
    this.grow(ks, offset + 1);
    const slot = (ks.head + offset) & ks.mask;
    ks.counts[slot] = ks.counts[slot]! + weight;
    ks.touched[slot] = 1;
  }

  private grow(ks: KeyState, minCapacity: number): void {
    const capacity = nextPowerOfTwo(minCapacity);
    const counts = new Float64Array(capacity);
    const touched = new Uint8Array(capacity);
    for (let offset = 0; offset <= ks.mask; offset++) {
      const slot = (ks.head + offset) & ks.mask;
      counts[offset] = ks.counts[slot] ?? 0;
      touched[offset] = ks.touched[slot] ?? 0;
    }
    ks.counts = counts;
    ks.touched = touched;
    ks.head = 0;
    ks.mask = capacity - 1;
  }

  private migrateFar(ks: KeyState): void {
    const far = ks.far;
    if (far === undefined || ks.farMin - ks.nextWindow >= MAX_DENSE_PANES) return;
    let farMin = Infinity;
    for (const [pane, count] of [...far.entries()]) {
      if (pane - ks.nextWindow < MAX_DENSE_PANES) {
        far.delete(pane);
        this.placeAnywhere(ks, pane, count);
      } else if (pane < farMin) {
        farMin = pane;
      }
    }
    ks.farMin = farMin;
    if (far.size === 0) ks.far = undefined;
  }

  private closeBelow(target: number, sink: WindowSink): void {
    if (target <= this.closedBelow) return;
    if (this.sortedKeysDirty) {
      this.sortedKeys.sort(byKey);
      this.sortedKeysDirty = false;
    }
    const results: WindowResult[] = [];
    let keys = this.sortedKeys;
    let window = Infinity;
    for (const ks of keys) if (ks.nextWindow < window) window = ks.nextWindow;
    while (window < target) {
      let next = Infinity;
      let removedAny = false;
      for (let i = 0; i < keys.length; i++) {
        const ks = keys[i]!;
        if (ks.nextWindow === window) {
          this.closeWindowOfKey(ks, window, results);
          if (ks.removed) {
            removedAny = true;
            continue;
          }
        }
        if (ks.nextWindow < next) next = ks.nextWindow;
      }
      if (removedAny) {
        keys = keys.filter((ks) => !ks.removed);
        this.sortedKeys = keys;
      }
      window = next;
    }
    this.closedBelow = target;
    this.nextCloseAt = (target + this.panesPerWindow) * this.advanceMs + this.graceMs;
    this.stats.windowsEmitted += results.length;
    for (const result of results) sink.window(result);
    sink.watermark?.(this.wm);
  }

  private closeWindowOfKey(ks: KeyState, window: number, results: WindowResult[]): void {
    const k = this.panesPerWindow;
    const mask = ks.mask;
    const head = ks.head;
    let count = 0;
    let lastTouched = -1;
    for (let offset = 0; offset < k; offset++) {
      const slot = (head + offset) & mask;
      count += ks.counts[slot] ?? 0;
      if (ks.touched[slot] === 1) lastTouched = offset;
    }
    // Every pane of a closing window is complete, so its activity is final whatever the arrival order was.
    if (lastTouched >= 0 && window + lastTouched > ks.lastActivePane) ks.lastActivePane = window + lastTouched;
    if (window - ks.lastActivePane < this.zeroFillPanes) {
      const start = window * this.advanceMs;
      results.push({ kind: 'window', key: ks.key, start, end: start + this.sizeMs, count });
    }
    ks.counts[head] = 0;
    ks.touched[head] = 0;
    ks.head = (head + 1) & mask;
    ks.nextWindow = window + 1;
    if (ks.far !== undefined) this.migrateFar(ks);
    if (ks.nextWindow - ks.lastActivePane >= this.zeroFillPanes) {
      // Out of the zero-fill range: only panes not yet sealed can bring the key back.
      const dataPane = this.firstUnsealedPane(ks);
      if (dataPane === Infinity) {
        this.keys.delete(ks.key);
        ks.removed = true;
        this.stats.expiredKeys += 1;
        if (this.changelog) this.removedSinceChanges.add(ks.key);
      } else if (dataPane - k + 1 > ks.nextWindow) {
        this.skipTo(ks, dataPane - k + 1);
      }
    }
  }

  private firstUnsealedPane(ks: KeyState): number {
    const last = Math.min(ks.mask, ks.maxPane - ks.nextWindow);
    for (let offset = this.panesPerWindow - 1; offset <= last; offset++) {
      if (ks.touched[(ks.head + offset) & ks.mask] === 1) return ks.nextWindow + offset;
    }
    return ks.farMin;
  }

  private skipTo(ks: KeyState, nextWindow: number): void {
    const delta = nextWindow - ks.nextWindow;
    if (delta > ks.mask) {
      ks.counts.fill(0);
      ks.touched.fill(0);
      ks.head = 0;
    } else {
      for (let i = 0; i < delta; i++) {
        ks.counts[ks.head] = 0;
        ks.touched[ks.head] = 0;
        ks.head = (ks.head + 1) & ks.mask;
      }
    }
    ks.nextWindow = nextWindow;
    this.migrateFar(ks);
  }
}
