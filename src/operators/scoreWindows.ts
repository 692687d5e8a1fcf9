import { map } from 'rxjs';
import type { OperatorFunction } from 'rxjs';
import type { AdaptiveLevels } from '../domain/adaptive-level.ts';
import { scoreWithRunTail } from '../domain/anomaly.ts';
import type { Baseline, DetectorSettings, ScoredWindow, SeriesKey } from '../domain/anomaly.ts';
import type { SparseRuns } from '../domain/sparse-runs.ts';

/** A closed window, as `windowByEventTime` emits them (its `kind: 'window'` results fit). */
export interface ClosedWindow {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly count: number;
}

export interface ScoreWindowsOptions {
  /** Splits a window key into its series; may throw (an `InputError`) for a key it does not know. */
  readonly parseKey: (key: string) => SeriesKey;
  /**
   * The baseline to judge the window starting at `windowStart` by, e.g. `lookupBaseline(index, series,
   * windowStart).baseline`.
   */
  readonly baselineFor: (series: SeriesKey, windowStart: number) => Baseline | undefined;
  /** The service's settings, overrides merged (`mergeDetectorSettings`). */
  readonly settingsFor: (service: string) => DetectorSettings;
  /**
   * Levels that follow each series between weekly baseline runs (src/domain/adaptive-level.ts), owned by the caller
   * so it can checkpoint them: a window is judged by its baseline scaled by its series' level, and a window that was
   * not anomalous then moves that level. Without it the weekly baselines are used as they are.
   */
  readonly levels?: AdaptiveLevels;
  /**
   * The last window of each series with evidence towards a sparse run (src/domain/sparse-runs.ts), owned by the
   * caller so it can checkpoint them: a sparse window right after one is also judged as the second window of a run
   * (`sparseRunTail` in src/domain/anomaly.ts). Without it each window is judged alone.
   */
  readonly runs?: SparseRuns;
}

/**
 * Scores each closed window against its baseline (see `score` in
 * src/domain/anomaly.ts). A map with no clock: the output depends only on each
 * window, what the callbacks return for it and, with `levels` or `runs`, the
 * windows of its series before it. Windows of a service with monitoring disabled are
 * still emitted, scored `none`, so counts downstream stay complete and open
 * alerts see normal windows; they teach the levels nothing.
 */
export function scoreWindows(options: ScoreWindowsOptions): OperatorFunction<ClosedWindow, ScoredWindow> {
  const { parseKey, baselineFor, settingsFor, levels, runs } = options;
  return map((window): ScoredWindow => {
    const series = parseKey(window.key);
    const settings = settingsFor(series.service);
    const weekly = settings.enabled ? baselineFor(series, window.start) : undefined;
    const baseline = levels === undefined ? weekly : levels.adapt(weekly, window.key, window.end);
    const { score: scored, runTail } = scoreWithRunTail(
      window.count,
      baseline,
      settings,
      runs?.previous(window.key, window.start),
    );
    runs?.record(window.key, window.end, runTail);
    levels?.observe(window.key, window.end, window.count, weekly, scored.anomalous ? scored.kind : null);
    const held = scored.anomalous ? null : (levels?.heldAnomaly(window.key) ?? null);
    return {
      key: window.key,
      service: series.service,
      environment: series.environment,
      level: series.level,
      start: window.start,
      end: window.end,
      count: window.count,
      alerting: settings.alerting,
      ...scored,
      ...(held === null ? {} : { held }),
    };
  });
}
