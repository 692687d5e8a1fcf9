/**
 * analysis_jobs: the queue between the API (which asks for an analysis) and
 * the nightly graph (which runs it). A job goes pending -> running ->
 * completed | failed; claiming is one statement with SKIP LOCKED, so any
 * number of workers can poll without taking the same job twice.
 */
import { z } from 'zod';
import {
  calendarDate,
  jsonObjectSchema,
  listLimit,
  notFound,
  parseInput,
  queryRows,
  RepositoryError,
  jsonParam,
  toSafeInteger,
  type JsonObject,
  type Queryable,
} from './db.ts';

export const ANALYSIS_JOB_TYPES = ['nightly', 'on_demand'] as const;
export const ANALYSIS_JOB_STATUSES = ['pending', 'running', 'completed', 'failed'] as const;
export type AnalysisJobType = (typeof ANALYSIS_JOB_TYPES)[number];
export type AnalysisJobStatus = (typeof ANALYSIS_JOB_STATUSES)[number];

export interface AnalysisJob {
  readonly id: number;
  readonly jobType: AnalysisJobType;
  readonly status: AnalysisJobStatus;
  /** 'YYYY-MM-DD': the day the analysis covers. */
  readonly targetDate: string;
  readonly requestedBy: string | null;
  readonly modelUsed: string | null;
  readonly tokensUsed: number;
  readonly processingTimeMs: number | null;
  readonly result: JsonObject | null;
  readonly error: string | null;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly completedAt: Date | null;
}

export interface NewAnalysisJob {
  readonly jobType: AnalysisJobType;
  readonly targetDate: string;
  readonly requestedBy?: string | null;
}

export interface AnalysisJobCompletion {
  readonly tokensUsed: number;
  /** null when the report was produced without an LLM. */
  readonly modelUsed: string | null;
  readonly processingTimeMs: number;
  readonly result: JsonObject;
}

export interface AnalysisJobListOptions {
  readonly status?: AnalysisJobStatus;
  readonly limit?: number;
}

export interface AnalysisJobRepository {
  create(job: NewAnalysisJob): Promise<AnalysisJob>;
  /** Oldest pending job, now running with started_at set; null when none is pending. */
  claimNextPending(): Promise<AnalysisJob | null>;
  complete(id: number, completion: AnalysisJobCompletion): Promise<AnalysisJob>;
  fail(id: number, error: string): Promise<AnalysisJob>;
  get(id: number): Promise<AnalysisJob | null>;
  /** Newest first. */
  list(options?: AnalysisJobListOptions): Promise<AnalysisJob[]>;
  /** Jobs left running by a worker that died before `startedBefore` go back to pending; returns how many. */
  requeueStale(startedBefore: Date): Promise<number>;
}

interface AnalysisJobRow {
  id: string;
  job_type: AnalysisJobType;
  status: AnalysisJobStatus;
  target_date: string;
  requested_by: string | null;
  model_used: string | null;
  tokens_used: number;
  processing_time_ms: number | null;
  result: JsonObject | null;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  completed_at: Date | null;
}

const COLUMNS = `id, job_type, status, target_date::text AS target_date, requested_by, model_used, tokens_used,
  processing_time_ms, result, error, created_at, started_at, completed_at`;

function toJob(row: AnalysisJobRow): AnalysisJob {
  return {
    id: toSafeInteger(row.id, 'analysis_jobs.id'),
    jobType: row.job_type,
    status: row.status,
    targetDate: row.target_date,
    requestedBy: row.requested_by,
    modelUsed: row.model_used,
    tokensUsed: row.tokens_used,
    processingTimeMs: row.processing_time_ms,
    result: row.result,
    error: row.error,
    createdAt: row.created_at,
    startedAt: row.started_at,
    completedAt: row.completed_at,
  };
}

const int32 = z.int().min(0).max(2_147_483_647);
const jobId = z.int().positive();

const newJobSchema = z.object({
  jobType: z.enum(ANALYSIS_JOB_TYPES),
  targetDate: calendarDate,
  requestedBy: z.string().min(1).nullish(),
});

const completionSchema = z.object({
  tokensUsed: int32,
  modelUsed: z.string().min(1).nullable(),
  processingTimeMs: int32,
  result: jsonObjectSchema,
});

