/**
 * error_catalog: known error patterns, created automatically by the analysis
 * and curated by engineers. The rule that matters: once an engineer has
 * edited an entry (edited_by_human), automatic upserts only refresh what is
 * observed (occurrences, first/last seen, services) and never touch the
 * curated text, severity or solution. An entry the analysis has described
 * with the LLM (tag LLM_DESCRIBED_TAG) keeps that text too: a later
 * statistical refresh must not replace it with the template.
 */
import { z } from 'zod';
import {
  errorHashFromRow,
  errorHashSchema,
  isUniqueViolation,
  listLimit,
  notFound,
  parseInput,
  queryRows,
  execute,
  RepositoryError,
  SEVERITIES,
  toSafeInteger,
  type Queryable,
  type Severity,
} from './db.ts';

export interface ErrorCatalogEntry {
  readonly id: number;
  /** UInt64 in decimal. */
  readonly errorHash: string;
  readonly template: string;
  readonly title: string;
  readonly description: string | null;
  readonly category: string | null;
  readonly severity: Severity;
  readonly solution: string | null;
  readonly documentationUrl: string | null;
  readonly tags: readonly string[];
  readonly services: readonly string[];
  readonly autoCreated: boolean;
  readonly editedByHuman: boolean;
  readonly occurrenceCount: number;
  readonly firstSeen: Date | null;
  readonly lastSeen: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** What the analysis knows about a pattern. */
export interface AutoCatalogEntry {
  readonly errorHash: string | bigint;
  readonly template: string;
  readonly title: string;
  readonly description?: string | null;
  readonly category?: string | null;
  readonly severity?: Severity;
  readonly services: readonly string[];
  /**
   * The pattern's running total (error_patterns.occurrence_count), not an
   * increment: the catalog keeps the larger of the stored and given totals, so
   * re-running an analysis, or running an older one, never inflates it.
   */
  readonly occurrenceCount: number;
  readonly firstSeen: Date;
  readonly lastSeen: Date;
}

/** Marks an entry whose text the LLM wrote; STATISTICAL_DESCRIBED_TAG one the analysis described without it. */
export const LLM_DESCRIBED_TAG = 'analysis:llm';
export const STATISTICAL_DESCRIBED_TAG = 'analysis:statistical';

/** What the analysis writes about a pattern (README: "What the analysis writes"). */
export interface AnalysisDescription {
  readonly title: string;
  readonly description: string;
  /** The suggested fix, stored as the entry's solution; null for none. */
  readonly solution: string | null;
  readonly severity?: Severity;
  readonly producedBy: 'llm' | 'statistical';
}

/** Fields an engineer curates; null clears an optional field. */
export interface EngineerCatalogEdit {
  readonly template?: string;
  readonly title?: string;
  readonly description?: string | null;
  readonly category?: string | null;
  readonly severity?: Severity;
  readonly solution?: string | null;
  readonly documentationUrl?: string | null;
  readonly tags?: readonly string[];
}

export interface EngineerCatalogEntry extends EngineerCatalogEdit {
  readonly errorHash: string | bigint;
  readonly template: string;
  readonly title: string;
  readonly services?: readonly string[];
}

export interface ErrorCatalogListOptions {
  readonly limit?: number;
  readonly offset?: number;
  readonly severity?: Severity;
  /** Entries whose services include this one. */
  readonly service?: string;
  readonly editedByHuman?: boolean;
}

export interface ErrorCatalogRepository {
  /** Creates an auto_created entry, or refreshes an existing one within the rule above; `created` tells which. */
  upsertAutoCreated(entry: AutoCatalogEntry): Promise<{ readonly entry: ErrorCatalogEntry; readonly created: boolean }>;
  /**
   * Writes the analysis's title, description and solution and marks the entry with its producer's tag, unless an
   * engineer has edited it; true when written, false when edited or missing.
   */
  describeByAnalysis(errorHash: string | bigint, description: AnalysisDescription): Promise<boolean>;
  /** An engineer documents a pattern the analysis has not catalogued yet; a conflict if it exists. */
  createByEngineer(entry: EngineerCatalogEntry): Promise<ErrorCatalogEntry>;
  /** Applies an engineer's edit and marks the entry edited_by_human; not_found when missing. */
  updateByEngineer(errorHash: string | bigint, edit: EngineerCatalogEdit): Promise<ErrorCatalogEntry>;
  get(errorHash: string | bigint): Promise<ErrorCatalogEntry | null>;
  /** Most frequent first. */
  list(options?: ErrorCatalogListOptions): Promise<ErrorCatalogEntry[]>;
  delete(errorHash: string | bigint): Promise<boolean>;
}

interface ErrorCatalogRow {
  id: string;
  error_hash: string;
  template: string;
  title: string;
  description: string | null;
  category: string | null;
  severity: Severity;
  solution: string | null;
  documentation_url: string | null;
  tags: string[];
  services: string[];
  auto_created: boolean;
  edited_by_human: boolean;
  occurrence_count: string;
  first_seen: Date | null;
  last_seen: Date | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `id, error_hash, template, title, description, category, severity, solution, documentation_url, tags,
  services, auto_created, edited_by_human, occurrence_count, first_seen, last_seen, created_at, updated_at`;

function toEntry(row: ErrorCatalogRow): ErrorCatalogEntry {
  return {
    id: toSafeInteger(row.id, 'error_catalog.id'),
    errorHash: errorHashFromRow(row.error_hash),
    template: row.template,
    title: row.title,
    description: row.description,
    category: row.category,
    severity: row.severity,
    solution: row.solution,
    documentationUrl: row.documentation_url,
    tags: row.tags,
    services: row.services,
    autoCreated: row.auto_created,
    editedByHuman: row.edited_by_human,
    occurrenceCount: toSafeInteger(row.occurrence_count, 'error_catalog.occurrence_count'),
    firstSeen: row.first_seen,
    lastSeen: row.last_seen,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const text = z.string().min(1);
const names = z.array(text);

const autoSchema = z
  .object({
    errorHash: errorHashSchema,
    template: text,
    title: text,
    description: z.string().nullish(),
    category: z.string().nullish(),
    severity: z.enum(SEVERITIES).default('medium'),
    services: names,
    occurrenceCount: z.int().min(0),
    firstSeen: z.date(),
    lastSeen: z.date(),
  })
  .refine((e) => e.firstSeen <= e.lastSeen, { message: 'firstSeen must not be after lastSeen', path: ['firstSeen'] });

// Text the analysis writes is stored and shown: no NUL (PostgreSQL refuses it), bounded.
const storedText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((v) => !v.includes('\u0000'), 'contains a NUL character');
const describeSchema = z.object({
  title: storedText(200),
  description: storedText(10_000),
  solution: storedText(10_000).nullable(),
  severity: z.enum(SEVERITIES).optional(),
  producedBy: z.enum(['llm', 'statistical']),
});

const editShape = {
  template: text.optional(),
  title: text.optional(),
  description: z.string().nullable().optional(),
  category: z.string().nullable().optional(),
  severity: z.enum(SEVERITIES).optional(),
  solution: z.string().nullable().optional(),
  documentationUrl: z.url().nullable().optional(),
  tags: names.optional(),
};
const editSchema = z
  .object(editShape)
  .refine((e) => Object.values(e).some((v) => v !== undefined), { message: 'nothing to update' });
const engineerEntrySchema = z.object({
  ...editShape,
  errorHash: errorHashSchema,
  template: text,
  title: text,
  services: names.default([]),
});

const listSchema = z.object({
  limit: listLimit(100),
  offset: z.int().min(0).default(0),
  severity: z.enum(SEVERITIES).optional(),
  service: text.optional(),
  editedByHuman: z.boolean().optional(),
});

/**
 * The columns an engineer edits, in a fixed order: the SET list below is built from these names only, never from input.
 */
const EDITABLE = [
  ['template', 'template'],
  ['title', 'title'],
  ['description', 'description'],
  ['category', 'category'],
  ['severity', 'severity'],
  ['solution', 'solution'],
  ['documentationUrl', 'documentation_url'],
  ['tags', 'tags'],
] as const;

export function createErrorCatalogRepository(db: Queryable): ErrorCatalogRepository {
  return {
    async upsertAutoCreated(entry) {
      const e = parseInput(autoSchema, entry, 'auto-created catalog entry');
      // Curated fields are refreshed only for rows nobody has edited; observed
      // fields merge so that any order of upserts converges to the same row.
      const [row] = await queryRows<ErrorCatalogRow & { inserted: boolean }>(
        db,
        `INSERT INTO error_catalog AS c (error_hash, template, title, description, category, severity, services,
           auto_created, edited_by_human, occurrence_count, first_seen, last_seen)
         VALUES ($1::numeric, $2, $3, $4, $5, $6, ARRAY(SELECT DISTINCT unnest($7::text[]) ORDER BY 1), true, false, $8, $9, $10)
         ON CONFLICT (error_hash) DO UPDATE SET
           template    = CASE WHEN c.edited_by_human THEN c.template    ELSE EXCLUDED.template END,
           title       = CASE WHEN c.edited_by_human OR '${LLM_DESCRIBED_TAG}' = ANY(c.tags) THEN c.title ELSE EXCLUDED.title END,
           description = CASE WHEN c.edited_by_human OR '${LLM_DESCRIBED_TAG}' = ANY(c.tags) THEN c.description
                              ELSE COALESCE(EXCLUDED.description, c.description) END,
           category    = CASE WHEN c.edited_by_human THEN c.category    ELSE COALESCE(EXCLUDED.category, c.category) END,
           severity    = CASE WHEN c.edited_by_human OR '${LLM_DESCRIBED_TAG}' = ANY(c.tags) THEN c.severity
                              ELSE EXCLUDED.severity END,
           services = ARRAY(SELECT DISTINCT unnest(c.services || EXCLUDED.services) ORDER BY 1),
           occurrence_count = GREATEST(c.occurrence_count, EXCLUDED.occurrence_count),
           first_seen = LEAST(c.first_seen, EXCLUDED.first_seen),
           last_seen = GREATEST(c.last_seen, EXCLUDED.last_seen),
           updated_at = now()
         RETURNING ${COLUMNS}, (xmax = 0) AS inserted`,
        [
          e.errorHash,
          e.template,
          e.title,
          e.description ?? null,
          e.category ?? null,
          e.severity,
          e.services,
          e.occurrenceCount,
          e.firstSeen,
          e.lastSeen,
        ],
      );
      return { entry: toEntry(row!), created: row!.inserted };
    },

    async describeByAnalysis(errorHash, description) {
      const hash = parseInput(errorHashSchema, errorHash, 'error hash');
      const d = parseInput(describeSchema, description, 'catalog description');
      const tag = d.producedBy === 'llm' ? LLM_DESCRIBED_TAG : STATISTICAL_DESCRIBED_TAG;
      const changed = await execute(
        db,
        `UPDATE error_catalog SET title = $2, description = $3, solution = $4, severity = COALESCE($5, severity),
           tags = ARRAY(SELECT DISTINCT t FROM unnest(tags || ARRAY[$6::text]) AS t
                        WHERE t = $6 OR t NOT IN ('${LLM_DESCRIBED_TAG}', '${STATISTICAL_DESCRIBED_TAG}') ORDER BY 1),
           updated_at = now()
         WHERE error_hash = $1::numeric AND NOT edited_by_human`,
        [hash, d.title, d.description, d.solution, d.severity ?? null, tag],
      );
      return changed > 0;
    },

    async createByEngineer(entry) {
      const e = parseInput(engineerEntrySchema, entry, 'catalog entry');
      try {
        const [row] = await queryRows<ErrorCatalogRow>(
          db,
          `INSERT INTO error_catalog (error_hash, template, title, description, category, severity, solution,
             documentation_url, tags, services, auto_created, edited_by_human)
           VALUES ($1::numeric, $2, $3, $4, $5, COALESCE($6, 'medium'), $7, $8, $9::text[], $10::text[], false, true)
           RETURNING ${COLUMNS}`,
          [
            e.errorHash,
            e.template,
            e.title,
            e.description ?? null,
            e.category ?? null,
            e.severity ?? null,
            e.solution ?? null,
            e.documentationUrl ?? null,
            e.tags ?? [],
            e.services,
          ],
        );
        return toEntry(row!);
      } catch (error) {
        if (isUniqueViolation(error)) {
          throw new RepositoryError(
            'conflict',
            `error ${e.errorHash} is already catalogued; update it instead`,
            { errorHash: e.errorHash },
            error,
          );
        }
        throw error;
      }
    },

    async updateByEngineer(errorHash, edit) {
      const hash = parseInput(errorHashSchema, errorHash, 'error hash');
      const e = parseInput(editSchema, edit, 'catalog edit');
      const assignments: string[] = [];
      const values: unknown[] = [hash];
      for (const [field, column] of EDITABLE) {
        const value = e[field];
        if (value === undefined) continue;
        values.push(value);
        assignments.push(`${column} = $${values.length}`);
      }
      const [row] = await queryRows<ErrorCatalogRow>(
        db,
        `UPDATE error_catalog SET ${assignments.join(', ')}, edited_by_human = true, updated_at = now()
         WHERE error_hash = $1::numeric RETURNING ${COLUMNS}`,
        values,
      );
      if (row === undefined) throw notFound('catalog entry for error', hash);
      return toEntry(row);
    },

    async get(errorHash) {
      const hash = parseInput(errorHashSchema, errorHash, 'error hash');
      const [row] = await queryRows<ErrorCatalogRow>(
        db,
        `SELECT ${COLUMNS} FROM error_catalog WHERE error_hash = $1::numeric`,
        [hash],
      );
      return row === undefined ? null : toEntry(row);
    },

    async list(options = {}) {
      const o = parseInput(listSchema, options, 'catalog list options');
      const rows = await queryRows<ErrorCatalogRow>(
        db,
        `SELECT ${COLUMNS} FROM error_catalog
         WHERE ($1::text IS NULL OR severity = $1)
           AND ($2::text IS NULL OR $2 = ANY(services))
           AND ($3::boolean IS NULL OR edited_by_human = $3)
         ORDER BY occurrence_count DESC, id LIMIT $4 OFFSET $5`,
        [o.severity ?? null, o.service ?? null, o.editedByHuman ?? null, o.limit, o.offset],
      );
      return rows.map(toEntry);
    },

    async delete(errorHash) {
      const hash = parseInput(errorHashSchema, errorHash, 'error hash');
      return (await execute(db, 'DELETE FROM error_catalog WHERE error_hash = $1::numeric', [hash])) > 0;
    },
  };
}
