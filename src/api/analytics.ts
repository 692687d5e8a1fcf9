/**
 * The API's ClickHouse reads: logs search, error-rate series, top errors,
 * hourly counts and error patterns. Every value travels as a `{name:Type}`
 * query parameter; the SQL text is assembled only from the fixed fragments
 * below, chosen by which filters are present, never from input.
 *
 * Aliases differ from column names on purpose: an alias named like its
 * column would shadow the column in WHERE.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { toClickHouseDateTime } from '../stores/logs-table.ts';
import type { TimeRange } from './schemas.ts';

const ERROR_LEVELS = "('ERROR', 'FATAL')";

/** What a log must match, apart from its time: the filters of the logs search and of the live tail. */
export interface LogMatch {
  readonly service?: string | undefined;
  readonly environment?: string | undefined;
  readonly level?: string | undefined;
  readonly q?: string | undefined;
  readonly errorHash?: string | undefined;
  readonly traceId?: string | undefined;
  /** `attr.<key>=<value>` pairs, all required; keys already checked against ATTRIBUTE_KEY (schemas.ts). */
  readonly attributes?: ReadonlyArray<readonly [string, string]> | undefined;
}

export interface LogFilter extends LogMatch {
  readonly range: TimeRange;
}

export interface LogCursor {
  readonly t: number;
  readonly id: string;
}

export interface LogItem {
  readonly logId: string;
  readonly timestamp: string;
  readonly service: string;
  readonly environment: string;
  readonly level: string;
  readonly message: string;
  readonly template: string;
  readonly errorHash: string;
  readonly traceId: string;
  readonly host: string;
  readonly attributes: Readonly<Record<string, string>>;
}

/** A log as a query returns it; the short aliases keep WHERE on the columns themselves. */
interface LogRow {
  lid: string;
  ts: string;
  svc: string;
  env: string;
  lvl: string;
  msg: string;
  tpl: string;
  hash: string;
  trace: string;
  hst: string;
  attrs: Record<string, string>;
}

const LOG_COLUMNS = `toString(log_id) AS lid, toUnixTimestamp64Milli(timestamp) AS ts, service AS svc, environment AS env,
       level AS lvl, message AS msg, template AS tpl, toString(error_hash) AS hash, trace_id AS trace, host AS hst,
       attributes AS attrs`;

function logItem(r: LogRow): LogItem {
  return {
    logId: r.lid,
    timestamp: iso(r.ts),
    service: r.svc,
    environment: r.env,
    level: r.lvl,
    message: r.msg,
    template: r.tpl,
    errorHash: r.hash,
    traceId: r.trace,
    host: r.hst,
    attributes: r.attrs,
  };
}

/**
 * Where a live tail stands in the logs table: the last row it delivered, in
 * the order rows became visible. `_block_number` is allocated when an insert
 * commits, under the same lock that makes its part visible (plain MergeTree),
 * and `enable_block_number_column` keeps it through merges
 * (sql/clickhouse/001_logs.sql); with `_block_offset` it orders every row.
 */
export interface TailPosition {
  readonly block: string;
  readonly offset: string;
}

export interface TailRow {
  readonly position: TailPosition;
  /** ingested_at of the row, milliseconds: where a resumed tail narrows its scan from. */
  readonly ingestedAt: number;
  readonly item: LogItem;
}

export interface SeriesPoint {
  readonly t: string;
  readonly total: number;
  readonly errors: number;
  readonly rate: number;
}

export interface PatternItem {
  readonly errorHash: string;
  readonly template: string;
  readonly service: string;
  readonly services: readonly string[];
  readonly level: string;
  readonly occurrences: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly hasEmbedding: boolean;
}

export interface PatternCursor {
  readonly t: number;
  readonly h: string;
}

const iso = (ms: number | string): string => new Date(Number(ms)).toISOString();

class Where {
  readonly conditions: string[] = [];
  readonly params: Record<string, unknown> = {};
  add(condition: string, params: Record<string, unknown> = {}): this {
    this.conditions.push(condition);
    Object.assign(this.params, params);
    return this;
  }
  sql(): string {
    return this.conditions.length === 0 ? '' : `WHERE ${this.conditions.join(' AND ')}`;
  }
}

function logsWhere(f: LogFilter, time = 'timestamp'): Where {
  const w = new Where()
    .add(`${time} >= {from:DateTime64(3, 'UTC')}`, { from: toClickHouseDateTime(f.range.from) })
    .add(`${time} < {to:DateTime64(3, 'UTC')}`, { to: toClickHouseDateTime(f.range.to) });
  return matching(w, f);
}

