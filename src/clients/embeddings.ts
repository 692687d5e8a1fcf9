/**
 * Embeddings of error-pattern templates, behind one interface (README: the two modes):
 * - server mode: any OpenAI-compatible `/v1/embeddings` endpoint (Jina, TEI,
 *   vLLM, OpenAI) through the `openai` package, in batches, with bounded
 *   concurrency, the engine's retry loop and a validated response;
 * - embedded mode: the local sentence-embedding model in a worker thread
 *   (src/clients/model-embedder.ts) when its files are fetched, else a local
 *   deterministic embedder (signed feature hashing of tokens, token bigrams
 *   and character 3-grams), no network, no model files.
 *
 * Every vector returned is an L2-normalized Float32Array, so cosine
 * similarity is a dot product whichever embedder produced it.
 */
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import pLimit from 'p-limit';
import { z } from 'zod';
import type { Component, HealthCheck } from '../core/component.ts';
import type { Config } from '../core/config.ts';
import { classify, ErrorCodes, InputError, LogflowError, type ClassificationRule, type Stage } from '../core/errors.ts';
import { retry, type RetryInfo, type RetryOptions, type RetryPolicy } from '../core/retry.ts';
import { fmix32 } from '../core/hash.ts';
import { truncateText } from '../core/text.ts';
import { createModelEmbedder } from './model-embedder.ts';
import { MODEL_DIMENSION, MODEL_NAME, modelFilesPresent, modelPaths } from './model-files.ts';

export interface Embedder extends Component {
  readonly model: string;
  /** Known from the start for the local embedder; after the first successful request for a remote one. */
  readonly dimension: number | undefined;
  /** One unit-length vector per text, in order. */
  embed(texts: readonly string[]): Promise<Float32Array[]>;
}

// ---------------------------------------------------------------- local

export const LOCAL_EMBEDDING_MODEL = 'logflow-local-hash-v1';
export const DEFAULT_LOCAL_DIMENSION = 256;
const MAX_LOCAL_DIMENSION = 65_536;
/** Templates are short; a bound keeps a pathological message from stalling the event loop. */
export const MAX_LOCAL_TEXT_CHARS = 16_384;

/**
 * Feature weights. Whole tokens carry the meaning; bigrams add word order;
 * character 3-grams make inflections and compounds ("timeout", "timed",
 * "time-out") overlap. The placeholder `<*>` is in nearly every template, so
 * it counts little, and has no n-grams of its own.
 */
const TOKEN_WEIGHT = 1;
const PLACEHOLDER_WEIGHT = 0.25;
const BIGRAM_WEIGHT = 0.5;
const TRIGRAM_WEIGHT = 0.3;
const PLACEHOLDER = '<*>';
const TOKEN_PATTERN = /<\*>|[\p{L}\p{N}]+/gu;

/**
 * FNV-1a, 32 bits, over the UTF-8 bytes of `text` (lone surrogates encoded
 * as U+FFFD, as TextEncoder does): a hash any other implementation can
 * reproduce, so vectors stay comparable across processes and versions.
 */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  const byte = (b: number): void => {
    hash = Math.imul(hash ^ b, 0x01000193);
  };
  for (let i = 0; i < text.length; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (next >= 0xdc00 && next <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        cp = 0xfffd;
      }
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
      cp = 0xfffd;
    }
    if (cp < 0x80) {
      byte(cp);
    } else if (cp < 0x800) {
      byte(0xc0 | (cp >> 6));
      byte(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      byte(0xe0 | (cp >> 12));
      byte(0x80 | ((cp >> 6) & 0x3f));
      byte(0x80 | (cp & 0x3f));
    } else {
      byte(0xf0 | (cp >> 18));
      byte(0x80 | ((cp >> 12) & 0x3f));
      byte(0x80 | ((cp >> 6) & 0x3f));
      byte(0x80 | (cp & 0x3f));
    }
  }
  return hash >>> 0;
}

