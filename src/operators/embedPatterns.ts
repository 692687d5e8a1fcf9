import pLimit from 'p-limit';
import { concatMap } from 'rxjs';
import type { MonoTypeOperatorFunction } from 'rxjs';
import { ErrorCodes, errorCode, isRetriable, LogflowError } from '../core/errors.ts';
import { retry, RetryExhaustedError, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import { isFatal, type Pattern, type PatternBatch } from '../sinks/pattern-batch.ts';

export interface EmbedPatternsOptions {
  /** One vector per text, in order (the embeddings endpoint, with its own retries). */
  readonly embed: (texts: readonly string[]) => Promise<Float32Array[]>;
  /** The cached vector of each error pattern, or null (or undefined) when there is none. */
  readonly cached: (hashes: readonly string[]) => Promise<ReadonlyArray<Float32Array | null | undefined>>;
  /** Caches freshly embedded vectors. */
  readonly remember: (
    entries: ReadonlyArray<{ readonly hash: string; readonly vector: Float32Array }>,
  ) => Promise<void>;
  /** Rounds (each with the embedder's own retries) for a template the endpoint fails on while it answers others. */
  readonly maxAttempts: number;
  /** Templates embedded one by one at once, when a batched request failed and the one to blame is looked for. */
  readonly concurrency: number;
  /** Told per batch how many templates were embedded and how many came from the cache. */
  readonly onEmbedded?: (embedded: number, cacheHits: number) => void;
}

/** The endpoint did not answer (down, overloaded, timing out), as opposed to answering "no" about this input. */
const isUnanswered = (error: unknown): boolean => isRetriable(error) || error instanceof RetryExhaustedError;

const PROBE_TEXT = 'logflow: is the embeddings endpoint answering?';

/**
 * Gives each pending pattern of a batch its template's vector, cache first,
 * the misses in one request. A pattern the endpoint refuses (a 400,
 * malformed output), or keeps failing on while it answers others for
 * `maxAttempts` rounds, is rejected (dead-lettered). While the endpoint
 * answers nobody, the batch waits with backoff and no attempt counts against
 * any pattern. Emits each batch once every pattern has a vector or was
 * rejected; fatal errors (a wrong key or model) error the stream.
 */
export function embedPatterns(options: EmbedPatternsOptions): MonoTypeOperatorFunction<PatternBatch> {
  const { embed, cached: lookUp, remember, maxAttempts, concurrency, onEmbedded } = options;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
    throw new RangeError(`embedPatterns: maxAttempts must be an integer >= 1, got ${maxAttempts}`);
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new RangeError(`embedPatterns: concurrency must be an integer >= 1, got ${concurrency}`);

  /** True when the endpoint answers a request that cannot be to blame, so a failing template is the template's fault. */
  const endpointAnswers = async (): Promise<boolean> => {
    try {
      await embed([PROBE_TEXT]);
      return true;
    } catch (error) {
      if (isFatal(error)) throw error;
      return !isUnanswered(error);
    }
  };

  /** Each template alone, `concurrency` at a time: the vector, or why it failed. */
  const embedEach = async (patterns: readonly Pattern[]): Promise<Map<string, Float32Array | { error: unknown }>> => {
    const limit = pLimit(concurrency);
    const settled = await Promise.allSettled(
      patterns.map((pattern) => limit(async () => (await embed([pattern.request.template]))[0]!)),
    );
    const outcomes = new Map<string, Float32Array | { error: unknown }>();
    settled.forEach((outcome, i) =>
      outcomes.set(
        patterns[i]!.hash,
        outcome.status === 'fulfilled' ? outcome.value : { error: outcome.reason as unknown },
      ),
    );
    return outcomes;
  };

  const embedBatch = async (batch: PatternBatch): Promise<PatternBatch> => {
    const patterns = batch.pending();
    if (patterns.length === 0) return batch;
    const cached = await lookUp(patterns.map((p) => p.hash));
    let missing: Pattern[] = [];
    patterns.forEach((p, i) => {
      const vector = cached[i];
      if (vector === null || vector === undefined) missing.push(p);
      else p.vector = vector;
    });
    const cacheHits = patterns.length - missing.length;
    const fresh: Pattern[] = [];
    const attempts = new Map<string, number>();
    const keep = (pattern: Pattern, vector: Float32Array) => {
      pattern.vector = vector;
      fresh.push(pattern);
    };

    if (missing.length > 0) {
      await retry(async () => {
        let batchError: unknown;
        try {
          const vectors = await embed(missing.map((p) => p.request.template));
          missing.forEach((p, i) => keep(p, vectors[i]!));
          missing = [];
          return;
        } catch (error) {
          if (isFatal(error)) throw error;
          if (isUnanswered(error) && !(await endpointAnswers())) {
            throw new LogflowError(errorCode(error), `embeddings endpoint unavailable: ${(error as Error).message}`, {
              retriable: true,
              stage: 'embed',
              cause: error,
            });
          }
          batchError = error;
        }
        // The endpoint answers, just not this request: one template at a time finds the ones to blame.
        const outcomes =
          missing.length === 1 ? new Map([[missing[0]!.hash, { error: batchError }]]) : await embedEach(missing);
        const still: Pattern[] = [];
        for (const pattern of missing) {
          const outcome = outcomes.get(pattern.hash);
          if (outcome instanceof Float32Array) {
            keep(pattern, outcome);
            continue;
          }
          const error = outcome?.error;
          if (isFatal(error)) throw error;
          const attempt = (attempts.get(pattern.hash) ?? 0) + 1;
          attempts.set(pattern.hash, attempt);
          const message = error instanceof Error ? error.message : String(error);
          if (!isUnanswered(error)) {
            batch.reject(
              pattern,
              new LogflowError(
                errorCode(error),
                `embeddings endpoint refused the template of error pattern ${pattern.hash}: ${message}`,
                { stage: 'embed', cause: error },
              ),
            );
          } else if (attempt >= maxAttempts) {
            batch.reject(
              pattern,
              new LogflowError(
                errorCode(error),
                `embedding the template of error pattern ${pattern.hash} failed ${attempt} times while the endpoint answered other requests: ${message}`,
                { stage: 'embed', cause: error, details: { attempts: attempt } },
              ),
            );
          } else still.push(pattern);
        }
        missing = still;
        if (still.length > 0) {
          throw new LogflowError(
            ErrorCodes.UPSTREAM_UNAVAILABLE,
            `embeddings endpoint failed on ${still.length} template(s) it answers for others; trying them again`,
            { retriable: true, stage: 'embed' },
          );
        }
      }, RETRY_UNTIL_STOPPED);
    }
    if (fresh.length > 0) await remember(fresh.map((p) => ({ hash: p.hash, vector: p.vector! })));
    onEmbedded?.(fresh.length, cacheHits);
    return batch;
  };

  return concatMap(embedBatch);
}
