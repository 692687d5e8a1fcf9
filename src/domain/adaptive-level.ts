/**
 * Adaptation of the weekly baselines between weekly runs (issue 16, "adaptation"): per series, how far its counts
 * have lately run above or below what the weekly baselines expected, as a factor the baseline is scaled by before a
 * window is scored. The weekly job keeps the shape of the week (hour of day, day of week); this follows the level,
 * so a service whose traffic doubles over an afternoon is judged by a doubled baseline within hours instead of
 * alerting until the next Sunday.
 *
 * The factor is a ratio of exponentially weighted sums over the series' closed windows that were not anomalous:
 * counts over the weekly baselines' means, each window's weight halving every `halfLifeMs` of window time. An
 * anomalous window (a spike, a drop, a silence) is left out, so an incident does not teach the baseline that it is
 * normal; until the anomaly has held, in one direction, for `acceptAfterMs` (a level shift: a deploy that doubles
 * the logging, traffic moved for good). Then it is taken for a level shift all along: the windows it held back are
 * learned at once, with the weights they would have had, and the windows after it as they come, so the band catches
 * up within a few windows, the alert resolves, and the shift's end (the level going back) is itself seen as a change. An anomaly
 * holds until `breakWindows` normal windows on the other side of the level interrupt it (the alert lifecycle's
 * resolve count), so a shift's windows that come back inside the band, as the quieter hours of a doubled level do, do
 * not restart the clock. A silence is never accepted: a service that stopped
 * is not a new normal. Both sums start from a prior worth `priorEvents` events at factor 1 (a Gamma prior on the ratio of rates, of
 * which the factor is the posterior mean), so a new or sparse series is not moved by a few windows, and a series whose
 * last windows are long past drifts back to its weekly baseline as their weight decays.
 *
 * A window also weighs by the inverse of its dispersion (variance over mean, at least Poisson's 1): for counts whose
 * variance is that many times their mean, those are the weights that estimate a ratio of rates with the least noise,
 * and they keep a bursty series' routine bursts (within its band, so not anomalous) from swinging its level: a series
 * whose minutes vary 50 times more than Poisson's learns its level from 50 times as many windows. The dispersion is
 * the larger of the slot's (its stddev) and the series' pooled over its week (`seriesSpread`, as the band reads it,
 * src/domain/anomaly.ts `bandSpread`): four weeks of one slot may hold none of a series' rare bursts.
 *
 * Deterministic: the factor depends only on the windows observed (their end, count, weekly mean and anomaly kind),
 * in order, never on a clock. The state is one small entry per series, written as a changelog (only the
 * series observed since the last checkpoint) next to the window state's (src/sinks/detector-checkpoints.ts), and
 * restored exactly, so a restored detector scores the next windows as the uninterrupted one would.
 */
import { z } from 'zod';
import { ErrorCodes, LogflowError } from '../core/errors.ts';
import { Changelog } from './changelog.ts';
import type { AnomalyKind, Baseline } from './anomaly.ts';

export interface AdaptiveLevelSettings {
  /** Window time over which an observed window's weight halves. */
  readonly halfLifeMs: number;
  /** Weight of the prior (factor 1), in events. */
  readonly priorEvents: number;
  /** Window time a spike or a drop must hold before its windows are learned as the series' new level. */
  readonly acceptAfterMs: number;
  /** Normal windows in a row that end an anomaly (the next one starts the clock again). */
  readonly breakWindows: number;
}

/**
 * Defaults, and why:
 * - halfLifeMs one hour (60 one-minute windows): a level change spread over a few hours is followed closely enough
 *   to stay inside the band (an EWMA lags a steady rise by about 1.44 half-lives: 12% for a doubling over 12 hours),
 *   while a rise to several times normal within an hour or two (a slow ramp of an incident) outruns it, turns
 *   anomalous and from then on teaches nothing.
 * - priorEvents 100: against a busy series' thousands of events an hour it is nothing; a series of a few events a
 *   minute needs most of an hour of evidence before its factor moves halfway.
 * - acceptAfterMs two hours (two half-lives): an incident is usually fixed or escalated by then, and its alert has
 *   been sent; a change that holds steady for longer is more often a new level than an incident, and without this
 *   its alert would stay open, or flap, until the next weekly run. After it the band follows within about two more
 *   half-lives, so a sustained incident resolves itself some four hours in: resolve it by hand sooner, or silence it.
 * - breakWindows 5: the lifecycle's default resolve count (src/domain/anomaly.ts), so an anomaly ends for the level
 *   when it would end for the alert.
 */
