/**
 * app_config: runtime settings an admin can change (JSON values under dotted
 * keys, e.g. `anomaly.z_threshold`), read by every pipeline at start.
 */
import { z } from 'zod';
import { parseCron } from '../../sources/schedule.ts';
import { execute, jsonParam, parseInput, queryRows, type JsonValue, type Queryable } from './db.ts';

export interface AppConfigEntry {
  readonly key: string;
  readonly value: JsonValue;
  readonly description: string | null;
  readonly updatedBy: string | null;
  readonly updatedAt: Date;
}

export interface AppConfigRepository {
  /** Every key and its value. */
  getAll(): Promise<Map<string, JsonValue>>;
  /** Every entry with its description and who changed it last, by key. */
  list(): Promise<AppConfigEntry[]>;
  get(key: string): Promise<AppConfigEntry | null>;
  /** Creates or changes a key; the description is kept unless a new one is given. */
  set(key: string, value: JsonValue, updatedBy: string, description?: string): Promise<AppConfigEntry>;
  delete(key: string): Promise<boolean>;
}

interface AppConfigRow {
  key: string;
  value: JsonValue;
  description: string | null;
  updated_by: string | null;
  updated_at: Date;
}

const configKey = z
  .string()
  .regex(/^[a-z][a-z0-9_.]*$/, 'must be lower-case letters, digits, "_" and "." starting with a letter');

function isCron(expression: string): boolean {
  try {
    parseCron(expression);
    return true;
  } catch {
    return false;
  }
}

const cron = z.string().refine(isCron, 'must be a cron expression, e.g. "0 2 * * *"');

/**
 * What each key the engine reads must hold, in the ranges its readers accept
 * (the detector refuses a z threshold <= 0 or a window count < 1 when it
 * loads its settings: stored, such a value would stop detection at its next
 * refresh). Keys not listed are free JSON for operators' own use.
 */
export const APP_CONFIG_VALUES: Readonly<Record<string, z.ZodType>> = {
  'anomaly.z_threshold': z.number().positive().max(1_000),
  'anomaly.min_count': z.int().min(0).max(2_147_483_647),
  'anomaly.pending_windows': z.int().min(1).max(10_000),
  'anomaly.resolve_windows': z.int().min(1).max(10_000),
  'anomaly.cooldown_minutes': z.number().min(0).max(525_600),
  'novelty.similarity_threshold': z.number().min(-1).max(1),
  'nightly.cron': cron,
  'baselines.cron': cron,
  'baselines.weeks': z.int().min(1).max(52),
  'retention.logs_days': z.int().min(1).max(36_500),
  'retention.cron': cron,
};

/** Keys made of a listed key and a suffix (a model name: src/domain/novelty.ts) hold what the listed key does. */
const PER_MODEL_KEYS = ['novelty.similarity_threshold'];

function schemaOf(key: string): z.ZodType | undefined {
  if (Object.hasOwn(APP_CONFIG_VALUES, key)) return APP_CONFIG_VALUES[key];
  const base = PER_MODEL_KEYS.find((prefix) => key.startsWith(`${prefix}.`));
  return base === undefined ? undefined : APP_CONFIG_VALUES[base];
}

/** Why `value` cannot be stored under `key`, naming the key; undefined when it can. */
export function configValueProblem(key: string, value: unknown): string | undefined {
  const schema = schemaOf(key);
  if (schema === undefined) return undefined;
  const result = schema.safeParse(value);
  return result.success
    ? undefined
    : `${key} ${result.error.issues.map((issue) => issue.message).join('; ')}, got ${JSON.stringify(value).slice(0, 100)}`;
}

const setSchema = z
  .object({
    key: configKey,
    value: z.json(),
    updatedBy: z.string().min(1),
    description: z.string().min(1).optional(),
  })
  .superRefine((entry, ctx) => {
    const problem = configValueProblem(entry.key, entry.value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['value'], message: problem });
  });

const toEntry = (row: AppConfigRow): AppConfigEntry => ({
  key: row.key,
  value: row.value,
  description: row.description,
  updatedBy: row.updated_by,
  updatedAt: row.updated_at,
});

const COLUMNS = 'key, value, description, updated_by, updated_at';

export function createAppConfigRepository(db: Queryable): AppConfigRepository {
  return {
    async getAll() {
      const rows = await queryRows<AppConfigRow>(db, 'SELECT key, value FROM app_config ORDER BY key');
      return new Map(rows.map((r) => [r.key, r.value]));
    },

    async list() {
      return (await queryRows<AppConfigRow>(db, `SELECT ${COLUMNS} FROM app_config ORDER BY key`)).map(toEntry);
    },

    async get(key) {
      const checked = parseInput(z.string(), key, 'config key');
      const [row] = await queryRows<AppConfigRow>(db, `SELECT ${COLUMNS} FROM app_config WHERE key = $1`, [checked]);
      return row === undefined ? null : toEntry(row);
    },

    async set(key, value, updatedBy, description) {
      const s = parseInput(setSchema, { key, value, updatedBy, description }, 'config entry');
      const [row] = await queryRows<AppConfigRow>(
        db,
        `INSERT INTO app_config AS a (key, value, description, updated_by) VALUES ($1, $2::jsonb, $3, $4)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, description = COALESCE(EXCLUDED.description, a.description),
           updated_by = EXCLUDED.updated_by, updated_at = now()
         RETURNING ${COLUMNS}`,
        [s.key, jsonParam(s.value), s.description ?? null, s.updatedBy],
      );
      return toEntry(row!);
    },

    async delete(key) {
      const checked = parseInput(z.string(), key, 'config key');
      return (await execute(db, 'DELETE FROM app_config WHERE key = $1', [checked])) > 0;
    },
  };
}
