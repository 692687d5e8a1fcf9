/**
 * The embedded-mode vector store: a ClickHouse table (chdb in-process) with a
 * `vector_similarity` HNSW index, behind the same interface as Qdrant.
 *
 * - Upsert is an insert: the table is a ReplacingMergeTree on the point id
 *   with a version column, and every read uses FINAL, so the newest row of an
 *   id is the only one seen and writing a point twice changes nothing.
 * - The dimension lives in the table definition, in the index
 *   (`vector_similarity('hnsw', 'cosineDistance', <dimension>, ...)`) and a
 *   CHECK constraint; ensureCollection reads it back from
 *   `system.data_skipping_indices`, so there is no separate meta row to keep
 *   in step.
 * - The index quantizes to f32 (the default bf16 would round scores to about
 *   three digits) and searches rescore from the stored vectors, so a score is
 *   the exact cosine similarity of the row FINAL kept. Like Qdrant's HNSW,
 *   the index is approximate on large tables; on small ones it is exact.
 * - Needs ClickHouse 25.8 or later (chdb 3.4 is 26.7), where vector
 *   similarity indexes and the vector_search_* settings exist.
 * - Every value travels as a query parameter; the table name is checked as
 *   an identifier and passed as an `Identifier` parameter where ClickHouse
 *   allows one. The dimension, an integer checked to be in range, is the
 *   only value written into DDL, because index arguments cannot be parameters.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { probe, type HealthCheck } from '../core/component.ts';
import { ErrorCodes, LogflowError, type ClassificationRule } from '../core/errors.ts';
import {
  checkDimension,
  checkLookup,
  checkPoints,
  checkSearchOptions,
  checkVector,
  chunk,
  closedStore,
  DEFAULT_COLLECTION,
  dimensionMismatch,
  isNetworkError,
  missingCollection,
  pointIdFor,
  storeError,
  type CheckedSearch,
  type VectorMatch,
  type VectorPoint,
  type VectorSearch,
  type VectorStore,
} from './vector-store.ts';

export interface ClickHouseVectorStoreOptions {
  /** The engines' client; the store does not close it (the engines own it). */
  readonly client: ClickHouseClient;
  /** Table in the client's current database; default `log_embeddings`. */
  readonly table?: string;
  /** Rows per insert; default 10 000. */
  readonly batchSize?: number;
}

