/**
 * anomaly_alerts: the store behind the alert lifecycle (Alertmanager habits).
 * An alert is pending until enough anomalous windows open it, then open,
 * optionally acknowledged, and finally resolved. At most one alert per dedup
 * key is active (not resolved) — a partial unique index guarantees it, and a
 * second active insert is reported as a conflict naming the active alert.
 * Every transition checks the current state in the same statement, so a
 * transition from the wrong state is an error, never a silent no-op.
 */
import { z } from 'zod';
import {
  errorHashFromRow,
  errorHashSchema,
  isUniqueViolation,
  jsonObjectSchema,
  jsonParam,
  listLimit,
  notFound,
  parseInput,
  queryRows,
  RepositoryError,
  SEVERITIES,
  toSafeInteger,
  type JsonObject,
  type Queryable,
  type Severity,
} from './db.ts';

export const ALERT_TYPES = ['spike', 'drop', 'silence', 'novel_pattern', 'statistical'] as const;
export const ALERT_STATUSES = ['pending', 'open', 'acknowledged', 'resolved'] as const;
export type AlertType = (typeof ALERT_TYPES)[number];
export type AlertStatus = (typeof ALERT_STATUSES)[number];
export type ActiveAlertStatus = Exclude<AlertStatus, 'resolved'>;

