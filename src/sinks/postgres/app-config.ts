/**
 * app_config: runtime settings an admin can change (JSON values under dotted
 * keys, e.g. `anomaly.z_threshold`), read by every pipeline at start.
 */
import { z } from 'zod';
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

const configKey = z.string().regex(/^[a-z][a-z0-9_.]*$/, 'must be lower-case letters, digits, "_" and "." starting with a letter');
const setSchema = z.object({
  key: configKey,
  value: z.json(),
  updatedBy: z.string().min(1),
  description: z.string().min(1).optional(),
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
