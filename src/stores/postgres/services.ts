/**
 * services: the monitored services and their detection settings (CRUD for
 * the API; `changedSince` lets a running detector pick up edits without a
 * restart).
 */
import { z } from 'zod';
import { execute, isUniqueViolation, notFound, parseInput, queryRows, RepositoryError, type Queryable } from './db.ts';

export const SERVICE_TIERS = ['critical', 'standard', 'best_effort'] as const;
export type ServiceTier = (typeof SERVICE_TIERS)[number];

export interface Service {
  readonly id: number;
  readonly name: string;
  readonly displayName: string;
  readonly description: string | null;
  readonly ownerTeam: string | null;
  readonly tier: ServiceTier;
  readonly monitoringEnabled: boolean;
  readonly alertingEnabled: boolean;
  /** z-score above which a window is anomalous for this service. */
  readonly sensitivity: number;
  readonly minCount: number;
  readonly silenceDetection: boolean;
  readonly retentionDays: number;
  readonly tags: readonly string[];
  /** Where this service's alert notifications go instead of LOGFLOW_ALERT_WEBHOOK_URL; null: the default. */
  readonly alertWebhookUrl: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface ServicePatch {
  readonly displayName?: string;
  readonly description?: string | null;
  readonly ownerTeam?: string | null;
  readonly tier?: ServiceTier;
  readonly monitoringEnabled?: boolean;
  readonly alertingEnabled?: boolean;
  readonly sensitivity?: number;
  readonly minCount?: number;
  readonly silenceDetection?: boolean;
  readonly retentionDays?: number;
  readonly tags?: readonly string[];
  readonly alertWebhookUrl?: string | null;
}

export interface NewService extends ServicePatch {
  readonly name: string;
  readonly displayName: string;
}

export interface ServiceChanges {
  readonly services: readonly Service[];
  /**
   * Pass to the next `changedSince`. It trails the database clock by a margin
   * because updated_at is a transaction's start time: a long transaction can
   * commit a row stamped before the previous read. The overlap may return a
   * row twice, which re-applying settings tolerates; deletions show up as
   * names missing from `list()`.
   */
  readonly asOf: Date;
}

export interface ServiceRepository {
  /** By name. */
  list(): Promise<Service[]>;
  get(name: string): Promise<Service | null>;
  /** A conflict when the name is taken. */
  create(service: NewService): Promise<Service>;
  /** not_found when missing. */
  update(name: string, patch: ServicePatch): Promise<Service>;
  delete(name: string): Promise<boolean>;
  changedSince(since: Date): Promise<ServiceChanges>;
}

interface ServiceRow {
  id: number;
  name: string;
  display_name: string;
  description: string | null;
  owner_team: string | null;
  tier: ServiceTier;
  monitoring_enabled: boolean;
  alerting_enabled: boolean;
  sensitivity: number;
  min_count: number;
  silence_detection: boolean;
  retention_days: number;
  tags: string[];
  alert_webhook_url: string | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `id, name, display_name, description, owner_team, tier, monitoring_enabled, alerting_enabled, sensitivity,
  min_count, silence_detection, retention_days, tags, alert_webhook_url, created_at, updated_at`;

/** Commit lag tolerated by changedSince (see ServiceChanges.asOf). */
const CHANGE_OVERLAP_SECONDS = 30;

function toService(row: ServiceRow): Service {
  return {
    id: row.id,
    name: row.name,
    displayName: row.display_name,
    description: row.description,
    ownerTeam: row.owner_team,
    tier: row.tier,
    monitoringEnabled: row.monitoring_enabled,
    alertingEnabled: row.alerting_enabled,
    sensitivity: row.sensitivity,
    minCount: row.min_count,
    silenceDetection: row.silence_detection,
    retentionDays: row.retention_days,
    tags: row.tags,
    alertWebhookUrl: row.alert_webhook_url,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const serviceName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be lower-case letters, digits, ".", "_" or "-" (at most 63)');

/** An http(s) URL up to 2,000 characters, as the services table's check (sql/postgres/007_alert_notifications.sql) accepts. */
export const webhookUrl = z
  .string()
  .max(2_000)
  .refine(
    (v) => {
      try {
        const url = new URL(v);
        return (url.protocol === 'http:' || url.protocol === 'https:') && /^https?:\/\//.test(v);
      } catch {
        return false;
      }
    },
    { message: 'must be an http:// or https:// URL' },
  );

const patchShape = {
  displayName: z.string().min(1).optional(),
  description: z.string().nullable().optional(),
  ownerTeam: z.string().min(1).nullable().optional(),
  tier: z.enum(SERVICE_TIERS).optional(),
  monitoringEnabled: z.boolean().optional(),
  alertingEnabled: z.boolean().optional(),
  sensitivity: z.number().finite().positive().optional(),
  minCount: z.int().min(0).max(2_147_483_647).optional(),
  silenceDetection: z.boolean().optional(),
  retentionDays: z.int().min(1).max(36_500).optional(),
  tags: z.array(z.string().min(1)).optional(),
  alertWebhookUrl: webhookUrl.nullable().optional(),
};
const patchSchema = z
  .object(patchShape)
  .refine((p) => Object.values(p).some((v) => v !== undefined), { message: 'nothing to update' });
const newServiceSchema = z.object({ ...patchShape, name: serviceName, displayName: z.string().min(1) });

/** Settable columns, fixed here: the SET list is built from these names, never from input. */
const SETTABLE: ReadonlyArray<readonly [keyof typeof patchShape, string]> = [
  ['displayName', 'display_name'],
  ['description', 'description'],
  ['ownerTeam', 'owner_team'],
  ['tier', 'tier'],
  ['monitoringEnabled', 'monitoring_enabled'],
  ['alertingEnabled', 'alerting_enabled'],
  ['sensitivity', 'sensitivity'],
  ['minCount', 'min_count'],
  ['silenceDetection', 'silence_detection'],
  ['retentionDays', 'retention_days'],
  ['tags', 'tags'],
  ['alertWebhookUrl', 'alert_webhook_url'],
];

export function createServiceRepository(db: Queryable): ServiceRepository {
  return {
    async list() {
      return (await queryRows<ServiceRow>(db, `SELECT ${COLUMNS} FROM services ORDER BY name`)).map(toService);
    },

    async get(name) {
      const checked = parseInput(z.string(), name, 'service name');
      const [row] = await queryRows<ServiceRow>(db, `SELECT ${COLUMNS} FROM services WHERE name = $1`, [checked]);
      return row === undefined ? null : toService(row);
    },

    async create(service) {
      const s = parseInput(newServiceSchema, service, 'service');
      // Columns left out take the table's defaults, so the defaults live in one place (the schema).
      const columns = ['name'];
      const values: unknown[] = [s.name];
      for (const [field, column] of SETTABLE) {
        const value = s[field];
        if (value === undefined) continue;
        columns.push(column);
        values.push(value);
      }
      try {
        const [row] = await queryRows<ServiceRow>(
          db,
          `INSERT INTO services (${columns.join(', ')}) VALUES (${values.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING ${COLUMNS}`,
          values,
        );
        return toService(row!);
      } catch (error) {
        if (isUniqueViolation(error))
          throw new RepositoryError('conflict', `service "${s.name}" already exists`, { name: s.name }, error);
        throw error;
      }
    },

    async update(name, patch) {
      const checked = parseInput(z.string(), name, 'service name');
      const p = parseInput(patchSchema, patch, 'service update');
      const assignments: string[] = [];
      const values: unknown[] = [checked];
      for (const [field, column] of SETTABLE) {
        const value = p[field];
        if (value === undefined) continue;
        values.push(value);
        assignments.push(`${column} = $${values.length}`);
      }
      const [row] = await queryRows<ServiceRow>(
        db,
        `UPDATE services SET ${assignments.join(', ')}, updated_at = now() WHERE name = $1 RETURNING ${COLUMNS}`,
        values,
      );
      if (row === undefined) throw notFound('service', checked);
      return toService(row);
    },

    async delete(name) {
      const checked = parseInput(z.string(), name, 'service name');
      return (await execute(db, 'DELETE FROM services WHERE name = $1', [checked])) > 0;
    },

    async changedSince(since) {
      const from = parseInput(z.date(), since, 'changedSince time');
      const rows = await queryRows<ServiceRow & { as_of: Date }>(
        db,
        `SELECT ${COLUMNS}, now() - make_interval(secs => $2) AS as_of FROM services WHERE updated_at > $1 ORDER BY name`,
        [from, CHANGE_OVERLAP_SECONDS],
      );
      if (rows.length > 0) return { services: rows.map(toService), asOf: rows[0]!.as_of };
      const [clock] = await queryRows<{ as_of: Date }>(db, 'SELECT now() - make_interval(secs => $1) AS as_of', [
        CHANGE_OVERLAP_SECONDS,
      ]);
      return { services: [], asOf: clock!.as_of };
    },
  };
}
