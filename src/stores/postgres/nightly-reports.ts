/**
 * nightly_reports: one report per day. Re-running the analysis for a day
 * replaces that day's report entirely (keeping its id), so a re-run after a
 * fix or an on-demand analysis never leaves two reports for one date nor
 * fields of the old one mixed into the new.
 */
import { z } from 'zod';
import {
  calendarDate,
  errorHashSchema,
  jsonObjectSchema,
  jsonParam,
  listLimit,
  parseInput,
  queryRows,
  SEVERITIES,
  toSafeInteger,
  type JsonObject,
  type Queryable,
  type Severity,
} from './db.ts';

export const REPORT_PRODUCERS = ['llm', 'statistical'] as const;
export type ReportProducer = (typeof REPORT_PRODUCERS)[number];

/** How serious one error pattern looked that day. */
export interface PatternSeverity {
  readonly errorHash: string;
  readonly template: string;
  readonly severity: Severity;
  readonly occurrences: number;
  readonly reason?: string;
}

export interface NightlyReportInput {
  /** 'YYYY-MM-DD' */
  readonly reportDate: string;
  readonly jobId?: number | null;
  readonly producedBy: ReportProducer;
  readonly modelUsed?: string | null;
  readonly summary: string;
  readonly keyIssues?: readonly string[];
  readonly probableCauses?: readonly string[];
  readonly recommendations?: readonly string[];
  readonly patternSeverity?: readonly PatternSeverity[];
  readonly statistics?: JsonObject;
  readonly totalLogs: number;
  readonly totalErrors: number;
  readonly errorRate: number;
  readonly uniquePatterns: number;
  readonly anomaliesDetected: number;
  readonly tokensUsed?: number;
}

export interface NightlyReport {
  readonly id: number;
  readonly reportDate: string;
  readonly jobId: number | null;
  readonly producedBy: ReportProducer;
  readonly modelUsed: string | null;
  readonly summary: string;
  readonly keyIssues: readonly string[];
  readonly probableCauses: readonly string[];
  readonly recommendations: readonly string[];
  readonly patternSeverity: readonly PatternSeverity[];
  readonly statistics: JsonObject;
  readonly totalLogs: number;
  readonly totalErrors: number;
  readonly errorRate: number;
  readonly uniquePatterns: number;
  readonly anomaliesDetected: number;
  readonly tokensUsed: number;
  readonly generatedAt: Date;
}

export interface NightlyReportListOptions {
  readonly limit?: number;
  /** Only reports for dates strictly before this 'YYYY-MM-DD' (the next page of a newest-first list). */
  readonly before?: string;
}

export interface NightlyReportRepository {
  /** Inserts the day's report, or replaces every field of the existing one. */
  upsertForDate(report: NightlyReportInput): Promise<NightlyReport>;
  getByDate(reportDate: string): Promise<NightlyReport | null>;
  /** Newest date first. */
  list(options?: NightlyReportListOptions): Promise<NightlyReport[]>;
}

interface NightlyReportRow {
  id: string;
  report_date: string;
  job_id: string | null;
  produced_by: ReportProducer;
  model_used: string | null;
  summary: string;
  key_issues: string[];
  probable_causes: string[];
  recommendations: string[];
  pattern_severity: PatternSeverity[];
  statistics: JsonObject;
  total_logs: string;
  total_errors: string;
  error_rate: number;
  unique_patterns: number;
  anomalies_detected: number;
  tokens_used: number;
  generated_at: Date;
}

const COLUMNS = `id, report_date::text AS report_date, job_id, produced_by, model_used, summary, key_issues, probable_causes,
  recommendations, pattern_severity, statistics, total_logs, total_errors, error_rate, unique_patterns,
  anomalies_detected, tokens_used, generated_at`;

function toReport(row: NightlyReportRow): NightlyReport {
  return {
    id: toSafeInteger(row.id, 'nightly_reports.id'),
    reportDate: row.report_date,
    jobId: row.job_id === null ? null : toSafeInteger(row.job_id, 'nightly_reports.job_id'),
    producedBy: row.produced_by,
    modelUsed: row.model_used,
    summary: row.summary,
    keyIssues: row.key_issues,
    probableCauses: row.probable_causes,
    recommendations: row.recommendations,
    patternSeverity: row.pattern_severity,
    statistics: row.statistics,
    totalLogs: toSafeInteger(row.total_logs, 'nightly_reports.total_logs'),
    totalErrors: toSafeInteger(row.total_errors, 'nightly_reports.total_errors'),
    errorRate: row.error_rate,
    uniquePatterns: row.unique_patterns,
    anomaliesDetected: row.anomalies_detected,
    tokensUsed: row.tokens_used,
    generatedAt: row.generated_at,
  };
}

