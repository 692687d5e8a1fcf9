/**
 * alert_silences: Alertmanager-style silences. A silence has matchers (rule,
 * service, environment, level, dedup key); a NULL matcher matches anything,
 * so one silence can cover a whole service or a single alert. Silenced
 * alerts are still recorded; only their notifications are held back.
 */
import { z } from 'zod';
import { execute, parseInput, queryRows, toSafeInteger, type Queryable } from './db.ts';

export interface AlertSilence {
  readonly id: number;
  readonly rule: string | null;
  readonly service: string | null;
  readonly environment: string | null;
  readonly level: string | null;
  readonly dedupKey: string | null;
  readonly reason: string;
  readonly createdBy: string;
  readonly startsAt: Date;
  readonly expiresAt: Date;
  readonly createdAt: Date;
}

export interface NewAlertSilence {
  readonly rule?: string | null;
  readonly service?: string | null;
  readonly environment?: string | null;
  readonly level?: string | null;
  readonly dedupKey?: string | null;
  readonly reason: string;
  readonly createdBy: string;
  /** Defaults to the database's now(). */
  readonly startsAt?: Date;
  readonly expiresAt: Date;
}

/** The parts of an alert silences match on. */
export interface SilenceTarget {
  readonly rule: string;
  readonly service: string | null;
  readonly environment: string | null;
  readonly level: string | null;
  readonly dedupKey: string;
}

export interface AlertSilenceRepository {
  /** At least one matcher is required: a silence matching everything would mute all alerting. */
  create(silence: NewAlertSilence): Promise<AlertSilence>;
  /** Silences in force at `now` (starts_at <= now < expires_at), soonest to expire first. */
  listActive(now: Date): Promise<AlertSilence[]>;
  /** Whether any silence in force at `now` matches the alert. */
  matches(target: SilenceTarget, now: Date): Promise<boolean>;
  delete(id: number): Promise<boolean>;
}

interface AlertSilenceRow {
  id: string;
  rule: string | null;
  service: string | null;
  environment: string | null;
  level: string | null;
  dedup_key: string | null;
  reason: string;
  created_by: string;
  starts_at: Date;
  expires_at: Date;
  created_at: Date;
}

const COLUMNS =
  'id, rule, service, environment, level, dedup_key, reason, created_by, starts_at, expires_at, created_at';

const toSilence = (row: AlertSilenceRow): AlertSilence => ({
  id: toSafeInteger(row.id, 'alert_silences.id'),
  rule: row.rule,
  service: row.service,
  environment: row.environment,
  level: row.level,
  dedupKey: row.dedup_key,
  reason: row.reason,
  createdBy: row.created_by,
  startsAt: row.starts_at,
  expiresAt: row.expires_at,
  createdAt: row.created_at,
});

const matcher = z.string().min(1).nullish();
const newSilenceSchema = z
  .object({
    rule: matcher,
    service: matcher,
    environment: matcher,
    level: matcher,
    dedupKey: matcher,
    reason: z.string().min(1),
    createdBy: z.string().min(1),
    startsAt: z.date().optional(),
    expiresAt: z.date(),
  })
  .refine((s) => [s.rule, s.service, s.environment, s.level, s.dedupKey].some((m) => m !== undefined && m !== null), {
    message: 'a silence needs at least one matcher (rule, service, environment, level or dedupKey)',
  })
  .refine((s) => s.startsAt === undefined || s.expiresAt > s.startsAt, {
    message: 'must be after startsAt',
    path: ['expiresAt'],
  });

const targetSchema = z.object({
  rule: z.string().min(1),
  service: z.string().nullable(),
  environment: z.string().nullable(),
  level: z.string().nullable(),
  dedupKey: z.string().min(1),
});

export function createAlertSilenceRepository(db: Queryable): AlertSilenceRepository {
  return {
    async create(silence) {
      const s = parseInput(newSilenceSchema, silence, 'alert silence');
      // now() has microseconds and callers check with millisecond Dates: untruncated, a silence
      // created "now" could be judged not yet in force by a Date taken right after it (CI saw this).
      const [row] = await queryRows<AlertSilenceRow>(
        db,
        `INSERT INTO alert_silences (rule, service, environment, level, dedup_key, reason, created_by, starts_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8::timestamptz, date_trunc('milliseconds', now())), $9) RETURNING ${COLUMNS}`,
        [
          s.rule ?? null,
          s.service ?? null,
          s.environment ?? null,
          s.level ?? null,
          s.dedupKey ?? null,
          s.reason,
          s.createdBy,
          s.startsAt ?? null,
          s.expiresAt,
        ],
      );
      return toSilence(row!);
    },

    async listActive(now) {
      const at = parseInput(z.date(), now, 'time');
      const rows = await queryRows<AlertSilenceRow>(
        db,
        `SELECT ${COLUMNS} FROM alert_silences WHERE starts_at <= $1 AND expires_at > $1 ORDER BY expires_at, id`,
        [at],
      );
      return rows.map(toSilence);
    },

    async matches(target, now) {
      const t = parseInput(targetSchema, target, 'silence target');
      const at = parseInput(z.date(), now, 'time');
      // A matcher set on the silence never matches an alert whose field is NULL (NULL = x is not true).
      const [row] = await queryRows<{ silenced: boolean }>(
        db,
        `SELECT EXISTS (SELECT 1 FROM alert_silences
           WHERE starts_at <= $6 AND expires_at > $6
             AND (rule IS NULL OR rule = $1)
             AND (service IS NULL OR service = $2)
             AND (environment IS NULL OR environment = $3)
             AND (level IS NULL OR level = $4)
             AND (dedup_key IS NULL OR dedup_key = $5)) AS silenced`,
        [t.rule, t.service, t.environment, t.level, t.dedupKey, at],
      );
      return row!.silenced;
    },

    async delete(id) {
      const checked = parseInput(z.int().positive(), id, 'silence id');
      return (await execute(db, 'DELETE FROM alert_silences WHERE id = $1', [checked])) > 0;
    },
  };
}