function matching(w: Where, f: LogMatch): Where {
  if (f.service !== undefined) w.add('service = {service:String}', { service: f.service });
  if (f.environment !== undefined) w.add('environment = {environment:String}', { environment: f.environment });
  if (f.level !== undefined) w.add('level = {level:String}', { level: f.level });
  if (f.q !== undefined) w.add('positionCaseInsensitiveUTF8(message, {q:String}) > 0', { q: f.q });
  if (f.errorHash !== undefined) w.add('error_hash = toUInt64({errorHash:String})', { errorHash: f.errorHash });
  if (f.traceId !== undefined) w.add('trace_id = {traceId:String}', { traceId: f.traceId });
  // Keys and values both travel as parameters; the parameter names are numbered here, never taken from input.
  for (const [i, [key, value]] of (f.attributes ?? []).entries())
    w.add(`attributes[{ak${i}:String}] = {av${i}:String}`, { [`ak${i}`]: key, [`av${i}`]: value });
  return w;
}

function fill(
  range: TimeRange,
  stepSeconds: number,
  rows: ReadonlyMap<number, { total: number; errors: number }>,
): SeriesPoint[] {
  const step = stepSeconds * 1000;
  const points: SeriesPoint[] = [];
  for (let t = Math.floor(range.from / step) * step; t < range.to; t += step) {
    const r = rows.get(t / 1000) ?? { total: 0, errors: 0 };
    points.push({ t: iso(t), total: r.total, errors: r.errors, rate: r.total === 0 ? 0 : r.errors / r.total });
  }
  return points;
}

export class Analytics {
  constructor(private readonly client: ClickHouseClient) {}

