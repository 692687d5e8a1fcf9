/**
 * Per-service retention of `logs`. The table's TTL (LOGFLOW_LOGS_TTL_DAYS,
 * set by migrate) is the longest any log is kept; a service kept shorter
 * (`services.retention_days`, or `app_config` `retention.logs_days` for a
 * service with no row) has its older logs removed by a lightweight DELETE.
 * The aggregates fed from logs (hourly and minute counts, pattern totals)
 * keep their history: they are what baselines and reports compare with.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { toClickHouseDateTime } from './logs-table.ts';

export interface RetentionRule {
  /** Services this rule keeps for `days`; `others` is every service not named by another rule. */
  readonly services: readonly string[] | 'others';
  readonly days: number;
}

export interface RetentionPlan {
  readonly rules: readonly RetentionRule[];
  /** Rules at or above this are left to the table's TTL. */
  readonly tableTtlDays: number;
}

export interface RetentionRun {
  readonly deleted: number;
  /** One entry per rule that removed logs. */
  readonly removed: ReadonlyArray<{
    readonly services: readonly string[] | 'others';
    readonly days: number;
    readonly rows: number;
  }>;
}

const DAY_MS = 86_400_000;

/** Groups services by their retention days; services kept as long as the table keeps everything need no rule. */
export function retentionPlan(
  services: ReadonlyArray<{ readonly name: string; readonly retentionDays: number }>,
  defaultDays: number,
  tableTtlDays: number,
): RetentionPlan {
  const byDays = new Map<number, string[]>();
  for (const s of services) {
    if (s.retentionDays >= tableTtlDays) continue;
    byDays.set(s.retentionDays, [...(byDays.get(s.retentionDays) ?? []), s.name]);
  }
  const rules: RetentionRule[] = [...byDays].map(([days, names]) => ({ services: names.sort(), days }));
  if (defaultDays < tableTtlDays) rules.push({ services: 'others', days: defaultDays });
  return { rules, tableTtlDays };
}

/**
 * Removes the logs each rule no longer keeps, as of `now` (event time in
 * `npm start`). Counts first and deletes only where there is something to
 * delete: every DELETE is a mutation, and an hourly one that matches nothing
 * would still visit every part.
 */
export async function applyRetention(
  client: ClickHouseClient,
  plan: RetentionPlan,
  now: number,
  registered: readonly string[],
): Promise<RetentionRun> {
  const removed: Array<RetentionRun['removed'][number]> = [];
  for (const rule of plan.rules) {
    const where =
      rule.services === 'others'
        ? 'timestamp < {cutoff:DateTime64(3)} AND service NOT IN {names:Array(String)}'
        : 'timestamp < {cutoff:DateTime64(3)} AND service IN {names:Array(String)}';
    const params = {
      cutoff: toClickHouseDateTime(now - rule.days * DAY_MS),
      names: rule.services === 'others' ? [...registered] : [...rule.services],
    };
    const [row] = await (
      await client.query({
        query: `SELECT count() AS n FROM logs WHERE ${where}`,
        query_params: params,
        format: 'JSONEachRow',
      })
    ).json<{ n: string }>();
    const rows = Number(row?.n ?? 0);
    if (rows === 0) continue;
    await client.command({ query: `DELETE FROM logs WHERE ${where}`, query_params: params });
    removed.push({ services: rule.services, days: rule.days, rows });
  }
  return { deleted: removed.reduce((a, r) => a + r.rows, 0), removed };
}