const count = z.int().min(0);
const int32 = count.max(2_147_483_647);

const reportSchema = z.object({
  reportDate: calendarDate,
  jobId: z.int().positive().nullish(),
  producedBy: z.enum(REPORT_PRODUCERS),
  modelUsed: z.string().min(1).nullish(),
  summary: z.string().min(1),
  keyIssues: z.array(z.string()).default([]),
  probableCauses: z.array(z.string()).default([]),
  recommendations: z.array(z.string()).default([]),
  patternSeverity: z
    .array(
      z.object({
        errorHash: errorHashSchema,
        template: z.string(),
        severity: z.enum(SEVERITIES),
        occurrences: count,
        reason: z.string().optional(),
      }),
    )
    .default([]),
  statistics: jsonObjectSchema.default({}),
  totalLogs: count,
  totalErrors: count,
  errorRate: z.number().min(0).max(1),
  uniquePatterns: int32,
  anomaliesDetected: int32,
  tokensUsed: int32.default(0),
});

const listSchema = z.object({ limit: listLimit(30), before: calendarDate.optional() });

export function createNightlyReportRepository(db: Queryable): NightlyReportRepository {
  return {
    async upsertForDate(report) {
      const r = parseInput(reportSchema, report, 'nightly report');
      const [row] = await queryRows<NightlyReportRow>(
        db,
        `INSERT INTO nightly_reports (report_date, job_id, produced_by, model_used, summary, key_issues, probable_causes,
           recommendations, pattern_severity, statistics, total_logs, total_errors, error_rate, unique_patterns,
           anomalies_detected, tokens_used, generated_at)
         VALUES ($1::date, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::jsonb, $10::jsonb, $11, $12, $13, $14, $15, $16, now())
         ON CONFLICT (report_date) DO UPDATE SET
           job_id = EXCLUDED.job_id, produced_by = EXCLUDED.produced_by, model_used = EXCLUDED.model_used,
           summary = EXCLUDED.summary, key_issues = EXCLUDED.key_issues, probable_causes = EXCLUDED.probable_causes,
           recommendations = EXCLUDED.recommendations, pattern_severity = EXCLUDED.pattern_severity,
           statistics = EXCLUDED.statistics, total_logs = EXCLUDED.total_logs, total_errors = EXCLUDED.total_errors,
           error_rate = EXCLUDED.error_rate, unique_patterns = EXCLUDED.unique_patterns,
           anomalies_detected = EXCLUDED.anomalies_detected, tokens_used = EXCLUDED.tokens_used,
           generated_at = EXCLUDED.generated_at
         RETURNING ${COLUMNS}`,
        [
          r.reportDate,
          r.jobId ?? null,
          r.producedBy,
          r.modelUsed ?? null,
          r.summary,
          jsonParam(r.keyIssues),
          jsonParam(r.probableCauses),
          jsonParam(r.recommendations),
          jsonParam(r.patternSeverity),
          jsonParam(r.statistics),
          r.totalLogs,
          r.totalErrors,
          r.errorRate,
          r.uniquePatterns,
          r.anomaliesDetected,
          r.tokensUsed,
        ],
      );
      return toReport(row!);
    },

    async getByDate(reportDate) {
      const date = parseInput(calendarDate, reportDate, 'report date');
      const [row] = await queryRows<NightlyReportRow>(
        db,
        `SELECT ${COLUMNS} FROM nightly_reports WHERE report_date = $1::date`,
        [date],
      );
      return row === undefined ? null : toReport(row);
    },

    async list(options = {}) {
      const input = parseInput(listSchema, options, 'nightly report list options');
      const rows = await queryRows<NightlyReportRow>(
        db,
        `SELECT ${COLUMNS} FROM nightly_reports WHERE ($1::date IS NULL OR report_date < $1::date)
         ORDER BY report_date DESC LIMIT $2`,
        [input.before ?? null, input.limit],
      );
      return rows.map(toReport);
    },
  };
}
