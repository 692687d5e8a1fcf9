import { map } from 'rxjs';
import type { OperatorFunction } from 'rxjs';
import { score } from '../domain/anomaly.ts';
import type { Baseline, DetectorSettings, ScoredWindow, SeriesKey } from '../domain/anomaly.ts';

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
}

/**
 * Scores each closed window against its baseline (see `score` in
 * src/domain/anomaly.ts). A plain map: no clock and no state, so the output depends
 * only on each window and what the callbacks return for it. Windows of a
 * service with monitoring disabled are still emitted, scored `none`, so
 * counts downstream stay complete and open alerts see normal windows.
 */
export function scoreWindows(options: ScoreWindowsOptions): OperatorFunction<ClosedWindow, ScoredWindow> {
  const { parseKey, baselineFor, settingsFor } = options;
  return map((window): ScoredWindow => {
    const series = parseKey(window.key);
    const settings = settingsFor(series.service);
    const baseline = settings.enabled ? baselineFor(series, window.start) : undefined;
    return {
      key: window.key,
      service: series.service,
      environment: series.environment,
      level: series.level,
      start: window.start,
      end: window.end,
      count: window.count,
      alerting: settings.alerting,
      ...score(window.count, baseline, settings),
    };
  });
}