export interface AnomalyAlert {
  readonly id: number;
  readonly dedupKey: string;
  readonly rule: string;
  readonly alertType: AlertType;
  readonly status: AlertStatus;
  readonly severity: Severity;
  readonly service: string | null;
  readonly environment: string | null;
  readonly level: string | null;
  readonly errorHash: string | null;
  readonly score: number | null;
  readonly observed: number | null;
  readonly expected: number | null;
  readonly windowStart: Date | null;
  readonly windowEnd: Date | null;
  readonly anomalousWindows: number;
  readonly normalWindows: number;
  readonly description: string | null;
  readonly llmAnalysis: string | null;
  readonly suggestedActions: readonly string[];
  readonly details: JsonObject;
  readonly openedAt: Date | null;
  readonly acknowledgedAt: Date | null;
  readonly acknowledgedBy: string | null;
  readonly resolvedAt: Date | null;
  readonly lastNotifiedAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface NewAnomalyAlert {
  readonly dedupKey: string;
  readonly rule: string;
  readonly alertType: AlertType;
  /** 'pending' while the rule waits for more anomalous windows, 'open' to fire at once. */
  readonly status: 'pending' | 'open';
  readonly severity?: Severity;
  readonly service?: string | null;
  readonly environment?: string | null;
  readonly level?: string | null;
  readonly errorHash?: string | bigint | null;
  readonly score?: number | null;
  readonly observed?: number | null;
  readonly expected?: number | null;
  readonly windowStart?: Date | null;
  readonly windowEnd?: Date | null;
  readonly anomalousWindows?: number;
  readonly normalWindows?: number;
  readonly description?: string | null;
  readonly llmAnalysis?: string | null;
  readonly suggestedActions?: readonly string[];
  readonly details?: JsonObject;
  /** When the alert opened, for status 'open'; defaults to the database's now(). */
  readonly openedAt?: Date;
}

/** What the detector refreshes on an active alert as windows close; absent fields are left as they are. */
export interface AlertTouch
  extends Pick<
    NewAnomalyAlert,
    | 'severity'
    | 'score'
    | 'observed'
    | 'expected'
    | 'windowStart'
    | 'windowEnd'
    | 'anomalousWindows'
    | 'normalWindows'
    | 'description'
    | 'llmAnalysis'
    | 'suggestedActions'
    | 'details'
  > {
  readonly lastNotifiedAt?: Date | null;
}

export interface AlertListOptions {
  readonly status?: AlertStatus;
  readonly service?: string;
  readonly type?: AlertType;
  readonly rule?: string;
  readonly severity?: Severity;
  readonly limit?: number;
  /** `nextCursor` of the previous page. */
  readonly cursor?: string;
}

export interface AlertPage {
  readonly items: readonly AnomalyAlert[];
  /** Pass as `cursor` for the next page; null on the last page. */
  readonly nextCursor: string | null;
}

export interface AnomalyAlertRepository {
  /** The key's alert that is not resolved, if any. */
  findActive(dedupKey: string): Promise<AnomalyAlert | null>;
  /** A conflict error (kind 'conflict') when the key already has an active alert. */
  insert(alert: NewAnomalyAlert): Promise<AnomalyAlert>;
  get(id: number): Promise<AnomalyAlert | null>;
  /** pending -> open. */
  open(id: number, at?: Date): Promise<AnomalyAlert>;
  /** open -> acknowledged. */
  acknowledge(id: number, by: string, at?: Date): Promise<AnomalyAlert>;
  /** pending | open | acknowledged -> resolved. */
  resolve(id: number, at?: Date): Promise<AnomalyAlert>;
  /** Refreshes counters, scores and last_notified_at of an active alert. */
  touch(id: number, patch: AlertTouch): Promise<AnomalyAlert>;
  /** Newest first. */
  list(options?: AlertListOptions): Promise<AlertPage>;
  /** Open alerts nobody has analysed yet (llm_analysis is null), oldest first, at most `limit`. */
  listUnanalysed(limit: number): Promise<AnomalyAlert[]>;
  /**
   * Writes an alert's analysis and suggested actions unless one is already there (a concurrent run got there first);
   * true when written.
   */
  writeAnalysis(id: number, analysis: string, suggestedActions: readonly string[]): Promise<boolean>;
}

interface AnomalyAlertRow {
  id: string;
  dedup_key: string;
  rule: string;
  alert_type: AlertType;
  status: AlertStatus;
  severity: Severity;
  service: string | null;
  environment: string | null;
  level: string | null;
  error_hash: string | null;
  score: number | null;
  observed: number | null;
  expected: number | null;
  window_start: Date | null;
  window_end: Date | null;
  anomalous_windows: number;
  normal_windows: number;
  description: string | null;
  llm_analysis: string | null;
  suggested_actions: string[];
  details: JsonObject;
  opened_at: Date | null;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  resolved_at: Date | null;
  last_notified_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `id, dedup_key, rule, alert_type, status, severity, service, environment, level, error_hash, score, observed,
  expected, window_start, window_end, anomalous_windows, normal_windows, description, llm_analysis, suggested_actions,
  details, opened_at, acknowledged_at, acknowledged_by, resolved_at, last_notified_at, created_at, updated_at`;

const ONE_ACTIVE_INDEX = 'anomaly_alerts_one_active_idx';

function toAlert(row: AnomalyAlertRow): AnomalyAlert {
  return {
    id: toSafeInteger(row.id, 'anomaly_alerts.id'),
    dedupKey: row.dedup_key,
    rule: row.rule,
    alertType: row.alert_type,
    status: row.status,
    severity: row.severity,
    service: row.service,
    environment: row.environment,
    level: row.level,
    errorHash: row.error_hash === null ? null : errorHashFromRow(row.error_hash),
    score: row.score,
    observed: row.observed,
    expected: row.expected,
    windowStart: row.window_start,
    windowEnd: row.window_end,
    anomalousWindows: row.anomalous_windows,
    normalWindows: row.normal_windows,
    description: row.description,
    llmAnalysis: row.llm_analysis,
    suggestedActions: row.suggested_actions,
    details: row.details,
    openedAt: row.opened_at,
    acknowledgedAt: row.acknowledged_at,
    acknowledgedBy: row.acknowledged_by,
    resolvedAt: row.resolved_at,
    lastNotifiedAt: row.last_notified_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const text = z.string().min(1);
const windowCount = z.int().min(0).max(2_147_483_647);
const finite = z.number().finite();
const alertId = z.int().positive();
// jsonb and text refuse U+0000; an analysis is read by people, so it is bounded.
const analysisText = z
  .string()
  .min(1)
  .max(20_000)
  .refine((v) => !v.includes('\u0000'), 'contains a NUL character');
const analysisSchema = z.object({ analysis: analysisText, suggestedActions: z.array(analysisText).max(50) });

const newAlertSchema = z.object({
  dedupKey: text,
  rule: text,
  alertType: z.enum(ALERT_TYPES),
  status: z.enum(['pending', 'open']),
  severity: z.enum(SEVERITIES).default('medium'),
  service: text.nullish(),
  environment: text.nullish(),
  level: text.nullish(),
  errorHash: errorHashSchema.nullish(),
  score: finite.nullish(),
  observed: finite.nullish(),
  expected: finite.nullish(),
  windowStart: z.date().nullish(),
  windowEnd: z.date().nullish(),
  anomalousWindows: windowCount.default(0),
  normalWindows: windowCount.default(0),
  description: z.string().nullish(),
  llmAnalysis: z.string().nullish(),
  suggestedActions: z.array(z.string()).default([]),
  details: jsonObjectSchema.default({}),
  openedAt: z.date().optional(),
});

const touchShape = {
  severity: z.enum(SEVERITIES).optional(),
  score: finite.nullable().optional(),
  observed: finite.nullable().optional(),
  expected: finite.nullable().optional(),
  windowStart: z.date().nullable().optional(),
  windowEnd: z.date().nullable().optional(),
  anomalousWindows: windowCount.optional(),
  normalWindows: windowCount.optional(),
  description: z.string().nullable().optional(),
  llmAnalysis: z.string().nullable().optional(),
  suggestedActions: z.array(z.string()).optional(),
  details: jsonObjectSchema.optional(),
  lastNotifiedAt: z.date().nullable().optional(),
};
const touchSchema = z
  .object(touchShape)
  .refine((t) => Object.values(t).some((v) => v !== undefined), { message: 'nothing to update' });

/** Column per touchable field; `json` marks JSONB columns, whose values are sent as JSON text. */
const TOUCHABLE: ReadonlyArray<readonly [keyof typeof touchShape, string, boolean]> = [
  ['severity', 'severity', false],
  ['score', 'score', false],
  ['observed', 'observed', false],
  ['expected', 'expected', false],
  ['windowStart', 'window_start', false],
  ['windowEnd', 'window_end', false],
  ['anomalousWindows', 'anomalous_windows', false],
  ['normalWindows', 'normal_windows', false],
  ['description', 'description', false],
  ['llmAnalysis', 'llm_analysis', false],
  ['suggestedActions', 'suggested_actions', true],
  ['details', 'details', true],
  ['lastNotifiedAt', 'last_notified_at', false],
];

const listSchema = z.object({
  status: z.enum(ALERT_STATUSES).optional(),
  service: text.optional(),
  type: z.enum(ALERT_TYPES).optional(),
  rule: text.optional(),
  severity: z.enum(SEVERITIES).optional(),
  limit: listLimit(50),
  cursor: z
    .string()
    .regex(/^[1-9]\d{0,15}$/, 'is not a cursor returned by list')
    .optional(),
});

export function createAnomalyAlertRepository(db: Queryable): AnomalyAlertRepository {
  async function get(id: number): Promise<AnomalyAlert | null> {
    const checked = parseInput(alertId, id, 'alert id');
    const [row] = await queryRows<AnomalyAlertRow>(db, `SELECT ${COLUMNS} FROM anomaly_alerts WHERE id = $1`, [
      checked,
    ]);
    return row === undefined ? null : toAlert(row);
  }

  async function findActive(dedupKey: string): Promise<AnomalyAlert | null> {
    const key = parseInput(text, dedupKey, 'dedup key');
    const [row] = await queryRows<AnomalyAlertRow>(
      db,
      `SELECT ${COLUMNS} FROM anomaly_alerts WHERE dedup_key = $1 AND status <> 'resolved'`,
      [key],
    );
    return row === undefined ? null : toAlert(row);
  }

  /**
   * Runs an UPDATE guarded by `status = ANY(from)`. When it matches nothing,
   * reads the alert once more only to say why: missing, or in which state.
   */
  async function transition(
    id: number,
    from: readonly AlertStatus[],
    verb: string,
    setList: string,
    values: unknown[],
  ): Promise<AnomalyAlert> {
    const checked = parseInput(alertId, id, 'alert id');
    const [row] = await queryRows<AnomalyAlertRow>(
      db,
      `UPDATE anomaly_alerts SET ${setList}, updated_at = now()
       WHERE id = $1 AND status = ANY($2::text[]) RETURNING ${COLUMNS}`,
      [checked, from, ...values],
    );
    if (row !== undefined) return toAlert(row);
    const current = await get(checked);
    if (current === null) throw notFound('alert', checked);
    const by =
      current.status === 'acknowledged' && current.acknowledgedBy !== null ? ` by ${current.acknowledgedBy}` : '';
    const state = current.status === 'pending' ? 'still pending' : `already ${current.status}${by}`;
    throw new RepositoryError('invalid_state', `cannot ${verb} alert ${checked}: it is ${state}`, {
      id: checked,
      status: current.status,
    });
  }

  return {
    findActive,

    async insert(alert) {
      const a = parseInput(newAlertSchema, alert, 'alert');
      try {
        const [row] = await queryRows<AnomalyAlertRow>(
          db,
          `INSERT INTO anomaly_alerts (dedup_key, rule, alert_type, status, severity, service, environment, level, error_hash,
             score, observed, expected, window_start, window_end, anomalous_windows, normal_windows, description,
             llm_analysis, suggested_actions, details, opened_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19::jsonb, $20::jsonb,
             CASE WHEN $4 = 'open' THEN COALESCE($21::timestamptz, now()) END)
           RETURNING ${COLUMNS}`,
          [
            a.dedupKey,
            a.rule,
            a.alertType,
            a.status,
            a.severity,
            a.service ?? null,
            a.environment ?? null,
            a.level ?? null,
            a.errorHash ?? null,
            a.score ?? null,
            a.observed ?? null,
            a.expected ?? null,
            a.windowStart ?? null,
            a.windowEnd ?? null,
            a.anomalousWindows,
            a.normalWindows,
            a.description ?? null,
            a.llmAnalysis ?? null,
            jsonParam(a.suggestedActions),
            jsonParam(a.details),
            a.openedAt ?? null,
          ],
        );
        return toAlert(row!);
      } catch (error) {
        if (!isUniqueViolation(error, ONE_ACTIVE_INDEX)) throw error;
        // Outside a transaction the active alert can be named; inside one, the failed insert has aborted it.
        const active = await findActive(a.dedupKey).catch(() => null);
        throw new RepositoryError(
          'conflict',
          `dedup key "${a.dedupKey}" already has an active alert${active === null ? '' : ` (id ${active.id}, ${active.status})`}`,
          { dedupKey: a.dedupKey, ...(active === null ? {} : { activeId: active.id }) },
          error,
        );
      }
    },

    get,

    async open(id, at) {
      const when = parseInput(z.date().optional(), at, 'open time');
      return transition(id, ['pending'], 'open', `status = 'open', opened_at = COALESCE($3::timestamptz, now())`, [
        when ?? null,
      ]);
    },

    async acknowledge(id, by, at) {
      const who = parseInput(text, by, 'acknowledged by');
      const when = parseInput(z.date().optional(), at, 'acknowledge time');
      return transition(
        id,
        ['open'],
        'acknowledge',
        `status = 'acknowledged', acknowledged_by = $3, acknowledged_at = COALESCE($4::timestamptz, now())`,
        [who, when ?? null],
      );
    },

    async resolve(id, at) {
      const when = parseInput(z.date().optional(), at, 'resolve time');
      return transition(
        id,
        ['pending', 'open', 'acknowledged'],
        'resolve',
        `status = 'resolved', resolved_at = COALESCE($3::timestamptz, now())`,
        [when ?? null],
      );
    },

    async touch(id, patch) {
      const t = parseInput(touchSchema, patch, 'alert update');
      const assignments: string[] = [];
      const values: unknown[] = [];
      for (const [field, column, json] of TOUCHABLE) {
        const value = t[field];
        if (value === undefined) continue;
        values.push(json ? jsonParam(value) : value);
        // $1 and $2 are the id and the allowed states.
        assignments.push(`${column} = $${values.length + 2}${json ? '::jsonb' : ''}`);
      }
      return transition(id, ['pending', 'open', 'acknowledged'], 'update', assignments.join(', '), values);
    },

    async listUnanalysed(limit) {
      const n = parseInput(listLimit(50), limit, 'unanalysed alerts limit');
      const rows = await queryRows<AnomalyAlertRow>(
        db,
        `SELECT ${COLUMNS} FROM anomaly_alerts WHERE status = 'open' AND llm_analysis IS NULL ORDER BY id LIMIT $1`,
        [n],
      );
      return rows.map(toAlert);
    },

    async writeAnalysis(id, analysis, suggestedActions) {
      const checked = parseInput(alertId, id, 'alert id');
      const a = parseInput(analysisSchema, { analysis, suggestedActions }, 'alert analysis');
      const rows = await queryRows<{ id: string }>(
        db,
        `UPDATE anomaly_alerts SET llm_analysis = $2, suggested_actions = $3::jsonb, updated_at = now()
         WHERE id = $1 AND llm_analysis IS NULL RETURNING id`,
        [checked, a.analysis, jsonParam(a.suggestedActions)],
      );
      return rows.length > 0;
    },

    async list(options = {}) {
      const o = parseInput(listSchema, options, 'alert list options');
      // One more row than asked tells whether a next page exists.
      const rows = await queryRows<AnomalyAlertRow>(
        db,
        `SELECT ${COLUMNS} FROM anomaly_alerts
         WHERE ($1::text IS NULL OR status = $1)
           AND ($2::text IS NULL OR service = $2)
           AND ($3::text IS NULL OR alert_type = $3)
           AND ($4::bigint IS NULL OR id < $4)
           AND ($6::text IS NULL OR rule = $6)
           AND ($7::text IS NULL OR severity = $7)
         ORDER BY id DESC LIMIT $5`,
        [
          o.status ?? null,
          o.service ?? null,
          o.type ?? null,
          o.cursor ?? null,
          o.limit + 1,
          o.rule ?? null,
          o.severity ?? null,
        ],
      );
      const items = rows.slice(0, o.limit).map(toAlert);
      const last = items.at(-1);
      return { items, nextCursor: rows.length > o.limit && last !== undefined ? String(last.id) : null };
    },
  };
}
