/**
 * The server-mode vector store: a Qdrant collection through
 * `@qdrant/js-client-rest`. One point per error pattern, id UUIDv5 of its
 * hash, cosine distance, keyword payload indexes on the filtered fields.
 *
 * REST endpoints used (the test server checks each against Qdrant's OpenAPI):
 * GET /collections/{name}/exists, PUT /collections/{name},
 * GET /collections/{name}, PUT /collections/{name}/index,
 * PUT /collections/{name}/points?wait=true, POST /collections/{name}/points/query,
 * POST /collections/{name}/points/count, POST /collections/{name}/points (by id).
 */
import {
  QdrantClient,
  QdrantClientResourceExhaustedError,
  QdrantClientTimeoutError,
  QdrantClientUnexpectedResponseError,
} from '@qdrant/js-client-rest';
import type { HealthCheck } from '../core/component.ts';
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
  isErrorHash,
  isNetworkError,
  missingCollection,
  pointIdFor,
  storeError,
  type PatternPayload,
  type VectorMatch,
  type VectorPoint,
  type VectorSearch,
  type VectorStore,
} from './vector-store.ts';

export interface QdrantVectorStoreOptions {
  /** e.g. `http://qdrant:6333`. A URL without a port means the scheme's default port, as anywhere else. */
  readonly url: string;
  readonly apiKey?: string;
  /** Default `log_embeddings`. */
  readonly collection?: string;
  /** Points per upsert request; default 256. */
  readonly batchSize?: number;
  /** Per request; default 30 s. */
  readonly timeoutMs?: number;
}

/** Payload fields searches filter on; keyword indexes keep those filters fast on large collections. */
export const PAYLOAD_INDEXES = ['service', 'level', 'error_hash'] as const;

type ErrorLike = Error & { code?: unknown; type?: unknown };