/** Feature -> occurrence count, in first-seen order (the order makes the float sums reproducible). */
function localFeatures(text: string): Map<string, number> {
  const features = new Map<string, number>();
  const add = (feature: string): void => {
    features.set(feature, (features.get(feature) ?? 0) + 1);
  };
  const tokens = truncateText(text, MAX_LOCAL_TEXT_CHARS).toLowerCase().match(TOKEN_PATTERN) ?? [];
  let previous: string | undefined;
  for (const token of tokens) {
    add(`w ${token}`);
    if (previous !== undefined) add(`b ${previous} ${token}`);
    previous = token;
    if (token === PLACEHOLDER) continue;
    // Code points, not UTF-16 units: an astral letter is one character of an n-gram.
    const chars = Array.from(`^${token}$`);
    for (let i = 0; i + 3 <= chars.length; i++) add(`c ${chars[i]}${chars[i + 1]}${chars[i + 2]}`);
  }
  return features;
}

function featureWeight(feature: string): number {
  switch (feature[0]) {
    case 'w':
      return feature === `w ${PLACEHOLDER}` ? PLACEHOLDER_WEIGHT : TOKEN_WEIGHT;
    case 'b':
      return BIGRAM_WEIGHT;
    default:
      return TRIGRAM_WEIGHT;
  }
}

function checkLocalDimension(dimension: number): number {
  if (!Number.isInteger(dimension) || dimension < 1 || dimension > MAX_LOCAL_DIMENSION) {
    throw new LogflowError(
      ErrorCodes.CONFIG_INVALID,
      `local embedder: dimension must be an integer between 1 and ${MAX_LOCAL_DIMENSION}, got ${dimension}`,
      {
        stage: 'config',
      },
    );
  }
  return dimension;
}

/**
 * The local embedding of one text: signed feature hashing (bucket from the
 * low 31 bits of the hash, sign from the top bit) with sublinear term
 * frequency (1 + ln count), L2-normalized.
 *
 * A text with no features (empty, only punctuation), or whose features
 * cancel out exactly, maps to the fixed unit vector with every component
 * 1/sqrt(dimension): never NaN, and about as far from every real text as a
 * random direction is.
 */
export function localEmbedding(text: string, dimension: number = DEFAULT_LOCAL_DIMENSION): Float32Array {
  checkLocalDimension(dimension);
  const sums = new Float64Array(dimension);
  for (const [feature, count] of localFeatures(text)) {
    const h = fmix32(fnv1a32(feature));
    const bucket = (h & 0x7fffffff) % dimension;
    const weight = featureWeight(feature) * (1 + Math.log(count));
    sums[bucket] = (sums[bucket] ?? 0) + (h >>> 31 === 1 ? -weight : weight);
  }
  return normalized(sums) ?? new Float32Array(dimension).fill(1 / Math.sqrt(dimension));
}

/** Unit-length copy, or null when the vector has no direction (zero or non-finite norm). */
function normalized(values: ArrayLike<number>): Float32Array | null {
  let squares = 0;
  for (let i = 0; i < values.length; i++) squares += (values[i] ?? 0) ** 2;
  const norm = Math.sqrt(squares);
  if (!(norm > 0) || !Number.isFinite(norm)) return null;
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = (values[i] ?? 0) / norm;
  return out;
}

export function checkTexts(texts: readonly string[], stage: Stage): void {
  if (!Array.isArray(texts)) throw new InputError('embed() takes an array of strings', { stage });
  texts.forEach((text, i) => {
    if (typeof text !== 'string')
      throw new InputError(`embed(): texts[${i}] is ${typeof text}, not a string`, { stage });
  });
}

export interface LocalEmbedderOptions {
  /** Default 256. */
  readonly dimension?: number;
}

export function createLocalEmbedder(options: LocalEmbedderOptions = {}): Embedder {
  const dimension = checkLocalDimension(options.dimension ?? DEFAULT_LOCAL_DIMENSION);
  // The model name is the embedding-cache key's namespace: vectors of another dimension must not be served from it.
  const model = dimension === DEFAULT_LOCAL_DIMENSION ? LOCAL_EMBEDDING_MODEL : `${LOCAL_EMBEDDING_MODEL}/${dimension}`;
  let closed = false;
  return {
    name: 'embedder:local',
    model,
    dimension,
    async embed(texts) {
      if (closed) throw closedError('embedder:local');
      checkTexts(texts, 'embed');
      return texts.map((text) => localEmbedding(text, dimension));
    },
    async health() {
      return closed ? { ok: false, detail: 'closed' } : { ok: true, detail: `${model}, ${dimension} dimensions` };
    },
    async close() {
      closed = true;
    },
  };
}