export const DEFAULT_ADAPTIVE_LEVEL_SETTINGS: AdaptiveLevelSettings = Object.freeze({
  halfLifeMs: 60 * 60_000,
  priorEvents: 100,
  acceptAfterMs: 2 * 60 * 60_000,
  breakWindows: 5,
});

export function resolveAdaptiveLevelSettings(settings: Partial<AdaptiveLevelSettings> = {}): AdaptiveLevelSettings {
  const resolved = {
    halfLifeMs: settings.halfLifeMs ?? DEFAULT_ADAPTIVE_LEVEL_SETTINGS.halfLifeMs,
    priorEvents: settings.priorEvents ?? DEFAULT_ADAPTIVE_LEVEL_SETTINGS.priorEvents,
    acceptAfterMs: settings.acceptAfterMs ?? DEFAULT_ADAPTIVE_LEVEL_SETTINGS.acceptAfterMs,
    breakWindows: settings.breakWindows ?? DEFAULT_ADAPTIVE_LEVEL_SETTINGS.breakWindows,
  };
  const problems: string[] = [];
  if (!(resolved.halfLifeMs > 0) || !Number.isFinite(resolved.halfLifeMs))
    problems.push(`halfLifeMs must be a finite number > 0, got ${resolved.halfLifeMs}`);
  if (!(resolved.priorEvents > 0) || !Number.isFinite(resolved.priorEvents))
    problems.push(`priorEvents must be a finite number > 0, got ${resolved.priorEvents}`);
  if (!(resolved.acceptAfterMs >= 0) || !Number.isFinite(resolved.acceptAfterMs))
    problems.push(`acceptAfterMs must be a finite number >= 0, got ${resolved.acceptAfterMs}`);
  if (!Number.isSafeInteger(resolved.breakWindows) || resolved.breakWindows < 1)
    problems.push(`breakWindows must be an integer >= 1, got ${resolved.breakWindows}`);
  if (problems.length > 0) throw new RangeError(`invalid adaptive level settings: ${problems.join('; ')}`);
  return Object.freeze(resolved);
}

/** Variance over mean of a slot's counts, the larger of the slot's and its series' readings; at least 1. */
function dispersionOf(weekly: Pick<Baseline, 'mean' | 'stddev' | 'seriesSpread'>): number {
  const { mean, stddev, seriesSpread } = weekly;
  if (!(mean > 0)) return 1;
  const spread = Math.max(
    Number.isFinite(stddev) ? stddev : 0,
    seriesSpread === undefined ? 0 : Math.max(seriesSpread.above, seriesSpread.below) * mean,
  );
  const dispersion = (spread * spread) / mean;
  return Number.isFinite(dispersion) ? Math.max(1, dispersion) : 1;
}

/**
 * One series' changelog entry: `[counted, expected, lastEnd]`, the decayed sums as of the end of its last window, and
 * while an anomaly holds `[..., since, direction, normalWindows, heldCounted, heldExpected]`: the end of its first
 * window, 1 up or -1 down, the normal windows in a row since its last anomalous one, and the decayed sums of the
 * windows it holds back. (Checkpoints written before anomalies were tracked hold the first three only, which restore
 * as no anomaly.)
 */
export type LevelEntry =
  | readonly [number, number, number]
  | readonly [number, number, number, number, Direction, number, number, number];

type Direction = 1 | -1;

const entrySchema = z.union([
  z.tuple([z.number().min(0), z.number().min(0), z.number()]),
  z.tuple([
    z.number().min(0),
    z.number().min(0),
    z.number(),
    z.number(),
    z.union([z.literal(1), z.literal(-1)]),
    z.int().min(0),
    z.number().min(0),
    z.number().min(0),
  ]),
]);

