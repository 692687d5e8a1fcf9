/**
 * What the detector judges windows by, as of its last refresh: the baselines
 * (anomaly_baselines), the global thresholds of app_config, each service's
 * overrides and the active alert silences. Scoring reads them synchronously
 * while windows close; `refresh` reloads them all between checkpoints and on
 * every assignment, so a change reaches the detector within `--refresh-ms`.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { SchedulerLike } from 'rxjs';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import {
  DEFAULT_DETECTOR_SETTINGS,
  indexBaselines,
  lookupBaseline,
  mergeDetectorSettings,
  serviceDetectorOverrides,
  type Baseline,
  type BaselineIndex,
  type DetectorSettings,
  type LifecycleSettings,
  type SeriesKey,
  type SilenceCheck,
} from '../domain/anomaly.ts';
import { loadBaselines } from './baselines.ts';
import type { AlertSilence } from './postgres/alert-silences.ts';
import type { Repositories } from './postgres/index.ts';

export class DetectorSettingsStore {
  #baselines: BaselineIndex = indexBaselines([]);
  #global: DetectorSettings = DEFAULT_DETECTOR_SETTINGS;
  #services = new Map<string, DetectorSettings>();
  #silences: readonly AlertSilence[] = [];
  #lifecycle: Partial<LifecycleSettings> = {};
  #refreshedAt = -Infinity;

  constructor(
    private readonly clickhouse: ClickHouseClient,
    private readonly repositories: Pick<Repositories, 'appConfig' | 'services' | 'alertSilences'>,
    private readonly scheduler: SchedulerLike,
  ) {}

  /** The lifecycle settings of app_config, for alert lifecycles restored from now on. */
  get lifecycle(): Partial<LifecycleSettings> {
    return this.#lifecycle;
  }

  /** Reloads everything; retried until it succeeds or the process stops. */
  refresh(): Promise<void> {
    const now = this.scheduler.now();
    return retry(() => this.load(now), RETRY_UNTIL_STOPPED);
  }

  /** `refresh`, when the last one is at least `maxAgeMs` old (scheduler time). */
  async refreshIfOlderThan(maxAgeMs: number): Promise<void> {
    if (this.scheduler.now() - this.#refreshedAt >= maxAgeMs) await this.refresh();
  }

  readonly settingsFor = (service: string): DetectorSettings => this.#services.get(service) ?? this.#global;

  readonly baselineFor = (series: SeriesKey, windowStart: number): Baseline | undefined =>
    lookupBaseline(this.#baselines, series, windowStart).baseline;

  readonly isSilenced: SilenceCheck = (alert, at) =>
    this.#silences.some(
      (s) =>
        s.startsAt.getTime() <= at &&
        s.expiresAt.getTime() > at &&
        (s.rule === null || s.rule === alert.rule) &&
        (s.service === null || s.service === alert.service) &&
        (s.environment === null || s.environment === alert.environment) &&
        (s.level === null || s.level === alert.level) &&
        (s.dedupKey === null || s.dedupKey === alert.dedupKey),
    );

  private async load(now: number): Promise<void> {
    const { appConfig, services, alertSilences } = this.repositories;
    const [rows, config, serviceRows, active] = await Promise.all([
      loadBaselines(this.clickhouse),
      appConfig.getAll(),
      services.list(),
      alertSilences.listActive(new Date(now)),
    ]);
    const num = (key: string) => {
      const v = config.get(key);
      return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
    };
    const zThreshold = num('anomaly.z_threshold');
    const minCount = num('anomaly.min_count');
    const pendingWindows = num('anomaly.pending_windows');
    const resolveWindows = num('anomaly.resolve_windows');
    const cooldownMinutes = num('anomaly.cooldown_minutes');
    this.#baselines = indexBaselines(rows);
    this.#global = mergeDetectorSettings(DEFAULT_DETECTOR_SETTINGS, {
      ...(zThreshold === undefined ? {} : { zThreshold }),
      ...(minCount === undefined ? {} : { minCount }),
    });
    this.#lifecycle = {
      ...(pendingWindows === undefined ? {} : { pendingWindows }),
      ...(resolveWindows === undefined ? {} : { resolveWindows }),
      ...(cooldownMinutes === undefined ? {} : { cooldownMs: cooldownMinutes * 60_000 }),
    };
    this.#services = new Map(
      serviceRows.map((s) => [s.name, mergeDetectorSettings(this.#global, serviceDetectorOverrides(s))]),
    );
    this.#silences = active;
    this.#refreshedAt = this.scheduler.now();
  }
}