const VECTOR_INDEX = 'vector_index';
const identifierPattern = /^[A-Za-z_][A-Za-z0-9_]{0,126}$/;
const indexDefinition = /^vector_similarity\(\s*'hnsw'\s*,\s*'cosineDistance'\s*,\s*(\d+)\b/;

/** ClickHouse error types that describe a busy or briefly broken server, not a bad request. */
const transientTypes = new Set([
  'TOO_MANY_SIMULTANEOUS_QUERIES',
  'MEMORY_LIMIT_EXCEEDED',
  'CANNOT_ALLOCATE_MEMORY',
  'TIMEOUT_EXCEEDED',
  'SOCKET_TIMEOUT',
  'NETWORK_ERROR',
  'TOO_MANY_PARTS',
  'KEEPER_EXCEPTION',
  'ALL_CONNECTION_TRIES_FAILED',
  'TABLE_IS_READ_ONLY',
  'NOT_ENOUGH_SPACE',
  'ABORTED',
]);

const isClickHouseError = (e: Error & { code?: unknown; type?: unknown }): boolean =>
  e.name === 'ClickHouseError' || typeof e.type === 'string' || (typeof e.code === 'string' && /^\d+$/.test(e.code));

/** How this store's library errors map to ours; exported so tests can enumerate it. */
export const clickHouseVectorErrorRules: readonly ClassificationRule[] = [
  { match: (e) => isNetworkError(e), code: ErrorCodes.SINK_UNAVAILABLE, retriable: true },
  // @clickhouse/client reports its own request timeout as a plain Error.
  { match: (e) => !isClickHouseError(e) && /timeout/i.test(e.message), code: ErrorCodes.TIMEOUT, retriable: true },
  {
    match: (e) => typeof e.type === 'string' && transientTypes.has(e.type),
    code: ErrorCodes.SINK_UNAVAILABLE,
    retriable: true,
  },
  { match: isClickHouseError, code: ErrorCodes.SINK_REJECTED, retriable: false },
];

interface MatchRow {
  readonly id: string;
  readonly error_hash: string;
  readonly template: string;
  readonly service: string;
  readonly level: string;
  readonly first_seen_ms: string;
  readonly model: string;
  readonly score: number;
}

/** The search as SQL, parameters and settings; exported so tests can EXPLAIN exactly what runs. */
export function buildSearchQuery(
  table: string,
  search: CheckedSearch,
): {
  query: string;
  query_params: Record<string, unknown>;
  clickhouse_settings: Record<string, string | number>;
} {
  const conditions: string[] = [];
  const query_params: Record<string, unknown> = { table, vector: search.vector };
  if (search.service !== undefined) {
    conditions.push('service = {service:String}');
    query_params.service = search.service;
  }
  if (search.level !== undefined) {
    conditions.push('level = {level:String}');
    query_params.level = search.level;
  }
  // The excluded pattern is dropped after the query: a `!=` condition would
  // turn every novelty check into a filtered (index-less) scan, and one id
  // can take at most one extra row.
  query_params.limit = search.limit + (search.excludeErrorHash === undefined ? 0 : 1);
  const nearest = `SELECT toString(id) AS id, toString(error_hash) AS error_hash, template, service, level,
           toString(toUnixTimestamp64Milli(first_seen)) AS first_seen_ms, model,
           1 - cosineDistance(vector, {vector:Array(Float32)}) AS score
    FROM {table:Identifier} FINAL
    ${conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`}
    ORDER BY cosineDistance(vector, {vector:Array(Float32)})
    LIMIT {limit:UInt32}`;
  let query = nearest;
  if (search.minScore !== undefined) {
    // Applied to the top rows rather than inside them so the ORDER BY ... LIMIT stays index-shaped; same result.
    query = `SELECT * FROM (${nearest}) WHERE score >= {minScore:Float64} ORDER BY score DESC`;
    query_params.minScore = search.minScore;
  }
  return {
    query,
    query_params,
    clickhouse_settings: {
      // With a filter, search the filtered rows exactly: post-filtering the
      // index's top rows could return fewer than `limit` matches.
      vector_search_filter_strategy: 'prefilter',
      vector_search_with_rescoring: 1,
    },
  };
}

export class ClickHouseVectorStore implements VectorStore {
  readonly name: string;
  readonly #client: ClickHouseClient;
  readonly #table: string;
  readonly #batchSize: number;
  #dimension: number | undefined;
  #closed = false;

  constructor(options: ClickHouseVectorStoreOptions) {
    const table = options.table ?? DEFAULT_COLLECTION;
    if (!identifierPattern.test(table)) {
      throw new LogflowError(
        ErrorCodes.CONFIG_INVALID,
        `vector table name must be an identifier (letters, digits, underscore), got ${JSON.stringify(table)}`,
        {
          stage: 'config',
        },
      );
    }
    const batchSize = options.batchSize ?? 10_000;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new LogflowError(ErrorCodes.CONFIG_INVALID, `batchSize must be a positive integer, got ${batchSize}`, {
        stage: 'config',
      });
    }
    this.#client = options.client;
    this.#table = table;
    this.#batchSize = batchSize;
    this.name = `clickhouse-vector:${table}`;
  }

  async ensureCollection(dimension: number): Promise<void> {
    this.#assertOpen();
    checkDimension(dimension);
    await this.#run('ensureCollection', async () => {
      let existing = await this.#storedDimension();
      if (existing === undefined) {
        await this.#client.command({
          query: `CREATE TABLE IF NOT EXISTS {table:Identifier}
            (
                id          UUID,
                error_hash  UInt64,
                template    String,
                service     LowCardinality(String),
                level       LowCardinality(String),
                first_seen  DateTime64(3, 'UTC'),
                model       LowCardinality(String) DEFAULT '',
                vector      Array(Float32),
                version     UInt64 DEFAULT toUnixTimestamp64Nano(now64(9)),
                INDEX ${VECTOR_INDEX} vector TYPE vector_similarity('hnsw', 'cosineDistance', ${dimension}, 'f32', 32, 128) GRANULARITY 100000000,
                CONSTRAINT vector_dimension CHECK length(vector) = ${dimension}
            )
            ENGINE = ReplacingMergeTree(version)
            ORDER BY id`,
          query_params: { table: this.#table },
        });
        // Another process may have created it first, with its own dimension.
        existing = await this.#storedDimension();
      }
      if (existing === undefined) throw missingCollection(this.#table);
      if (existing !== dimension) throw dimensionMismatch(this.#table, existing, dimension);
      // Tables made before points carried their model gain the column; their old rows read ''.
      await this.#client.command({
        query: `ALTER TABLE {table:Identifier} ADD COLUMN IF NOT EXISTS model LowCardinality(String) DEFAULT '' AFTER first_seen`,
        query_params: { table: this.#table },
      });
    });
    this.#dimension = dimension;
  }

  async upsert(points: readonly VectorPoint[]): Promise<void> {
    this.#assertOpen();
    const dimension = await this.#resolveDimension();
    const checked = checkPoints(points, dimension);
    await this.#run('upsert', async () => {
      for (const rows of chunk(checked, this.#batchSize)) {
        await this.#client.insert({
          table: this.#table,
          format: 'JSONEachRow',
          values: rows.map((p) => ({
            id: pointIdFor(p.errorHash),
            error_hash: p.errorHash,
            template: p.payload.template,
            service: p.payload.service,
            level: p.payload.level,
            // Canonical ISO (UTC, milliseconds) -> ClickHouse's basic form, read in the column's UTC.
            first_seen: p.payload.first_seen.replace('T', ' ').replace('Z', ''),
            model: p.payload.model,
            vector: p.vector,
          })),
        });
      }
    });
  }

  async search(vector: readonly number[], options: VectorSearch): Promise<VectorMatch[]> {
    this.#assertOpen();
    const checkedOptions = checkSearchOptions(options);
    const dimension = await this.#resolveDimension();
    const search: CheckedSearch = { ...checkedOptions, vector: checkVector(vector, dimension, 'query vector') };
    const rows = await this.#run('search', async () => {
      const result = await this.#client.query({ ...buildSearchQuery(this.#table, search), format: 'JSONEachRow' });
      return result.json<MatchRow>();
    });
    return rows
      .filter((row) => row.error_hash !== search.excludeErrorHash)
      .slice(0, search.limit)
      .map((row) => ({
        id: row.id,
        errorHash: row.error_hash,
        score: Number(row.score),
        payload: {
          error_hash: row.error_hash,
          template: row.template,
          service: row.service,
          level: row.level,
          first_seen: new Date(Number(row.first_seen_ms)).toISOString(),
          model: row.model,
        },
      }));
  }

  async count(): Promise<number> {
    this.#assertOpen();
    await this.#resolveDimension();
    return this.#run('count', async () => {
      const result = await this.#client.query({
        query: 'SELECT toString(count()) AS n FROM {table:Identifier} FINAL',
        query_params: { table: this.#table },
        format: 'JSONEachRow',
      });
      const [row] = await result.json<{ n: string }>();
      return Number(row?.n ?? 0);
    });
  }

  async existing(errorHashes: readonly string[], model?: string): Promise<Set<string>> {
    this.#assertOpen();
    const hashes = checkLookup(errorHashes);
    await this.#resolveDimension();
    if (hashes.length === 0) return new Set();
    const rows = await this.#run('existing', async () => {
      const result = await this.#client.query({
        // By id, the sorting key: the lookup reads only the granules holding these points. FINAL, since a point
        // rewritten by another model keeps its older row until a merge.
        query: `SELECT toString(error_hash) AS error_hash FROM {table:Identifier} FINAL
                WHERE id IN {ids:Array(UUID)} AND ({anyModel:Bool} OR model = {model:String})`,
        query_params: {
          table: this.#table,
          ids: hashes.map(pointIdFor),
          anyModel: model === undefined,
          model: model ?? '',
        },
        format: 'JSONEachRow',
      });
      return result.json<{ error_hash: string }>();
    });
    return new Set(rows.map((r) => r.error_hash));
  }

  async health(): Promise<HealthCheck> {
    if (this.#closed) return { ok: false, detail: `${this.name} is closed` };
    let exists = false;
    const check = await probe(async () => {
      exists = await this.#run('health', () => this.#tableExists());
    });
    if (check.ok && !exists) return { ok: true, detail: `table ${this.#table} does not exist yet` };
    return check;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #assertOpen(): void {
    if (this.#closed) throw closedStore(this.name);
  }

  async #run<T>(operation: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw storeError(
        error,
        clickHouseVectorErrorRules,
        `ClickHouse vector store ${operation} on ${this.#table} failed`,
      );
    }
  }

  async #resolveDimension(): Promise<number> {
    if (this.#dimension !== undefined) return this.#dimension;
    const stored = await this.#run('reading the dimension', () => this.#storedDimension());
    if (stored === undefined) throw missingCollection(this.#table);
    this.#dimension = stored;
    return stored;
  }

  async #tableExists(): Promise<boolean> {
    const result = await this.#client.query({
      query:
        'SELECT toString(count()) AS n FROM system.tables WHERE database = currentDatabase() AND name = {table:String}',
      query_params: { table: this.#table },
      format: 'JSONEachRow',
    });
    const [row] = await result.json<{ n: string }>();
    return row?.n !== '0';
  }

  /** The dimension from the table's index definition; undefined when the table does not exist. */
  async #storedDimension(): Promise<number | undefined> {
    if (!(await this.#tableExists())) return undefined;
    const result = await this.#client.query({
      query: `SELECT type_full FROM system.data_skipping_indices
              WHERE database = currentDatabase() AND table = {table:String} AND name = {index:String}`,
      query_params: { table: this.#table, index: VECTOR_INDEX },
      format: 'JSONEachRow',
    });
    const [row] = await result.json<{ type_full: string }>();
    const dimension = row === undefined ? undefined : indexDefinition.exec(row.type_full)?.[1];
    if (dimension === undefined) {
      throw new LogflowError(
        ErrorCodes.CONFIG_INVALID,
        `table ${this.#table} exists but is not a vector table: it has no ${VECTOR_INDEX} of type vector_similarity('hnsw', 'cosineDistance', <dimension>)`,
        { stage: 'sink', details: { table: this.#table, index: row?.type_full } },
      );
    }
    return Number(dimension);
  }
}