function closedError(name: string): LogflowError {
  return new LogflowError(ErrorCodes.SHUTDOWN, `${name} is closed`, { stage: 'embed' });
}

// ---------------------------------------------------------------- OpenAI-compatible endpoints (shared with llm.ts)

export interface BackoffOptions {
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly jitter?: RetryPolicy['jitter'];
}

export interface RemoteClientOptions {
  /**
   * The API base, as the `openai` package takes it: `https://api.openai.com/v1`,
   * `http://tei:8080/v1`. A URL with no path at all gets `/v1` appended,
   * since that is where every OpenAI-compatible server puts its routes.
   */
  readonly url: string;
  readonly apiKey?: string;
  readonly model: string;
  readonly timeoutMs?: number;
  /** Retries after the first attempt, for retriable failures only. */
  readonly maxRetries?: number;
  readonly backoff?: BackoffOptions;
  /** Told before each wait between attempts; for logs and metrics. */
  readonly onRetry?: (info: RetryInfo) => void;
}

function httpStatus(error: unknown): number | undefined {
  return error instanceof APIError && typeof error.status === 'number' ? error.status : undefined;
}

/**
 * How the `openai` package's errors map to ours, as data tests can
 * enumerate. Rate limits, server errors and failed connections are worth
 * another attempt; a request the server refuses (bad input, bad key, unknown
 * model or URL) fails the same way every time. Whether a timeout is retried
 * is the caller's choice: cheap for an embedding batch, not for a long LLM
 * call that may still be running (and billed) on the other side.
 */
export function openAIErrorRules(options: { readonly timeoutsRetriable: boolean }): readonly ClassificationRule[] {
  const status = httpStatus;
  return [
    { match: (e) => e instanceof APIUserAbortError, code: ErrorCodes.SHUTDOWN, retriable: false },
    {
      match: (e) => e instanceof APIConnectionTimeoutError || status(e) === 408,
      code: ErrorCodes.TIMEOUT,
      retriable: options.timeoutsRetriable,
    },
    { match: (e) => e instanceof APIConnectionError, code: ErrorCodes.UPSTREAM_UNAVAILABLE, retriable: true },
    { match: (e) => status(e) === 429, code: ErrorCodes.UPSTREAM_UNAVAILABLE, retriable: true },
    { match: (e) => (status(e) ?? 0) >= 500, code: ErrorCodes.UPSTREAM_UNAVAILABLE, retriable: true },
    { match: (e) => [401, 403, 404].includes(status(e) ?? 0), code: ErrorCodes.CONFIG_INVALID, retriable: false },
    { match: (e) => (status(e) ?? 0) >= 400, code: ErrorCodes.INPUT_INVALID, retriable: false },
    // A 2xx whose body claims to be JSON and is not: the same bytes would come back again.
    { match: (e) => e instanceof SyntaxError, code: ErrorCodes.LLM_OUTPUT_INVALID, retriable: false },
  ];
}

/** Our error for a failed request, its message saying which request and why. */
export function classifyOpenAIError(
  error: unknown,
  rules: readonly ClassificationRule[],
  stage: Stage,
  request: string,
): LogflowError {
  if (error instanceof LogflowError) return error;
  const classified = classify(error, rules, stage, { code: ErrorCodes.UPSTREAM_UNAVAILABLE, retriable: false });
  const status = httpStatus(error);
  const reason =
    error instanceof APIConnectionError ? `${classified.message}${causeChain(error.cause)}` : classified.message;
  return new LogflowError(classified.code, `${request} failed: ${reason}`, {
    retriable: classified.retriable,
    stage,
    cause: error,
    ...(status === undefined ? {} : { details: { status } }),
  });
}

/** fetch hides the socket error two causes deep ("fetch failed" <- "connect ECONNREFUSED ..."). */
function causeChain(cause: unknown): string {
  const messages: string[] = [];
  for (let e = cause, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) messages.push(e.message);
  return messages.length === 0 ? '' : ` (${messages.join(': ')})`;
}

/** The base URL the client uses; `/v1` added to a URL without a path. */
export function resolveBaseUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.pathname === '' || parsed.pathname === '/') parsed.pathname = '/v1';
  return parsed.toString().replace(/\/+$/, '');
}

