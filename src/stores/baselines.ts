/**
 * anomaly_baselines from zero-filled per-minute counts (logs_minute_agg):
 * every minute of the look-back period counts for every key from the key's
 * first minute on, so quiet minutes pull the mean down as they should.
 * Computed and written inside ClickHouse in one INSERT ... SELECT.
 *
 * Bootstrap rule for short histories: with less than a day of data every
 * slot gets the key's overall statistics; with less than a week, the
 * statistics of its hour of day, copied to the days of week the history saw
 * at that hour; after that, each
 * (hour of day, day of week) slot has its own. The statistics, thresholds and
 * this rule are specified once in src/domain/series-baselines.ts, which
 * computes them in process for `logflow detect-series`; change both together
 * (test/pipelines/baselines.test.ts holds them to agreement).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Baseline } from '../domain/anomaly.ts';
import { baselineGranularity, type BaselineGranularity } from '../domain/series-baselines.ts';
import { classify } from '../core/errors.ts';
import { clickhouseErrorRules } from '../sinks/clickhouse.ts';
import { toClickHouseDateTime } from './logs-table.ts';

export type { BaselineGranularity };

export interface BaselineRun {
  readonly from: string;
  readonly to: string;
  readonly granularity: BaselineGranularity;
  readonly historyMinutes: number;
  readonly rows: number;
}

const DAY_MINUTES = 24 * 60;

export async function computeBaselines(
  client: ClickHouseClient,
  options: { readonly now: number; readonly weeks: number; readonly zThreshold: number },
): Promise<BaselineRun> {
  const to = Math.floor(options.now / 60_000) * 60_000;
  const lookBack = to - options.weeks * 7 * DAY_MINUTES * 60_000;
  try {
    const [range] = await (
      await client.query({
        query: `SELECT toUnixTimestamp(min(minute)) AS first FROM logs_minute_agg WHERE minute >= {from:DateTime('UTC')} AND minute < {to:DateTime('UTC')}`,
        query_params: { from: lookBack / 1000, to: to / 1000 },
        format: 'JSONEachRow',
      })
    ).json<{ first: string | number }>();
    const first = Number(range?.first ?? 0) * 1000;
    const from = first > 0 ? Math.max(lookBack, first) : to;
    const historyMinutes = Math.max(0, Math.round((to - from) / 60_000));
    const granularity = baselineGranularity(historyMinutes * 60_000);
    if (historyMinutes === 0)
      return {
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        granularity,
        historyMinutes,
        rows: 0,
      };

    const slot =
      granularity === 'flat' ? '' : granularity === 'hour_of_day' ? ', hour_of_day' : ', hour_of_day, day_of_week';
    // Coarser granularities are computed per coarse slot, then spread over all 24 x 7 slots.
    const spreadHours = granularity === 'flat' ? 'arrayJoin(range(24))' : 'hour_of_day';
    // Under a week, an hour's statistics go to the days the history saw, not to all seven: a day the series has not
    // reached yet has no rows, and lookupBaseline in src/domain/anomaly.ts then judges none of its windows.
    const spreadDays =
      granularity === 'hour_and_day'
        ? 'day_of_week'
        : granularity === 'hour_of_day'
          ? 'arrayJoin(days_seen)'
          : 'arrayJoin(range(1, 8))';
    const computedAt = toClickHouseDateTime(options.now);
    await client.command({
      query: `
        INSERT INTO anomaly_baselines (service, environment, level, hour_of_day, day_of_week, mean, stddev, median,
                                       p01, p05, p95, p99, upper_threshold, lower_threshold, sample_count, computed_at)
        SELECT service, environment, level, toUInt8(${spreadHours}) AS hour_of_day, toUInt8(${spreadDays}) AS day_of_week,
               mean, stddev, q[3] AS median, q[1] AS p01, q[2] AS p05, q[4] AS p95, q[5] AS p99,
               mean + {z:Float64} * greatest(stddev, 1) AS upper_threshold,
               greatest(0, mean - {z:Float64} * stddev) AS lower_threshold,
               toUInt32(samples) AS sample_count,
               toDateTime64({computedAt:String}, 3, 'UTC') AS computed_at
        FROM (
          SELECT service, environment, level ${slot},
                 avg(c) AS mean, stddevPop(c) AS stddev, groupUniqArray(day_of_week) AS days_seen,
                 quantilesExactInclusive(0.01, 0.05, 0.5, 0.95, 0.99)(c) AS q, count() AS samples
          FROM (
            SELECT k.service AS service, k.environment AS environment, k.level AS level,
                   toHour(m.minute) AS hour_of_day, toDayOfWeek(m.minute) AS day_of_week,
                   ifNull(a.c, 0) AS c
            FROM (
              SELECT service, environment, level, min(minute) AS first_minute
              FROM logs_minute_agg WHERE minute >= {from:DateTime('UTC')} AND minute < {to:DateTime('UTC')}
              GROUP BY service, environment, level
            ) AS k
            CROSS JOIN (
              SELECT toDateTime({from:DateTime('UTC')}, 'UTC') + toIntervalMinute(number) AS minute FROM numbers({minutes:UInt32})
            ) AS m
            LEFT JOIN (
              SELECT service, environment, level, minute, sum(log_count) AS c
              FROM logs_minute_agg WHERE minute >= {from:DateTime('UTC')} AND minute < {to:DateTime('UTC')}
              GROUP BY service, environment, level, minute
            ) AS a ON a.service = k.service AND a.environment = k.environment AND a.level = k.level AND a.minute = m.minute
            WHERE m.minute >= k.first_minute
          )
          GROUP BY service, environment, level ${slot}
        )`,
      query_params: { from: from / 1000, to: to / 1000, minutes: historyMinutes, z: options.zThreshold, computedAt },
      clickhouse_settings: { join_use_nulls: 1 },
    });
    const [written] = await (
      await client.query({
        query:
          "SELECT count() AS n FROM anomaly_baselines WHERE computed_at = toDateTime64({computedAt:String}, 3, 'UTC')",
        query_params: { computedAt },
        format: 'JSONEachRow',
      })
    ).json<{ n: string }>();
    return {
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      granularity,
      historyMinutes,
      rows: Number(written?.n ?? 0),
    };
  } catch (error) {
    throw classify(error, clickhouseErrorRules, 'sink');
  }
}

/** The newest baseline of every slot. */
export async function loadBaselines(client: ClickHouseClient): Promise<Baseline[]> {
  const rows = await (
    await client.query({
      query: `SELECT service, environment, level, hour_of_day, day_of_week, mean, stddev, median, p01, p05, p95, p99,
                     upper_threshold, lower_threshold, sample_count
              FROM anomaly_baselines FINAL`,
      format: 'JSONEachRow',
    })
  ).json<Record<string, string | number | null>>();
  return rows.map((r) => ({
    service: String(r.service),
    environment: String(r.environment),
    level: String(r.level),
    hourOfDay: Number(r.hour_of_day),
    dayOfWeek: Number(r.day_of_week),
    mean: Number(r.mean),
    stddev: Number(r.stddev),
    median: Number(r.median),
    p01: numberOrNaN(r.p01),
    p05: numberOrNaN(r.p05),
    p95: Number(r.p95),
    p99: Number(r.p99),
    upperThreshold: Number(r.upper_threshold),
    lowerThreshold: Number(r.lower_threshold),
    sampleCount: Number(r.sample_count),
  }));
}

/** ClickHouse writes a NaN Float64 as JSON null (output_format_json_quote_denormals = 0); Number(null) would be 0. */
function numberOrNaN(value: string | number | null | undefined): number {
  return value === null || value === undefined ? Number.NaN : Number(value);
}