const listSchema = z.object({ status: z.enum(ANALYSIS_JOB_STATUSES).optional(), limit: listLimit(50) });

export function createAnalysisJobRepository(db: Queryable): AnalysisJobRepository {
  /** Updates a job only from the given states; otherwise says whether it is missing or in the wrong state. */
  async function transition(
    id: number,
    from: readonly AnalysisJobStatus[],
    text: string,
    values: unknown[],
    verb: string,
  ): Promise<AnalysisJob> {
    const [row] = await queryRows<AnalysisJobRow>(db, text, values);
    if (row !== undefined) return toJob(row);
    const current = await get(id);
    if (current === null) throw notFound('analysis job', id);
    throw new RepositoryError(
      'invalid_state',
      `cannot ${verb} analysis job ${id}: it is ${current.status}, expected ${from.join(' or ')}`,
      {
        id,
        status: current.status,
      },
    );
  }

  async function get(id: number): Promise<AnalysisJob | null> {
    const checked = parseInput(jobId, id, 'analysis job id');
    const [row] = await queryRows<AnalysisJobRow>(db, `SELECT ${COLUMNS} FROM analysis_jobs WHERE id = $1`, [checked]);
    return row === undefined ? null : toJob(row);
  }

  return {
    async create(job) {
      const input = parseInput(newJobSchema, job, 'analysis job');
      const [row] = await queryRows<AnalysisJobRow>(
        db,
        `INSERT INTO analysis_jobs (job_type, status, target_date, requested_by)
         VALUES ($1, 'pending', $2::date, $3) RETURNING ${COLUMNS}`,
        [input.jobType, input.targetDate, input.requestedBy ?? null],
      );
      return toJob(row!);
    },

    async claimNextPending() {
      // The row lock taken by FOR UPDATE re-checks status, and SKIP LOCKED lets a
      // second claimer move on to the next job instead of waiting for this one.
      const [row] = await queryRows<AnalysisJobRow>(
        db,
        `UPDATE analysis_jobs SET status = 'running', started_at = now()
         WHERE id = (SELECT id FROM analysis_jobs WHERE status = 'pending'
                     ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
           AND status = 'pending'
         RETURNING ${COLUMNS}`,
      );
      return row === undefined ? null : toJob(row);
    },

    async complete(id, completion) {
      const checked = parseInput(jobId, id, 'analysis job id');
      const input = parseInput(completionSchema, completion, 'analysis job completion');
      return transition(
        checked,
        ['running'],
        `UPDATE analysis_jobs SET status = 'completed', completed_at = now(), tokens_used = $2, model_used = $3,
           processing_time_ms = $4, result = $5::jsonb, error = NULL
         WHERE id = $1 AND status = 'running' RETURNING ${COLUMNS}`,
        [checked, input.tokensUsed, input.modelUsed, input.processingTimeMs, jsonParam(input.result)],
        'complete',
      );
    },

    async fail(id, error) {
      const checked = parseInput(jobId, id, 'analysis job id');
      const message = parseInput(z.string().min(1), error, 'analysis job error');
      return transition(
        checked,
        ['pending', 'running'],
        `UPDATE analysis_jobs SET status = 'failed', completed_at = now(), error = $2
         WHERE id = $1 AND status IN ('pending', 'running') RETURNING ${COLUMNS}`,
        [checked, message],
        'fail',
      );
    },

    get,

    async list(options = {}) {
      const input = parseInput(listSchema, options, 'analysis job list options');
      const rows = await queryRows<AnalysisJobRow>(
        db,
        `SELECT ${COLUMNS} FROM analysis_jobs WHERE ($1::text IS NULL OR status = $1)
         ORDER BY created_at DESC, id DESC LIMIT $2`,
        [input.status ?? null, input.limit],
      );
      return rows.map(toJob);
    },

    async requeueStale(startedBefore) {
      const before = parseInput(z.date(), startedBefore, 'startedBefore');
      const rows = await queryRows<{ id: string }>(
        db,
        `UPDATE analysis_jobs SET status = 'pending', started_at = NULL
         WHERE status = 'running' AND started_at < $1 RETURNING id`,
        [before],
      );
      return rows.length;
    },
  };
}