/** For messages and health details: a URL never shows its credentials. */
export function displayUrl(url: string): string {
  const parsed = new URL(url);
  parsed.username = '';
  parsed.password = '';
  return parsed.toString().replace(/\/+$/, '');
}

export interface RemoteSettings {
  readonly client: OpenAI;
  readonly baseUrl: string;
  readonly retry: RetryPolicy;
}

/** Validates the options every remote client shares and builds the `openai` client, with its own retries off. */
export function remoteSettings(
  component: string,
  options: RemoteClientOptions,
  defaults: { readonly timeoutMs: number; readonly maxRetries: number; readonly backoff: Required<BackoffOptions> },
  extraProblems: readonly string[] = [],
): RemoteSettings {
  const problems = [...extraProblems];
  let baseUrl: string | undefined;
  try {
    const parsed = new URL(options.url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      problems.push(`url must start with http:// or https://, got ${displayUrl(options.url)}`);
    else baseUrl = resolveBaseUrl(options.url);
  } catch {
    problems.push(`url is not a URL: ${JSON.stringify(options.url)}`);
  }
  if (typeof options.model !== 'string' || options.model.trim() === '')
    problems.push('model must be a non-empty string');
  const timeoutMs = options.timeoutMs ?? defaults.timeoutMs;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) problems.push(`timeoutMs must be > 0, got ${timeoutMs}`);
  const maxRetries = options.maxRetries ?? defaults.maxRetries;
  if (!Number.isInteger(maxRetries) || maxRetries < 0)
    problems.push(`maxRetries must be an integer >= 0, got ${maxRetries}`);
  const policy: RetryPolicy = { maxAttempts: maxRetries + 1, ...defaults.backoff, ...options.backoff };
  if (!(policy.baseDelayMs >= 0) || !(policy.maxDelayMs >= 0)) problems.push('backoff delays must be >= 0');
  if (problems.length > 0 || baseUrl === undefined) {
    throw new LogflowError(ErrorCodes.CONFIG_INVALID, `${component}: ${problems.join('; ')}`, { stage: 'config' });
  }
  const client = new OpenAI({
    baseURL: baseUrl,
    apiKey: options.apiKey ?? 'unused',
    // The engine's retry loop decides; two nested loops would multiply the attempts.
    maxRetries: 0,
    timeout: timeoutMs,
    // Not read from OPENAI_* variables: they belong to another deployment, not to this endpoint.
    organization: null,
    project: null,
  });
  return { client, baseUrl, retry: policy };
}

/**
 * Runs one request with a signal of its own that aborts when `closing` does.
 * The openai client adds an abort listener to the signal it is given and
 * never removes it: handing it the long-lived closing signal piled up one
 * listener per request (MaxListenersExceededWarning within minutes).
 */
export async function withRequestSignal<T>(closing: AbortSignal, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const request = new AbortController();
  const onClose = () => request.abort(closing.reason);
  if (closing.aborted) onClose();
  else closing.addEventListener('abort', onClose, { once: true });
  try {
    return await run(request.signal);
  } finally {
    closing.removeEventListener('abort', onClose);
  }
}

/** Passive health: a probe request would spend tokens and rate limit, so health reports how the last request went. */
export class RequestOutcome {
  #last: { ok: true } | { ok: false; message: string } | undefined;

  succeeded(): void {
    this.#last = { ok: true };
  }

  failed(error: unknown): void {
    this.#last = { ok: false, message: error instanceof Error ? error.message : String(error) };
  }