  async #rows<T>(query: string, params: Record<string, unknown>): Promise<T[]> {
    const result = await this.client.query({ query, query_params: params, format: 'JSONEachRow' });
    return result.json<T>();
  }

  /** Newest first; keyset on (timestamp, log_id), so pages neither skip nor repeat rows. */
  async logs(
    filter: LogFilter,
    limit: number,
    after: LogCursor | undefined,
  ): Promise<{ items: LogItem[]; last: LogCursor | undefined; more: boolean }> {
    const w = logsWhere(filter);
    if (after !== undefined) {
      w.add(
        `timestamp <= {ct:DateTime64(3, 'UTC')} AND (timestamp, log_id) < ({ct:DateTime64(3, 'UTC')}, {cid:UUID})`,
        {
          ct: toClickHouseDateTime(after.t),
          cid: after.id,
        },
      );
    }
    const rows = await this.#rows<LogRow>(
      `SELECT ${LOG_COLUMNS}
       FROM logs ${w.sql()}
       ORDER BY timestamp DESC, log_id DESC
       LIMIT {limit:UInt32}`,
      { ...w.params, limit: limit + 1 },
    );
    const items = rows.slice(0, limit).map(logItem);
    const lastRow = rows[limit - 1];
    return {
      items,
      last: lastRow === undefined ? undefined : { t: Number(lastRow.ts), id: lastRow.lid },
      more: rows.length > limit,
    };
  }

  /**
   * The position of the newest row visible now among those ingested since
   * `since`, or the start of the table when there is none: a tail from there
   * shows only what is stored after this call.
   */
  async tailEnd(since: number): Promise<TailPosition> {
    const [row] = await this.#rows<{ b: string; o: string }>(
      `SELECT toString(_block_number) AS b, toString(_block_offset) AS o FROM logs
       WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
       ORDER BY _block_number DESC, _block_offset DESC LIMIT 1`,
      { since: toClickHouseDateTime(since) },
    );
    return row === undefined ? { block: '0', offset: '0' } : { block: row.b, offset: row.o };
  }

  /**
   * Rows after `after` in commit order that match, among those ingested since
   * `since` (the skip index on ingested_at keeps the scan to recent parts).
   */
  async tail(match: LogMatch, after: TailPosition, since: number, limit: number): Promise<TailRow[]> {
    const w = matching(
      new Where()
        .add(`ingested_at >= {since:DateTime64(3, 'UTC')}`, { since: toClickHouseDateTime(since) })
        .add('(_block_number, _block_offset) > ({pb:UInt64}, {po:UInt64})', { pb: after.block, po: after.offset }),
      match,
    );
    const rows = await this.#rows<LogRow & { b: string; o: string; ing: string }>(
      `SELECT ${LOG_COLUMNS}, toString(_block_number) AS b, toString(_block_offset) AS o,
              toUnixTimestamp64Milli(ingested_at) AS ing
       FROM logs ${w.sql()}
       ORDER BY _block_number, _block_offset
       LIMIT {limit:UInt32}`,
      { ...w.params, limit },
    );
    return rows.map((r) => ({ position: { block: r.b, offset: r.o }, ingestedAt: Number(r.ing), item: logItem(r) }));
  }

  /**
   * Per service, total and ERROR+FATAL counts per bucket. Whole-minute steps
   * read the per-minute rollup; finer steps read the logs themselves.
   */
  async errorRate(filter: LogFilter, stepSeconds: number): Promise<Array<{ service: string; points: SeriesPoint[] }>> {
    const fromRollup = stepSeconds % 60 === 0;
    const w = logsWhere(
      { ...filter, q: undefined, errorHash: undefined, level: undefined },
      fromRollup ? 'minute' : 'timestamp',
    );
    const query = fromRollup
      ? `SELECT service AS svc, intDiv(toUInt32(minute), {step:UInt32}) * {step:UInt32} AS bucket,
                sum(log_count) AS total, sumIf(log_count, level IN ${ERROR_LEVELS}) AS errs
         FROM logs_minute_agg ${w.sql()} GROUP BY svc, bucket ORDER BY svc, bucket`
      : `SELECT service AS svc, intDiv(toUnixTimestamp(timestamp), {step:UInt32}) * {step:UInt32} AS bucket,
                count() AS total, countIf(level IN ${ERROR_LEVELS}) AS errs
         FROM logs ${w.sql()} GROUP BY svc, bucket ORDER BY svc, bucket`;
    const rows = await this.#rows<{ svc: string; bucket: string; total: string; errs: string }>(query, {
      ...w.params,
      step: stepSeconds,
    });
    const byService = new Map<string, Map<number, { total: number; errors: number }>>();
    for (const r of rows) {
      const buckets = byService.get(r.svc) ?? new Map<number, { total: number; errors: number }>();
      buckets.set(Number(r.bucket), { total: Number(r.total), errors: Number(r.errs) });
      byService.set(r.svc, buckets);
    }
    return [...byService].map(([service, buckets]) => ({ service, points: fill(filter.range, stepSeconds, buckets) }));
  }

  async topErrors(
    filter: LogFilter,
    limit: number,
  ): Promise<
    Array<{ errorHash: string; template: string; service: string; level: string; count: number; lastSeen: string }>
  > {
    const w = logsWhere({ range: filter.range, service: filter.service }).add(`level IN ${ERROR_LEVELS}`);
    const rows = await this.#rows<{ hash: string; tpl: string; svc: string; lvl: string; n: string; last: string }>(
      `SELECT toString(error_hash) AS hash, any(template) AS tpl, service AS svc, level AS lvl, count() AS n,
              toUnixTimestamp64Milli(max(timestamp)) AS last
       FROM logs ${w.sql()}
       GROUP BY error_hash, service, level
       ORDER BY n DESC, hash
       LIMIT {limit:UInt32}`,
      { ...w.params, limit },
    );
    return rows.map((r) => ({
      errorHash: r.hash,
      template: r.tpl,
      service: r.svc,
      level: r.lvl,
      count: Number(r.n),
      lastSeen: iso(r.last),
    }));
  }

  /** From the hourly rollup the materialized view keeps; hours overlapping the range are included whole. */
  async hourly(
    filter: LogFilter,
  ): Promise<
    Array<{ hour: string; service: string; environment: string; level: string; count: number; errors: number }>
  > {
    const w = new Where()
      .add(`hour >= toStartOfHour({from:DateTime64(3, 'UTC')})`, { from: toClickHouseDateTime(filter.range.from) })
      .add(`hour < {to:DateTime64(3, 'UTC')}`, { to: toClickHouseDateTime(filter.range.to) });
    if (filter.service !== undefined) w.add('service = {service:String}', { service: filter.service });
    if (filter.environment !== undefined)
      w.add('environment = {environment:String}', { environment: filter.environment });
    const rows = await this.#rows<{ h: string; svc: string; env: string; lvl: string; n: string; errs: string }>(
      `SELECT toUnixTimestamp(hour) AS h, service AS svc, environment AS env, level AS lvl, sum(log_count) AS n, sum(error_count) AS errs
       FROM logs_hourly_agg ${w.sql()}
       GROUP BY hour, service, environment, level
       ORDER BY hour, service, environment, level
       LIMIT 100000`,
      w.params,
    );
    return rows.map((r) => ({
      hour: iso(Number(r.h) * 1000),
      service: r.svc,
      environment: r.env,
      level: r.lvl,
      count: Number(r.n),
      errors: Number(r.errs),
    }));
  }

  /** Most recently seen first; keyset on (last_seen, error_hash). */
  async patterns(
    filter: { service?: string | undefined; q?: string | undefined; errorHash?: string | undefined },
    limit: number,
    after: PatternCursor | undefined,
  ): Promise<{ items: PatternItem[]; last: PatternCursor | undefined; more: boolean }> {
    const w = new Where();
    if (filter.service !== undefined) w.add('has(p.services, {service:String})', { service: filter.service });
    if (filter.q !== undefined) w.add('positionCaseInsensitiveUTF8(p.template, {q:String}) > 0', { q: filter.q });
    if (filter.errorHash !== undefined)
      w.add('p.error_hash = toUInt64({errorHash:String})', { errorHash: filter.errorHash });
    if (after !== undefined) {
      w.add(`(p.last_seen, p.error_hash) < ({ct:DateTime64(3, 'UTC')}, toUInt64({ch:String}))`, {
        ct: toClickHouseDateTime(after.t),
        ch: after.h,
      });
    }
    const rows = await this.#rows<{
      hash: string;
      tpl: string;
      svcs: string[];
      lvl: string;
      occ: string;
      first: string;
      last: string;
      emb: number;
    }>(
      `SELECT toString(p.error_hash) AS hash, p.template AS tpl, p.services AS svcs, p.level AS lvl, toString(p.occurrence_count) AS occ,
              toUnixTimestamp64Milli(p.first_seen) AS first, toUnixTimestamp64Milli(p.last_seen) AS last, p.has_embedding AS emb
       FROM error_patterns AS p FINAL ${w.sql()}
       ORDER BY p.last_seen DESC, p.error_hash DESC
       LIMIT {limit:UInt32}`,
      { ...w.params, limit: limit + 1 },
    );
    const page = rows.slice(0, limit);
    // error_patterns.occurrence_count is written when a pattern is first embedded and by the nightly analysis; the
    // running totals say how many there are now (sql/clickhouse/008_error_pattern_counts.sql).
    const totals = await this.#rows<{ hash: string; n: string }>(
      `SELECT toString(error_hash) AS hash, toString(sum(occurrences)) AS n FROM error_pattern_counts
       WHERE error_hash IN arrayMap(x -> toUInt64(x), {hashes:Array(String)}) GROUP BY error_hash`,
      { hashes: page.map((r) => r.hash) },
    );
    const totalOf = new Map(totals.map((t) => [t.hash, Number(t.n)]));
    const items = page.map((r) => ({
      errorHash: r.hash,
      template: r.tpl,
      service: r.svcs[0] ?? '',
      services: r.svcs,
      level: r.lvl,
      occurrences: Math.max(Number(r.occ), totalOf.get(r.hash) ?? 0),
      firstSeen: iso(r.first),
      lastSeen: iso(r.last),
      hasEmbedding: Number(r.emb) === 1,
    }));
    const lastRow = rows[limit - 1];
    return {
      items,
      last: lastRow === undefined ? undefined : { t: Number(lastRow.last), h: lastRow.hash },
      more: rows.length > limit,
    };
  }

  /** Occurrences of one pattern per bucket, zero-filled. */
  async patternSeries(
    errorHash: string,
    range: TimeRange,
    stepSeconds: number,
  ): Promise<Array<{ t: string; count: number }>> {
    const w = logsWhere({ range, errorHash });
    const rows = await this.#rows<{ bucket: string; n: string }>(
      `SELECT intDiv(toUnixTimestamp(timestamp), {step:UInt32}) * {step:UInt32} AS bucket, count() AS n
       FROM logs ${w.sql()} GROUP BY bucket ORDER BY bucket`,
      { ...w.params, step: stepSeconds },
    );
    const counts = new Map(rows.map((r) => [Number(r.bucket), { total: Number(r.n), errors: 0 }]));
    return fill(range, stepSeconds, counts).map((p) => ({ t: p.t, count: p.total }));
  }
}