function httpStatus(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

const statusIn = (min: number, max: number) => (e: ErrorLike) => {
  const status = httpStatus(e);
  return status !== undefined && status >= min && status <= max;
};

/**
 * How the client's errors map to ours; exported so tests can enumerate it.
 * The client throws `ApiError` (with `status`) for HTTP errors, its own
 * classes for timeouts and 429s with Retry-After, and fetch's
 * `TypeError: fetch failed` (socket error as `cause`) when nothing answered.
 */
export const qdrantErrorRules: readonly ClassificationRule[] = [
  { match: (e) => e instanceof QdrantClientTimeoutError, code: ErrorCodes.TIMEOUT, retriable: true },
  {
    match: (e) => e instanceof QdrantClientResourceExhaustedError || httpStatus(e) === 429,
    code: ErrorCodes.SINK_UNAVAILABLE,
    retriable: true,
  },
  { match: (e) => httpStatus(e) === 408 || statusIn(500, 599)(e), code: ErrorCodes.SINK_UNAVAILABLE, retriable: true },
  { match: statusIn(400, 499), code: ErrorCodes.SINK_REJECTED, retriable: false },
  { match: (e) => isNetworkError(e), code: ErrorCodes.SINK_UNAVAILABLE, retriable: true },
  // A 2xx other than 200/201 or a redirect: something other than Qdrant answered.
  { match: (e) => e instanceof QdrantClientUnexpectedResponseError, code: ErrorCodes.SINK_REJECTED, retriable: false },
];

/** `ApiError.message` is only the status text; Qdrant's reason is in the body's `status.error`. */
function describeQdrantError(error: unknown): string {
  if (error instanceof QdrantClientResourceExhaustedError)
    return `rate limited, retry after ${error.retry_after} s (${error.message})`;
  const status = httpStatus(error);
  if (status === undefined) {
    const cause = (error as { cause?: unknown } | null)?.cause;
    const message = error instanceof Error ? error.message : String(error);
    return cause instanceof Error ? `${message} (${cause.message})` : message;
  }
  const data = (error as { data?: unknown }).data;
  const reason = (data as { status?: { error?: unknown } } | undefined)?.status?.error;
  const statusText = (error as { statusText?: unknown }).statusText;
  return `HTTP ${status}${typeof statusText === 'string' && statusText !== '' ? ` ${statusText}` : ''}${typeof reason === 'string' ? `: ${reason}` : ''}`;
}

function isPatternPayload(payload: unknown): payload is PatternPayload {
  if (payload === null || typeof payload !== 'object') return false;
  const p = payload as Record<string, unknown>;
  return (
    isErrorHash(p.error_hash) &&
    typeof p.template === 'string' &&
    typeof p.service === 'string' &&
    typeof p.level === 'string' &&
    typeof p.first_seen === 'string' &&
    (p.model === undefined || typeof p.model === 'string')
  );
}

export class QdrantVectorStore implements VectorStore {
  readonly name: string;
  readonly #client: QdrantClient;
  readonly #collection: string;
  readonly #batchSize: number;
  #dimension: number | undefined;
  #closed = false;

  constructor(options: QdrantVectorStoreOptions) {
    const collection = options.collection ?? DEFAULT_COLLECTION;
    const problems: string[] = [];
    let url: URL | undefined;
    try {
      url = new URL(options.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:')
        problems.push(`url must start with http:// or https://, got ${options.url}`);
    } catch {
      problems.push(`url is not a URL: ${options.url}`);
    }
    if (!/^[A-Za-z0-9_.-]{1,255}$/.test(collection))
      problems.push(`collection must be 1-255 letters, digits, "_", "." or "-", got ${JSON.stringify(collection)}`);
    const batchSize = options.batchSize ?? 256;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      problems.push(`batchSize must be a positive integer, got ${batchSize}`);
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!(timeoutMs > 0)) problems.push(`timeoutMs must be > 0, got ${timeoutMs}`);
    if (problems.length > 0 || url === undefined) {
      throw new LogflowError(ErrorCodes.CONFIG_INVALID, `Qdrant vector store: ${problems.join('; ')}`, {
        stage: 'config',
      });
    }

    // The client would default a port-less URL to 6333 and drop its path; hand it both explicitly.
    const prefix = url.pathname.replace(/\/+$/, '');
    this.#client = new QdrantClient({
      url: url.origin,
      port: url.port === '' ? null : Number(url.port),
      ...(prefix === '' ? {} : { prefix }),
      ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
      timeout: timeoutMs,
      checkCompatibility: false,
    });
    this.#collection = collection;
    this.#batchSize = batchSize;
    this.name = `qdrant:${collection}`;
  }

  async ensureCollection(dimension: number): Promise<void> {
    this.#assertOpen();
    checkDimension(dimension);
    await this.#run('ensureCollection', async () => {
      const { exists } = await this.#client.collectionExists(this.#collection);
      if (!exists) {
        try {
          await this.#client.createCollection(this.#collection, { vectors: { size: dimension, distance: 'Cosine' } });
        } catch (error) {
          // Another instance may have created it between our check and our create.
          if (!(await this.#client.collectionExists(this.#collection)).exists) throw error;
        }
      }
      const info = await this.#client.getCollection(this.#collection);
      const existing = this.#vectorParams(info.config.params.vectors);
      if (existing.size !== dimension) throw dimensionMismatch(this.#collection, existing.size, dimension);
      for (const field of PAYLOAD_INDEXES) {
        const index = info.payload_schema[field];
        if (index === undefined) {
          await this.#client.createPayloadIndex(this.#collection, {
            field_name: field,
            field_schema: 'keyword',
            wait: true,
          });
        } else if (index.data_type !== 'keyword') {
          throw new LogflowError(
            ErrorCodes.CONFIG_INVALID,
            `Qdrant collection ${this.#collection} indexes payload field ${field} as ${index.data_type}; logflow filters it as a keyword`,
            { stage: 'sink' },
          );
        }
      }
    });
    this.#dimension = dimension;
  }

  async upsert(points: readonly VectorPoint[]): Promise<void> {
    this.#assertOpen();
    const dimension = await this.#resolveDimension();
    const checked = checkPoints(points, dimension);
    await this.#run('upsert', async () => {
      for (const batch of chunk(checked, this.#batchSize)) {
        await this.#client.upsert(this.#collection, {
          wait: true,
          points: batch.map((p) => ({ id: pointIdFor(p.errorHash), vector: [...p.vector], payload: { ...p.payload } })),
        });
      }
    });
  }

  async search(vector: readonly number[], options: VectorSearch): Promise<VectorMatch[]> {
    this.#assertOpen();
    const search = checkSearchOptions(options);
    const dimension = await this.#resolveDimension();
    const query = checkVector(vector, dimension, 'query vector');
    const must = [
      ...(search.service === undefined ? [] : [{ key: 'service', match: { value: search.service } }]),
      ...(search.level === undefined ? [] : [{ key: 'level', match: { value: search.level } }]),
    ];
    const mustNot =
      search.excludeErrorHash === undefined ? [] : [{ key: 'error_hash', match: { value: search.excludeErrorHash } }];
    const filter =
      must.length === 0 && mustNot.length === 0
        ? undefined
        : { ...(must.length > 0 ? { must } : {}), ...(mustNot.length > 0 ? { must_not: mustNot } : {}) };
    const response = await this.#run('search', () =>
      this.#client.query(this.#collection, {
        query: [...query],
        limit: search.limit,
        with_payload: true,
        with_vector: false,
        ...(filter === undefined ? {} : { filter }),
        ...(search.minScore === undefined ? {} : { score_threshold: search.minScore }),
      }),
    );
    return response.points.map((point) => {
      if (!isPatternPayload(point.payload)) {
        throw new LogflowError(
          ErrorCodes.INTERNAL,
          `Qdrant point ${String(point.id)} in ${this.#collection} has no pattern payload`,
          {
            stage: 'sink',
            details: { payload: point.payload },
          },
        );
      }
      const { error_hash, template, service, level, first_seen, model } = point.payload;
      return {
        id: String(point.id),
        errorHash: error_hash,
        score: point.score,
        // Points written before the model was stored have none.
        payload: { error_hash, template, service, level, first_seen, model: model ?? '' },
      };
    });
  }

  async count(): Promise<number> {
    this.#assertOpen();
    await this.#resolveDimension();
    const { count } = await this.#run('count', () => this.#client.count(this.#collection, { exact: true }));
    return count;
  }

  async existing(errorHashes: readonly string[], model?: string): Promise<Set<string>> {
    this.#assertOpen();
    const hashes = checkLookup(errorHashes);
    await this.#resolveDimension();
    if (hashes.length === 0) return new Set();
    const byId = new Map(hashes.map((h) => [pointIdFor(h), h]));
    const records = await this.#run('existing', () =>
      this.#client.retrieve(this.#collection, {
        ids: [...byId.keys()],
        with_payload: model === undefined ? false : ['model'],
        with_vector: false,
      }),
    );
    return new Set(
      records.flatMap((r) => (model === undefined || r.payload?.model === model ? (byId.get(String(r.id)) ?? []) : [])),
    );
  }

  async health(): Promise<HealthCheck> {
    if (this.#closed) return { ok: false, detail: `${this.name} is closed` };
    try {
      const { exists } = await this.#run('health', () => this.#client.collectionExists(this.#collection));
      return exists ? { ok: true } : { ok: true, detail: `collection ${this.#collection} does not exist yet` };
    } catch (error) {
      return { ok: false, detail: error instanceof Error ? error.message : String(error) };
    }
  }

  /** The client holds no resources of its own beyond pooled keep-alive sockets, which expire. */
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
        qdrantErrorRules,
        `Qdrant ${operation} on ${this.#collection} failed`,
        describeQdrantError,
      );
    }
  }

  #vectorParams(vectors: unknown): { size: number } {
    const params = vectors as { size?: unknown; distance?: unknown } | undefined;
    if (typeof params?.size !== 'number') {
      throw new LogflowError(
        ErrorCodes.CONFIG_INVALID,
        `Qdrant collection ${this.#collection} has named vectors; logflow needs a single unnamed vector`,
        {
          stage: 'sink',
        },
      );
    }
    if (params.distance !== 'Cosine') {
      throw new LogflowError(
        ErrorCodes.CONFIG_INVALID,
        `Qdrant collection ${this.#collection} uses ${String(params.distance)} distance; logflow needs Cosine`,
        {
          stage: 'sink',
        },
      );
    }
    return { size: params.size };
  }

  async #resolveDimension(): Promise<number> {
    if (this.#dimension !== undefined) return this.#dimension;
    const dimension = await this.#run('reading the dimension', async () => {
      if (!(await this.#client.collectionExists(this.#collection)).exists) throw missingCollection(this.#collection);
      return this.#vectorParams((await this.#client.getCollection(this.#collection)).config.params.vectors).size;
    });
    this.#dimension = dimension;
    return dimension;
  }
}
