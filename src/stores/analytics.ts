/**
 * The nightly analysis's reads from ClickHouse: the same questions as the
 * seed's views (error_rate_by_service, top_errors, logs_hourly_stats), asked
 * for a given day instead of "the last 24 hours from now", so a re-run or an
 * on-demand run for a past date sees that day.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { classify } from '../core/errors.ts';
import type { AnalysisPattern, AnalysisStatistics } from '../clients/llm.ts';
import { clickhouseErrorRules } from '../sinks/clickhouse.ts';

export interface DayRange {
  /** Epoch seconds, inclusive. */
  readonly from: number;
  /** Epoch seconds, exclusive. */
  readonly to: number;
}

export function dayRange(date: string): DayRange {
  const from = Date.parse(`${date}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || Number.isNaN(from)) throw new RangeError(`not a date (YYYY-MM-DD): ${date}`);
  return { from: from / 1000, to: from / 1000 + 86_400 };
}

export interface DayPattern extends AnalysisPattern {
  readonly firstSeen: string;
  readonly lastSeen: string;
}

export interface HourlyCount {
  readonly service: string;
  readonly environment: string;
  readonly level: string;
  /** Epoch ms of the hour's start. */
  readonly hour: number;
  readonly count: number;
}

/** The last 24 hours of wall-clock time at the moment of the query, as the seed's views give them. */
export interface LastDayView {
  readonly totalLogs: number;
  readonly totalErrors: number;
  readonly services: readonly { service: string; totalLogs: number; errors: number; errorRate: number }[];
  readonly topErrors: readonly { errorHash: string; template: string; occurrences: number; services: string[] }[];
  /** Logs and errors per hour, oldest first. */
  readonly hourly: readonly { hour: string; logs: number; errors: number }[];
}

export class DailyAnalytics {
  constructor(private readonly client: ClickHouseClient) {}

  /**
   * The seed's views (sql/clickhouse/005_views.sql, 007): error_rate_by_service, top_errors and logs_hourly_stats.
   * They cover the 24 hours before ClickHouse's now(), not a calendar day, so `statistics` and `errorPatterns` keep
   * their dated queries over [from, to): a day analysed at 02:00, or again a week later, or in demo time running
   * faster than the clock, would otherwise count the wrong hours. This is read beside them, as what the last 24
   * hours looked like when the analysis ran.
   */
  async lastDay(topErrors = 10): Promise<LastDayView> {
    const services = await this.rows<{ service: string; total: string; errors: string; rate: number }>(
      `SELECT service, total_logs AS total, error_logs AS errors, error_rate AS rate FROM error_rate_by_service
       ORDER BY rate DESC, service`,
      {},
    );
    const top = await this.rows<{ hash: string; tpl: string; n: string; svc: string[] }>(
      `SELECT toString(error_hash) AS hash, template AS tpl, occurrences AS n, arraySort(services) AS svc FROM top_errors
       ORDER BY occurrences DESC, error_hash LIMIT {limit:UInt32}`,
      { limit: topErrors },
    );
    const hourly = await this.rows<{ h: string; logs: string; errors: string }>(
      `SELECT toString(hour) AS h, sum(log_count) AS logs, sum(error_count) AS errors FROM logs_hourly_stats
       GROUP BY hour ORDER BY hour`,
      {},
    );
    const totalLogs = services.reduce((a, s) => a + Number(s.total), 0);
    const totalErrors = services.reduce((a, s) => a + Number(s.errors), 0);
    return {
      totalLogs,
      totalErrors,
      services: services.map((s) => ({
        service: s.service,
        totalLogs: Number(s.total),
        errors: Number(s.errors),
        errorRate: Number(s.rate),
      })),
      topErrors: top.map((t) => ({ errorHash: t.hash, template: t.tpl, occurrences: Number(t.n), services: t.svc })),
      hourly: hourly.map((r) => ({ hour: r.h, logs: Number(r.logs), errors: Number(r.errors) })),
    };
  }

  async statistics(range: DayRange): Promise<Omit<AnalysisStatistics, 'anomaliesDetected'>> {
    const services = await this.rows<{ service: string; total: string; errors: string }>(
      `SELECT service, sum(log_count) AS total, sum(error_count) AS errors
       FROM logs_hourly_agg WHERE hour >= toDateTime({from:UInt32}) AND hour < toDateTime({to:UInt32})
       GROUP BY service ORDER BY errors DESC, service`,
      range,
    );
    const levels = await this.rows<{ level: string; n: string }>(
      `SELECT level, sum(log_count) AS n FROM logs_hourly_agg
       WHERE hour >= toDateTime({from:UInt32}) AND hour < toDateTime({to:UInt32}) GROUP BY level ORDER BY level`,
      range,
    );
    const [patterns] = await this.rows<{ n: string }>(
      `SELECT uniqMerge(unique_patterns) AS n FROM logs_hourly_agg
       WHERE hour >= toDateTime({from:UInt32}) AND hour < toDateTime({to:UInt32}) AND level IN ('ERROR', 'FATAL')`,
      range,
    );
    const totalLogs = services.reduce((a, s) => a + Number(s.total), 0);
    const totalErrors = services.reduce((a, s) => a + Number(s.errors), 0);
    return {
      totalLogs,
      totalErrors,
      errorRate: totalLogs === 0 ? 0 : totalErrors / totalLogs,
      uniquePatterns: Number(patterns?.n ?? 0),
      services: services.map((s) => ({
        service: s.service,
        totalLogs: Number(s.total),
        errors: Number(s.errors),
        errorRate: Number(s.total) === 0 ? 0 : Number(s.errors) / Number(s.total),
      })),
      levels: Object.fromEntries(levels.map((l) => [l.level, Number(l.n)])),
    };
  }

  /** Every ERROR/FATAL pattern of the day, most frequent first. */
  async errorPatterns(range: DayRange, limit = 10_000): Promise<DayPattern[]> {
    const rows = await this.rows<{
      hash: string;
      tpl: string;
      sample: string;
      svc: string[];
      lvl: string;
      n: string;
      first: string;
      last: string;
    }>(
      `SELECT toString(error_hash) AS hash, any(template) AS tpl, any(message) AS sample, groupUniqArray(service) AS svc,
              if(countIf(level = 'FATAL') > 0, 'FATAL', 'ERROR') AS lvl, count() AS n,
              toString(min(timestamp)) AS first, toString(max(timestamp)) AS last
       FROM logs WHERE timestamp >= toDateTime64({from:UInt32}, 3) AND timestamp < toDateTime64({to:UInt32}, 3) AND level IN ('ERROR', 'FATAL')
       GROUP BY error_hash ORDER BY n DESC, hash LIMIT {limit:UInt32}`,
      { ...range, limit },
    );
    return rows.map((r) => ({
      errorHash: r.hash,
      template: r.tpl,
      sampleMessage: r.sample,
      services: [...r.svc].sort(),
      level: r.lvl,
      occurrences: Number(r.n),
      firstSeen: r.first,
      lastSeen: r.last,
    }));
  }

  /**
   * All-time occurrences of patterns (error_pattern_counts, kept by ClickHouse on every logs insert), so a re-run
   * writes the same counts instead of adding the day twice.
   */
  async totals(hashes: readonly string[]): Promise<Map<string, { count: number; first: string; last: string }>> {
    if (hashes.length === 0) return new Map();
    const rows = await this.rows<{ hash: string; n: string; first: string; last: string }>(
      `SELECT toString(error_hash) AS hash, sum(occurrences) AS n, toString(min(first_seen)) AS first,
              toString(max(last_seen)) AS last
       FROM error_pattern_counts WHERE error_hash IN arrayMap(x -> toUInt64(x), {hashes:Array(String)})
       GROUP BY error_hash`,
      { hashes },
    );
    return new Map(rows.map((r) => [r.hash, { count: Number(r.n), first: r.first, last: r.last }]));
  }

  /** A service's most frequent ERROR/FATAL patterns in [from, to) (seconds), with how many lines each. */
  async servicePatterns(
    service: string,
    range: DayRange,
    limit = 5,
  ): Promise<{ errorHash: string; template: string; level: string; occurrences: number }[]> {
    const rows = await this.rows<{ hash: string; tpl: string; lvl: string; n: string }>(
      `SELECT toString(error_hash) AS hash, any(template) AS tpl, if(countIf(level = 'FATAL') > 0, 'FATAL', 'ERROR') AS lvl,
              count() AS n
       FROM logs WHERE service = {service:String} AND level IN ('ERROR', 'FATAL')
         AND timestamp >= toDateTime64({from:UInt32}, 3) AND timestamp < toDateTime64({to:UInt32}, 3)
       GROUP BY error_hash ORDER BY n DESC, hash LIMIT {limit:UInt32}`,
      { service, ...range, limit },
    );
    return rows.map((r) => ({ errorHash: r.hash, template: r.tpl, level: r.lvl, occurrences: Number(r.n) }));
  }

  async hourlyCounts(range: DayRange): Promise<HourlyCount[]> {
    const rows = await this.rows<{ service: string; environment: string; level: string; h: string; n: string }>(
      `SELECT service, environment, level, toUnixTimestamp(hour) AS h, sum(log_count) AS n
       FROM logs_hourly_agg WHERE hour >= toDateTime({from:UInt32}) AND hour < toDateTime({to:UInt32})
       GROUP BY service, environment, level, hour ORDER BY hour, service, environment, level`,
      range,
    );
    return rows.map((r) => ({
      service: r.service,
      environment: r.environment,
      level: r.level,
      hour: Number(r.h) * 1000,
      count: Number(r.n),
    }));
  }

  private async rows<T>(query: string, params: object): Promise<T[]> {
    try {
      return await (
        await this.client.query({ query, query_params: params as Record<string, unknown>, format: 'JSONEachRow' })
      ).json<T>();
    } catch (error) {
      throw classify(error, clickhouseErrorRules, 'sink');
    }
  }
}