/** An anomaly in progress on a series, for the level-shift rule. */
interface Anomaly {
  readonly since: number;
  readonly direction: Direction;
  normalWindows: number;
  /** The sums of the windows held back, decayed as the level's are; zero once accepted. */
  heldCounted: number;
  heldExpected: number;
}

interface Level {
  readonly key: string;
  counted: number;
  expected: number;
  lastEnd: number;
  anomaly: Anomaly | null;
  dirty: boolean;
}

function entryOf(level: Level): LevelEntry {
  const { counted, expected, lastEnd, anomaly } = level;
  return anomaly === null
    ? [counted, expected, lastEnd]
    : [
        counted,
        expected,
        lastEnd,
        anomaly.since,
        anomaly.direction,
        anomaly.normalWindows,
        anomaly.heldCounted,
        anomaly.heldExpected,
      ];
}

/**
 * The levels of the series of one detector (one input partition in `detect`, one series in `detect-series`). Windows
 * must be observed in non-decreasing end order per series, as `windowByEventTime` closes them; one ending before the
 * series' last is ignored (a window replayed after a restore was observed before the checkpoint).
 */
export class AdaptiveLevels {
  readonly settings: AdaptiveLevelSettings;
  readonly #levels = new Map<string, Level>();
  readonly #changelog = new Changelog<Level, LevelEntry>(() => this.#levels.values(), entryOf);

  constructor(settings: Partial<AdaptiveLevelSettings> = {}) {
    this.settings = resolveAdaptiveLevelSettings(settings);
  }

  /** Rebuilds the levels from changelog entries (`takeChanges` output, after a JSON round trip), with the settings of now. */
  static fromEntries(
    entries: Iterable<readonly [string, unknown]>,
    settings: Partial<AdaptiveLevelSettings> = {},
  ): AdaptiveLevels {
    const levels = new AdaptiveLevels(settings);
    for (const [key, entry] of entries) {
      const parsed = entrySchema.safeParse(entry);
      if (!parsed.success)
        throw new LogflowError(
          ErrorCodes.INPUT_INVALID,
          `adaptive level entry of key ${JSON.stringify(key)} is malformed: ${parsed.error.message}`,
          { stage: 'operator' },
        );
      const [counted, expected, lastEnd, since, direction, normalWindows, heldCounted, heldExpected] = parsed.data;
      const anomaly =
        since === undefined
          ? null
          : {
              since,
              direction: direction!,
              normalWindows: normalWindows!,
              heldCounted: heldCounted!,
              heldExpected: heldExpected!,
            };
      levels.#levels.set(key, { key, counted, expected, lastEnd, anomaly, dirty: false });
    }
    return levels;
  }

  /** Series held. */
  get size(): number {
    return this.#levels.size;
  }

  /**
   * The rule of the spike or drop the series is in, as its last observed window left it, or null: an anomaly holds
   * through normal windows on its own side of the level (a halved level's busier windows, back inside the band)
   * until `breakWindows` windows on the other side end it. `scoreWindows` passes it on, so that such a window
   * neither resolves the open alert nor counts towards resolving it: the incident is not over while the level it
   * moved to holds, and an alert that resolved there would only open again at the next window past the band.
   */
  heldAnomaly(key: string): 'spike' | 'drop' | null {
    const anomaly = this.#levels.get(key)?.anomaly ?? null;
    if (anomaly === null) return null;
    return anomaly.direction === 1 ? 'spike' : 'drop';
  }

  /** The factor a window of `key` ending at `end` is scored with: 1 for a series never observed. */
  factor(key: string, end: number): number {
    const level = this.#levels.get(key);
    if (level === undefined) return 1;
    const decay = this.#decay(end - level.lastEnd);
    const prior = this.settings.priorEvents;
    return (level.counted * decay + prior) / (level.expected * decay + prior);
  }

  /** `baseline` scaled by the series' factor at `end`: its mean, spread, quantiles and thresholds alike. */
  adapt(baseline: Baseline | undefined, key: string, end: number): Baseline | undefined {
    if (baseline === undefined) return undefined;
    const f = this.factor(key, end);
    if (f === 1) return baseline;
    return {
      ...baseline,
      mean: baseline.mean * f,
      stddev: baseline.stddev * f,
      median: baseline.median * f,
      ...(baseline.p01 === undefined ? {} : { p01: baseline.p01 * f }),
      ...(baseline.p05 === undefined ? {} : { p05: baseline.p05 * f }),
      p95: baseline.p95 * f,
      p99: baseline.p99 * f,
      upperThreshold: baseline.upperThreshold * f,
      lowerThreshold: baseline.lowerThreshold * f,
    };
  }