  health(closed: boolean, describe: string): HealthCheck {
    if (closed) return { ok: false, detail: 'closed' };
    if (this.#last === undefined) return { ok: true, detail: `${describe}; no request yet` };
    if (this.#last.ok) return { ok: true, detail: describe };
    return { ok: false, detail: `${describe}; last request failed: ${this.#last.message}` };
  }
}

/** `a.b[3].c` for an issue path. */
export function issuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out === '' ? '' : '.'}${String(key)}`;
  return out === '' ? '(root)' : out;
}

/** The first few problems of a failed zod parse, one clause each. */
export function describeIssues(error: z.ZodError, max = 5): string {
  const shown = error.issues.slice(0, max).map((issue) => `${issuePath(issue.path)}: ${issue.message}`);
  const more = error.issues.length > max ? `; and ${error.issues.length - max} more` : '';
  return shown.join('; ') + more;
}

// ---------------------------------------------------------------- remote embedder

export interface OpenAIEmbedderOptions extends RemoteClientOptions {
  /** Texts per request; default 64. */
  readonly batchSize?: number;
  /** Requests in flight at once, across all embed() calls of this embedder; default 4. */
  readonly concurrency?: number;
}

/** Default 30 s per request, 4 retries from 500 ms doubling to 15 s with full jitter. */
const EMBEDDING_DEFAULTS = {
  timeoutMs: 30_000,
  maxRetries: 4,
  backoff: { baseDelayMs: 500, maxDelayMs: 15_000, jitter: 'full' },
} as const;

/** OpenAI allows at most 2048 inputs per request. */
const MAX_BATCH_SIZE = 2048;

const embeddingResponseSchema = z.object({
  data: z.array(
    z.object({
      index: z.int().min(0),
      // z.number() refuses NaN and ±Infinity (a JSON 1e999 parses to Infinity).
      embedding: z.array(z.number()).min(1, 'is empty'),
    }),
  ),
});

function malformed(message: string, details: Record<string, unknown> = {}): LogflowError {
  return new LogflowError(ErrorCodes.LLM_OUTPUT_INVALID, `embeddings endpoint returned malformed output: ${message}`, {
    retriable: false,
    stage: 'embed',
    details,
  });
}

/**
 * The batch's vectors in input order, L2-normalized, after checking
 * everything the caller relies on: one embedding per input, each index once,
 * finite numbers, one dimension for all.
 */
export function parseEmbeddingResponse(body: unknown, inputs: number): Float32Array[] {
  const parsed = embeddingResponseSchema.safeParse(body);
  if (!parsed.success) {
    const what =
      typeof body === 'string' ? `a ${body.length}-character text body instead of JSON` : describeIssues(parsed.error);
    throw malformed(what);
  }
  const { data } = parsed.data;
  if (data.length !== inputs) throw malformed(`${data.length} embeddings for ${inputs} inputs`);
  const byIndex: (number[] | undefined)[] = new Array<number[] | undefined>(inputs);
  let dimension: number | undefined;
  for (const [position, item] of data.entries()) {
    if (item.index >= inputs) throw malformed(`data[${position}].index is ${item.index}, outside 0..${inputs - 1}`);
    if (byIndex[item.index] !== undefined) throw malformed(`index ${item.index} appears more than once`);
    dimension ??= item.embedding.length;
    if (item.embedding.length !== dimension) {
      throw malformed(
        `embeddings of different dimensions in one response (${dimension} and ${item.embedding.length} at data[${position}])`,
      );
    }
    byIndex[item.index] = item.embedding;
  }
  return byIndex.map((embedding, index) => {
    const vector = normalized(embedding ?? []);
    if (vector === null) throw malformed(`the embedding of input ${index} is all zeros`);
    return vector;
  });
}

export function createOpenAIEmbedder(options: OpenAIEmbedderOptions): Embedder {
  const batchSize = options.batchSize ?? 64;
  const concurrency = options.concurrency ?? 4;
  const problems: string[] = [];
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE)
    problems.push(`batchSize must be an integer between 1 and ${MAX_BATCH_SIZE}, got ${batchSize}`);
  if (!Number.isInteger(concurrency) || concurrency < 1)
    problems.push(`concurrency must be a positive integer, got ${concurrency}`);
  const { client, baseUrl, retry: policy } = remoteSettings('OpenAI embedder', options, EMBEDDING_DEFAULTS, problems);

  const name = 'embedder:openai';
  const model = options.model;
  const endpoint = `POST ${displayUrl(baseUrl)}/embeddings`;
  const rules = openAIErrorRules({ timeoutsRetriable: true });
  const limit = pLimit(concurrency);
  const closing = new AbortController();
  const outcome = new RequestOutcome();
  let dimension: number | undefined;

  const retryOptions: RetryOptions = {
    ...policy,
    signal: closing.signal,
    ...(options.onRetry === undefined ? {} : { onRetry: options.onRetry }),
  };

  const requestBatch = (batch: readonly string[]): Promise<Float32Array[]> =>
    retry(async () => {
      let body: unknown;
      try {
        body = await withRequestSignal(closing.signal, (signal) =>
          client.embeddings.create({ model, input: [...batch], encoding_format: 'float' }, { signal }),
        );
      } catch (error) {
        throw classifyOpenAIError(error, rules, 'embed', `embeddings request (${endpoint}, model ${model})`);
      }
      return parseEmbeddingResponse(body, batch.length);
    }, retryOptions);

  const checkDimension = (vectors: readonly Float32Array[]): void => {
    const got = vectors[0]?.length;
    if (got === undefined) return;
    dimension ??= got;
    if (got !== dimension) {
      throw malformed(
        `embedding dimension changed from ${dimension} to ${got} (did the model behind ${displayUrl(baseUrl)} change?)`,
        {
          expected: dimension,
          actual: got,
        },
      );
    }
  };

  return {
    name,
    model,
    get dimension() {
      return dimension;
    },

    async embed(texts) {
      if (closing.signal.aborted) throw closedError(name);
      checkTexts(texts, 'embed');
      if (texts.length === 0) return [];
      const batches: (readonly string[])[] = [];
      for (let i = 0; i < texts.length; i += batchSize) batches.push(texts.slice(i, i + batchSize));
      // Once a batch has failed the call has failed: batches still queued need not be sent.
      let failed = false;
      const results = await Promise.all(
        batches.map((batch) =>
          limit(async () => {
            if (closing.signal.aborted) throw closedError(name);
            if (failed) return [];
            try {
              const vectors = await requestBatch(batch);
              checkDimension(vectors);
              outcome.succeeded();
              return vectors;
            } catch (error) {
              failed = true;
              outcome.failed(error);
              throw error;
            }
          }),
        ),
      );
      return results.flat();
    },

    async health() {
      return outcome.health(
        closing.signal.aborted,
        `${model} at ${displayUrl(baseUrl)}${dimension === undefined ? '' : `, ${dimension} dimensions`}`,
      );
    },

    async close() {
      // Ends requests in flight and waits between retries; their callers get SHUTDOWN.
      closing.abort();
    },
  };
}

export type EmbedderKind = 'remote' | 'model' | 'hashing';

/**
 * Which embedder openEmbedder gives for a configuration, without opening it:
 * the remote one when LOGFLOW_EMBEDDINGS_URL is set, else the local model
 * when its files are in LOGFLOW_MODELS_DIR (README.md, "Local embeddings"),
 * else the hashing embedder. `line` is what a process prints at start.
 */
export function embedderChoice(config: Config): {
  readonly kind: EmbedderKind;
  readonly model: string;
  /** Unknown for a remote endpoint until it answers. */
  readonly dimension: number | undefined;
  readonly line: string;
} {
  const { url, model } = config.embeddings;
  if (url !== undefined)
    return { kind: 'remote', model, dimension: undefined, line: `embeddings: ${model} at ${displayUrl(url)}` };
  if (modelFilesPresent(config.model.dir))
    return {
      kind: 'model',
      model: MODEL_NAME,
      dimension: MODEL_DIMENSION,
      line: `embeddings: ${MODEL_NAME} (local model, ${MODEL_DIMENSION} dimensions, worker thread)`,
    };
  return {
    kind: 'hashing',
    model: LOCAL_EMBEDDING_MODEL,
    dimension: DEFAULT_LOCAL_DIMENSION,
    line: `embeddings: ${LOCAL_EMBEDDING_MODEL} (word hashing, no model in ${modelPaths(config.model.dir).dir}; npm run models:fetch)`,
  };
}

/** The embedder embedderChoice names (README: the two modes; "Local embeddings"). */
export function openEmbedder(
  config: Config,
  options: Omit<OpenAIEmbedderOptions, 'url' | 'apiKey' | 'model'> = {},
): Embedder {
  const { url, apiKey, model } = config.embeddings;
  if (url !== undefined)
    return createOpenAIEmbedder({ ...options, url, model, ...(apiKey === undefined ? {} : { apiKey }) });
  if (embedderChoice(config).kind === 'model')
    return createModelEmbedder({
      modelsDir: config.model.dir,
      threads: config.model.threads,
      batchSize: config.model.batchSize,
    });
  return createLocalEmbedder();
}
