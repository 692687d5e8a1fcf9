/**
 * user_preferences: per-user dashboard settings. A user who never saved any
 * gets the defaults (the table's), so the API has no "first login" case.
 */
import { z } from 'zod';
import { jsonObjectSchema, jsonParam, parseInput, queryRows, type JsonObject, type Queryable } from './db.ts';

export const THEMES = ['light', 'dark', 'system'] as const;
export type Theme = (typeof THEMES)[number];

export interface UserPreferences {
  readonly userId: string;
  /** IANA zone name. */
  readonly timezone: string;
  readonly theme: Theme;
  readonly defaultFilters: JsonObject;
  readonly notifications: JsonObject;
  /** null while the user has only the defaults. */
  readonly createdAt: Date | null;
  readonly updatedAt: Date | null;
}

export interface UserPreferencesPatch {
  readonly timezone?: string;
  readonly theme?: Theme;
  readonly defaultFilters?: JsonObject;
  readonly notifications?: JsonObject;
}

export interface UserPreferencesRepository {
  get(userId: string): Promise<UserPreferences>;
  /** Saves the given fields; fields left out keep their stored value (or the default). */
  upsert(userId: string, patch: UserPreferencesPatch): Promise<UserPreferences>;
}

interface UserPreferencesRow {
  user_id: string;
  timezone: string;
  theme: Theme;
  default_filters: JsonObject;
  notifications: JsonObject;
  created_at: Date;
  updated_at: Date;
}

/** Mirrors the column defaults of user_preferences. */
export const DEFAULT_USER_PREFERENCES = {
  timezone: 'UTC',
  theme: 'system',
  defaultFilters: {},
  notifications: {},
} as const;

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const userId = z.string().min(1).max(256);
const patchSchema = z
  .object({
    timezone: z.string().refine(isTimeZone, 'is not a known IANA time zone').optional(),
    theme: z.enum(THEMES).optional(),
    defaultFilters: jsonObjectSchema.optional(),
    notifications: jsonObjectSchema.optional(),
  })
  .refine((p) => Object.values(p).some((v) => v !== undefined), { message: 'nothing to update' });

function toPreferences(row: UserPreferencesRow): UserPreferences {
  return {
    userId: row.user_id,
    timezone: row.timezone,
    theme: row.theme,
    defaultFilters: row.default_filters,
    notifications: row.notifications,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const COLUMNS = 'user_id, timezone, theme, default_filters, notifications, created_at, updated_at';

export function createUserPreferencesRepository(db: Queryable): UserPreferencesRepository {
  return {
    async get(id) {
      const checked = parseInput(userId, id, 'user id');
      const [row] = await queryRows<UserPreferencesRow>(
        db,
        `SELECT ${COLUMNS} FROM user_preferences WHERE user_id = $1`,
        [checked],
      );
      if (row !== undefined) return toPreferences(row);
      return { userId: checked, ...DEFAULT_USER_PREFERENCES, createdAt: null, updatedAt: null };
    },

    async upsert(id, patch) {
      const checked = parseInput(userId, id, 'user id');
      const p = parseInput(patchSchema, patch, 'user preferences');
      const [row] = await queryRows<UserPreferencesRow>(
        db,
        `INSERT INTO user_preferences AS u (user_id, timezone, theme, default_filters, notifications)
         VALUES ($1, COALESCE($2::text, $6::text), COALESCE($3::text, $7::text), COALESCE($4::jsonb, '{}'), COALESCE($5::jsonb, '{}'))
         ON CONFLICT (user_id) DO UPDATE SET
           timezone = COALESCE($2::text, u.timezone),
           theme = COALESCE($3::text, u.theme),
           default_filters = COALESCE($4::jsonb, u.default_filters),
           notifications = COALESCE($5::jsonb, u.notifications),
           updated_at = now()
         RETURNING ${COLUMNS}`,
        [
          checked,
          p.timezone ?? null,
          p.theme ?? null,
          p.defaultFilters === undefined ? null : jsonParam(p.defaultFilters),
          p.notifications === undefined ? null : jsonParam(p.notifications),
          DEFAULT_USER_PREFERENCES.timezone,
          DEFAULT_USER_PREFERENCES.theme,
        ],
      );
      return toPreferences(row!);
    },
  };
}
