/**
 * vectorize (the seed's vectorization-worker and embeddings client):
 * vectorization-queue -> group by error_hash -> embed each template once
 * (embedding cache first; bounded concurrency inside the embedder) -> novelty
 * check against the vector store (no neighbour above the similarity threshold
 * -> a novel_pattern alert and an auto-created error_catalog entry) -> upsert
 * the vectors -> flag logs.is_vectorized and error_patterns.has_embedding, in
 * batches. Records are acked once all of that is written.
 *
 * A pattern whose own processing fails is dead-lettered, never retried
 * forever: the endpoint refusing its template (a 400, malformed output) sends
 * its records to vectorization-queue-dlq at once; a template the endpoint keeps
 * failing on while it answers others gets `max-attempts` tries first. An
 * endpoint that answers nobody is an outage: the batch waits, with backoff,
 * and nothing is dropped. Any other non-retriable failure of a batch is
 * retried pattern by pattern, and only the pattern that fails alone is
 * dead-lettered.
 */
import { concatMap, defer, from, ignoreElements, mergeMap } from 'rxjs';
import { z } from 'zod';
import type { Envelope } from '../core/envelope.ts';
import { ErrorCodes, errorCode, InputError, isRetriable, LogflowError } from '../core/errors.ts';
import { MAX_DATE_MS } from '../domain/log-event.ts';
import { batch } from '../operators/batch.ts';
import { definePipeline } from '../core/pipeline.ts';
import { retry, RetryExhaustedError, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import type { Failure } from '../sinks/dead-letter.ts';
import { embeddingCacheKey } from '../stores/embedding-cache.ts';
import { ErrorPatternStore, type PatternObservation } from '../stores/error-patterns.ts';
import { isUniqueViolation } from '../stores/postgres/db.ts';
import { pointIdFor } from '../stores/vector-store.ts';
import type { ConsumedRecord } from '../sources/topics.ts';
import { durationMs } from '../core/duration.ts';
import { consume, deadLetterSink, thenClose } from '../sources/consume.ts';
import { parseOptions } from '../core/options.ts';
import type { Resources } from './resources.ts';
import { storableString, truncateText } from '../core/text.ts';

const requestSchema = z.object({
  log_id: z.uuid(),
  error_hash: z.string().regex(/^\d{1,20}$/),
  // Text from the queue is stored in PostgreSQL and ClickHouse further on: NUL and lone surrogates are refused here.
  template: storableString().min(1).max(65_536),
  message: storableString().max(65_536),
  service: storableString().min(1).max(128),
  environment: storableString().max(64),
  level: z.enum(['WARN', 'ERROR', 'FATAL']),
  // Bounded to what a Date holds: the request's time is printed and stored as a date further on.
  timestamp: z.number().min(-MAX_DATE_MS).max(MAX_DATE_MS),
});
type Request = z.output<typeof requestSchema>;

const optionsSchema = z
  .object({
    'batch-size': z.coerce.number().int().min(1).max(100_000).default(2_000),
    'batch-wait-ms': z.coerce.number().int().min(1).max(60_000).default(500),
    'novelty-threshold': z.coerce.number().min(-1).max(1).default(0.85),
    // Every pattern is new to a fresh system: novelty is judged only after this much event time of history.
    'learning-period': durationMs.default(15 * 60_000),
    partitions: z.coerce.number().int().min(1).max(1_000).default(4),
    // Rounds (each with the embedder's own retries) for a template the endpoint keeps failing on while it answers
    // others.
    'max-attempts': z.coerce.number().int().min(1).max(100).default(5),
  })
  .strict();

/**
 * The records of one error pattern in a batch: embedded, checked for novelty and written together, or dead-lettered
 * together.
 */
interface Group {
  readonly hash: string;
  /** The first request of the pattern in the batch: its template is what gets embedded. */
  readonly request: Request;
  readonly entries: Array<{ envelope: Envelope<ConsumedRecord>; request: Request }>;
  observation: PatternObservation;
}

/**
 * Failures no record is to blame for: a wrong key or model, or the process stopping. They stop the pipeline, as before.
 */
const isFatal = (error: unknown): boolean =>
  errorCode(error) === ErrorCodes.CONFIG_INVALID || errorCode(error) === ErrorCodes.SHUTDOWN;

/** The endpoint did not answer (down, overloaded, timing out), as opposed to answering "no" about this input. */
const isUnanswered = (error: unknown): boolean => isRetriable(error) || error instanceof RetryExhaustedError;

const PROBE_TEXT = 'logflow: is the embeddings endpoint answering?';

function parseRequest(record: ConsumedRecord): Request {
  let json: unknown;
  try {
    json = JSON.parse(record.value.toString('utf8'));
  } catch (error) {
    throw new InputError(`not valid JSON: ${(error as Error).message}`);
  }
  const parsed = requestSchema.safeParse(json);
  if (!parsed.success)
    throw new InputError(
      `invalid vectorization request: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return parsed.data;
}

export const vectorize = definePipeline<Resources>({
  name: 'vectorize',
  description:
    'vectorization-queue -> embed each error pattern once (cached) -> novelty check -> vector store; flags logs and error_patterns',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'vectorize');
    return defer(async () => {
      const { resources, config } = ctx;
      const topics = resources.topics();
      await topics.ensureTopic(config.topics.vectorizationQueue, options.partitions);
      await topics.ensureTopic(config.topics.vectorizationQueueDlq, 1);
      const engines = await resources.engines();
      const [repositories, vectorStore] = await Promise.all([resources.repositories(), resources.vectorStore()]);
      const embedder = resources.embedder();
      return { topics, engines, repositories, vectorStore, embedder, cache: resources.embeddingCache() };
    }).pipe(
      mergeMap(({ topics, engines, repositories, vectorStore, embedder, cache }) => {
        const { config, metrics, name, logger } = ctx;
        const patterns = new ErrorPatternStore(engines.clickhouse);
        const producer = topics.producer();
        const deadLetters = deadLetterSink(ctx, producer, config.topics.vectorizationQueueDlq);
        let collectionReady: Promise<void> | undefined;
        let historyStart: number | undefined;
        const subscription = consume(ctx, topics, config.topics.vectorizationQueue);

        /**
         * True when the endpoint answers a request that cannot be to blame, so a failing template is the template's
         * fault.
         */
        const endpointAnswers = async (): Promise<boolean> => {
          try {
            await embedder.embed([PROBE_TEXT]);
            return true;
          } catch (error) {
            if (isFatal(error)) throw error;
            return !isUnanswered(error);
          }
        };

        /**
         * Vectors of the groups' templates (cache first), and the groups whose
         * template could not be embedded with why. Resolves only once every
         * group is one or the other: while the endpoint answers nobody it
         * waits, with backoff, counting no attempts against any pattern.
         */
        const embedGroups = async (
          groups: readonly Group[],
        ): Promise<{ vectors: Map<string, Float32Array>; rejected: Map<string, unknown> }> => {
          const vectors = new Map<string, Float32Array>();
          const rejected = new Map<string, unknown>();
          const template = new Map(groups.map((g) => [g.hash, g.request.template]));
          const cached = await cache.getMany(groups.map((g) => embeddingCacheKey(embedder.model, g.hash)));
          let missing: string[] = [];
          groups.forEach((g, i) => {
            const v = cached[i];
            if (v === null || v === undefined) missing.push(g.hash);
            else vectors.set(g.hash, v);
          });
          const cacheHits = vectors.size;
          const fresh: string[] = [];
          const attempts = new Map<string, number>();
          const keep = (hashes: readonly string[], embedded: readonly Float32Array[]) =>
            hashes.forEach((h, i) => {
              vectors.set(h, embedded[i]!);
              fresh.push(h);
            });

          if (missing.length > 0) {
            await retry(async () => {
              let batchError: unknown;
              try {
                keep(missing, await embedder.embed(missing.map((h) => template.get(h)!)));
                missing = [];
                return;
              } catch (error) {
                if (isFatal(error)) throw error;
                if (isUnanswered(error) && !(await endpointAnswers())) {
                  throw new LogflowError(
                    errorCode(error),
                    `embeddings endpoint unavailable: ${(error as Error).message}`,
                    { retriable: true, stage: 'embed', cause: error },
                  );
                }
                batchError = error;
              }
              // The endpoint answers, just not this request: one template at a time finds the ones to blame.
              const results: PromiseSettledResult<Float32Array[]>[] =
                missing.length === 1
                  ? [{ status: 'rejected', reason: batchError }]
                  : await Promise.allSettled(missing.map((h) => embedder.embed([template.get(h)!])));
              const still: string[] = [];
              for (const [i, result] of results.entries()) {
                const hash = missing[i]!;
                if (result.status === 'fulfilled') {
                  keep([hash], result.value);
                  continue;
                }
                const error: unknown = result.reason;
                if (isFatal(error)) throw error;
                const attempt = (attempts.get(hash) ?? 0) + 1;
                attempts.set(hash, attempt);
                const message = error instanceof Error ? error.message : String(error);
                if (!isUnanswered(error)) {
                  rejected.set(
                    hash,
                    new LogflowError(
                      errorCode(error),
                      `embeddings endpoint refused the template of error pattern ${hash}: ${message}`,
                      { stage: 'embed', cause: error },
                    ),
                  );
                } else if (attempt >= options['max-attempts']) {
                  rejected.set(
                    hash,
                    new LogflowError(
                      errorCode(error),
                      `embedding the template of error pattern ${hash} failed ${attempt} times while the endpoint answered other requests: ${message}`,
                      {
                        stage: 'embed',
                        cause: error,
                        details: { attempts: attempt },
                      },
                    ),
                  );
                } else still.push(hash);
              }
              missing = still;
              if (still.length > 0) {
                throw new LogflowError(
                  ErrorCodes.UPSTREAM_UNAVAILABLE,
                  `embeddings endpoint failed on ${still.length} template(s) it answers for others; trying them again`,
                  {
                    retriable: true,
                    stage: 'embed',
                  },
                );
              }
            }, RETRY_UNTIL_STOPPED);
          }
          if (fresh.length > 0) {
            await cache.setMany(
              fresh.map((h) => ({ key: embeddingCacheKey(embedder.model, h), vector: vectors.get(h)! })),
            );
            metrics.recordsOut.inc({ pipeline: name, stage: 'embedded' }, fresh.length);
          }
          metrics.recordsOut.inc({ pipeline: name, stage: 'cache-hit' }, cacheHits);
          return { vectors, rejected };
        };

        const raiseNovel = async (request: Request, score: number | null) => {
          const dedupKey = `novel_pattern:${request.error_hash}`;
          await repositories.errorCatalog.upsertAutoCreated({
            errorHash: request.error_hash,
            template: request.template,
            title: truncateText(request.template, 120),
            description: `Error pattern first seen in ${request.service} (${request.environment}) at ${new Date(request.timestamp).toISOString()}.`,
            services: [request.service],
            occurrenceCount: 1,
            firstSeen: new Date(request.timestamp),
            lastSeen: new Date(request.timestamp),
            severity: request.level === 'FATAL' ? 'critical' : request.level === 'ERROR' ? 'high' : 'medium',
          });
          if ((await repositories.anomalyAlerts.findActive(dedupKey)) !== null) return;
          try {
            await repositories.anomalyAlerts.insert({
              dedupKey,
              rule: 'novel_pattern',
              alertType: 'novel_pattern',
              status: 'open',
              severity: request.level === 'FATAL' ? 'critical' : 'high',
              service: request.service,
              environment: request.environment,
              level: request.level,
              errorHash: request.error_hash,
              score: score ?? 0,
              description: `New error pattern: ${truncateText(request.template, 500)}`,
              details: { nearestSimilarity: score, sampleMessage: truncateText(request.message, 1_000) },
              openedAt: new Date(),
            });
            metrics.recordsOut.inc({ pipeline: name, stage: 'novel-pattern' });
          } catch (error) {
            // Another instance raised it first: one open alert per key is the point.
            if (!isUniqueViolation(error)) throw error;
          }
        };

        /** Novelty, vectors and flags of embedded groups; retriable failures wait, a non-retriable one is thrown. */
        const store = async (
          groups: readonly Group[],
          vectors: ReadonlyMap<string, Float32Array>,
          known: Awaited<ReturnType<ErrorPatternStore['get']>>,
          start: number,
        ) => {
          for (const { hash, request } of groups) {
            if (known.get(hash)?.has_embedding === 1) continue;
            if (request.timestamp < start + options['learning-period']) continue;
            await retry(async () => {
              const [nearest] = await vectorStore.search([...vectors.get(hash)!], { limit: 1, excludeErrorHash: hash });
              if (nearest === undefined || nearest.score < options['novelty-threshold'])
                await raiseNovel(request, nearest?.score ?? null);
            }, RETRY_UNTIL_STOPPED);
          }
          await retry(
            () =>
              vectorStore.upsert(
                groups.map(({ hash, request: r }) => ({
                  errorHash: hash,
                  vector: [...vectors.get(hash)!],
                  payload: {
                    error_hash: hash,
                    template: r.template,
                    service: r.service,
                    level: r.level,
                    first_seen: new Date(r.timestamp).toISOString(),
                  },
                })),
              ),
            RETRY_UNTIL_STOPPED,
          );
          await retry(
            () =>
              patterns.markEmbedded(
                groups.map((g) => g.observation),
                pointIdFor,
                known,
              ),
            RETRY_UNTIL_STOPPED,
          );
          await retry(
            () => patterns.flagVectorized(groups.flatMap((g) => g.entries.map((e) => e.request.log_id))),
            RETRY_UNTIL_STOPPED,
          );
        };

        const deadLetter = (group: Group, error: unknown): Failure[] => {
          logger.warn(
            { errorHash: group.hash, records: group.entries.length, err: error },
            'error pattern dead-lettered',
          );
          return group.entries.map(({ envelope }) => ({
            payload: envelope.value.value,
            error,
            stage: 'embed',
            origin: envelope.origin,
            key: envelope.key,
          }));
        };

        const process = async (records: Envelope<ConsumedRecord>[]) => {
          const failures: Failure[] = [];
          const groups = new Map<string, Group>();
          for (const envelope of records) {
            let request: Request;
            try {
              request = parseRequest(envelope.value);
            } catch (error) {
              failures.push({
                payload: envelope.value.value,
                error,
                stage: 'parse',
                origin: envelope.origin,
                key: envelope.key,
              });
              continue;
            }
            const group = groups.get(request.error_hash);
            const prior = group?.observation;
            const observation: PatternObservation = {
              errorHash: request.error_hash,
              template: request.template,
              sampleMessage: prior?.sampleMessage ?? request.message,
              service: request.service,
              level: request.level,
              firstSeen: Math.min(prior?.firstSeen ?? Infinity, request.timestamp),
              lastSeen: Math.max(prior?.lastSeen ?? -Infinity, request.timestamp),
              occurrences: (prior?.occurrences ?? 0) + 1,
            };
            if (group === undefined)
              groups.set(request.error_hash, {
                hash: request.error_hash,
                request,
                entries: [{ envelope, request }],
                observation,
              });
            else {
              group.entries.push({ envelope, request });
              group.observation = observation;
            }
          }
          let embedded = 0;
          if (groups.size > 0) {
            const { vectors, rejected } = await embedGroups([...groups.values()]);
            for (const [hash, error] of rejected) failures.push(...deadLetter(groups.get(hash)!, error));
            const ready = [...groups.values()].filter((g) => vectors.has(g.hash));
            embedded = ready.length;
            if (ready.length > 0) {
              collectionReady ??= vectorStore.ensureCollection(vectors.get(ready[0]!.hash)!.length);
              await collectionReady;
              const known = await retry(() => patterns.get(ready.map((g) => g.hash)), RETRY_UNTIL_STOPPED);
              historyStart ??=
                (await retry(() => patterns.firstSeen(), RETRY_UNTIL_STOPPED)) ??
                Math.min(...[...groups.values()].map((g) => g.observation.firstSeen));
              const start = historyStart;
              try {
                await store(ready, vectors, known, start);
              } catch (error) {
                if (isFatal(error)) throw error;
                if (ready.length === 1) failures.push(...deadLetter(ready[0]!, error));
                else {
                  // Some pattern's records cannot be written: each pattern alone shows which, and the rest go through.
                  for (const group of ready) {
                    try {
                      await store([group], vectors, known, start);
                    } catch (alone) {
                      if (isFatal(alone)) throw alone;
                      failures.push(...deadLetter(group, alone));
                    }
                  }
                }
              }
            }
          }
          if (failures.length > 0) await retry(() => deadLetters.send(failures), RETRY_UNTIL_STOPPED);
          for (const r of records) r.ack();
          metrics.recordsIn.inc({ pipeline: name, stage: 'source' }, records.length);
          logger.debug({ records: records.length, patterns: embedded, failed: failures.length }, 'vectorized batch');
        };

        const graph$ = subscription.records$.pipe(
          batch({
            maxRecords: options['batch-size'],
            maxBytes: 16 * 1024 * 1024,
            maxWaitMs: options['batch-wait-ms'],
            scheduler: ctx.scheduler,
          }),
          concatMap((records) => from(process(records))),
          ignoreElements(),
        );
        return thenClose(graph$, subscription);
      }),
    );
  },
});