  /**
   * Takes in one closed window of `key`: its count, the weekly baseline it was judged by (before adaptation) and the
   * kind of anomaly it was scored (null: normal). Nothing is learned from a window without a baseline, nor from an
   * anomalous one until its anomaly has held for `acceptAfterMs` (never from a silence).
   */
  observe(
    key: string,
    end: number,
    count: number,
    weekly: Pick<Baseline, 'mean' | 'stddev' | 'seriesSpread'> | undefined,
    anomaly: AnomalyKind | null,
  ): void {
    if (weekly === undefined || !Number.isFinite(weekly.mean) || weekly.mean < 0) return;
    if (!Number.isFinite(count) || count < 0) return;
    let level = this.#levels.get(key);
    if (level === undefined) {
      level = { key, counted: 0, expected: 0, lastEnd: end, anomaly: null, dirty: false };
      this.#levels.set(key, level);
    } else if (end <= level.lastEnd) {
      return;
    }
    const decay = this.#decay(end - level.lastEnd);
    level.counted *= decay;
    level.expected *= decay;
    if (level.anomaly !== null) {
      level.anomaly.heldCounted *= decay;
      level.anomaly.heldExpected *= decay;
    }
    level.lastEnd = end;
    // Which side of the level as learned so far the count is on, for a normal window inside an anomaly: `factor` at
    // `end`, from the sums just decayed to it (the same arithmetic, without a second lookup and decay).
    const prior = this.settings.priorEvents;
    const side = Math.sign(count - weekly.mean * ((level.counted + prior) / (level.expected + prior)));
    const weight = 1 / dispersionOf(weekly);
    const learned = this.#learns(level, end, anomaly, side);
    if (learned) {
      level.counted += weight * count;
      level.expected += weight * weekly.mean;
    } else if (level.anomaly !== null) {
      level.anomaly.heldCounted += weight * count;
      level.anomaly.heldExpected += weight * weekly.mean;
    }
    this.#changelog.mark(level);
  }

  /** Follows the series' anomaly in progress with this window, and says whether the window is learned. */
  #learns(level: Level, end: number, anomaly: AnomalyKind | null, side: number): boolean {
    if (anomaly === null) {
      // A window inside the band but on the anomaly's side (a halved level's busier minutes) does not end it.
      if (level.anomaly !== null && side !== level.anomaly.direction)
        if (++level.anomaly.normalWindows >= this.settings.breakWindows) level.anomaly = null;
      return true;
    }
    if (anomaly === 'silence') {
      level.anomaly = null;
      return false;
    }
    const direction: Direction = anomaly === 'spike' ? 1 : -1;
    if (level.anomaly === null || level.anomaly.direction !== direction)
      level.anomaly = { since: end, direction, normalWindows: 0, heldCounted: 0, heldExpected: 0 };
    else level.anomaly.normalWindows = 0;
    if (end - level.anomaly.since < this.settings.acceptAfterMs) return false;
    // A level shift all along: what it held back is learned now, as if it had been learned window by window.
    level.counted += level.anomaly.heldCounted;
    level.expected += level.anomaly.heldExpected;
    level.anomaly.heldCounted = 0;
    level.anomaly.heldExpected = 0;
    return true;
  }

  /** See `Changelog.start` (src/domain/changelog.ts). */
  startChangelog(storeHolds: 'nothing' | 'this state'): void {
    this.#changelog.start(storeHolds);
  }

  /** The entries of the series observed since the last call (or `startChangelog`). */
  takeChanges(): Map<string, LevelEntry> {
    return this.#changelog.take();
  }

  /** Every series' entry, sorted by key. */
  snapshot(): [string, LevelEntry][] {
    return this.#changelog.entries();
  }

  #decay(elapsedMs: number): number {
    return elapsedMs <= 0 ? 1 : 2 ** (-elapsedMs / this.settings.halfLifeMs);
  }
}
