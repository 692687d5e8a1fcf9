/**
 * vectorize (the seed's vectorization-worker and embeddings client):
 * vectorization-queue -> group by error_hash -> embed each template once
 * (embedding cache first; bounded concurrency inside the embedder) -> novelty
 * check against the vector store (no neighbour above the similarity threshold
 * -> a novel_pattern alert and an auto-created error_catalog entry) -> upsert
 * the vectors -> flag logs.is_vectorized and error_patterns.has_embedding, in
 * batches.
 *
 * What flows is chunks (src/core/chunk.ts): one partition's records with one
 * acknowledgement. A record that is no valid request is dead-lettered before
 * its chunk joins a batch; chunks are then gathered into batches so that one
 * embedding request and one write per stage serve many chunks, and a chunk is
 * acked once every pattern of its batch is written or dead-lettered.
 *
 * A pattern whose own processing fails is dead-lettered, never retried
 * forever: the endpoint refusing its template (a 400, malformed output) sends
 * its records to vectorization-queue-dlq at once; a template the endpoint keeps
 * failing on while it answers others gets `max-attempts` tries first. An
 * endpoint that answers nobody is an outage: the batch waits, with backoff,
 * and nothing is dropped. Any other non-retriable failure of a batch is
 * retried pattern by pattern, and only the pattern that fails alone is
 * dead-lettered.
 *
 * The graph is the pipe in `build`; each stage's work lives in its operator
 * (src/operators) or in the sink it calls (src/sinks/pattern-vectors.ts).
 */
import { concat, concatMap, defer, finalize, ignoreElements, map, mergeMap, pipe, tap } from 'rxjs';
import { z } from 'zod';
import type { Chunk, Rejected } from '../core/chunk.ts';
import { durationMs } from '../core/duration.ts';
import { parseOptions } from '../core/options.ts';
import { chooseNoveltyThreshold } from '../domain/novelty.ts';
import { definePipeline } from '../core/pipeline.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import { acknowledge } from '../operators/acknowledge.ts';
import { batch } from '../operators/batch.ts';
import { deadLetterRejected } from '../operators/deadLetterRejected.ts';
import { embedPatterns, type EmbedPatternsOptions } from '../operators/embedPatterns.ts';
import { isolateFailures } from '../operators/isolateFailures.ts';
import { oneAtATime } from '../operators/oneAtATime.ts';
import { parseRecords } from '../operators/parseRecords.ts';
import { reportInFlight } from '../operators/reportInFlight.ts';
import { retryWithBackoff } from '../operators/retryWithBackoff.ts';
import { throughItems } from '../operators/throughItems.ts';
import { parseQueuedRequest, PatternBatch, type Pattern, type QueuedRequest } from '../sinks/pattern-batch.ts';
import { PatternVectorSink } from '../sinks/pattern-vectors.ts';
import { consume, deadLetterSink, thenClose } from '../sources/consume.ts';
import { embeddingCacheKey } from '../stores/embedding-cache.ts';
import { ErrorPatternStore } from '../stores/error-patterns.ts';
import { dashboardUrlOption, notificationTargets } from '../stores/postgres/alert-notifications.ts';
import type { Resources } from './resources.ts';
import { startReembedding } from './vectorize-reembed.ts';

const optionsSchema = z
  .object({
    'batch-size': z.coerce.number().int().min(1).max(100_000).default(2_000),
    'batch-wait-ms': z.coerce.number().int().min(1).max(60_000).default(500),
    // Unset: app_config, which operators change through the API, or the embedder's calibrated threshold
    // (chooseNoveltyThreshold in src/domain/novelty.ts).
    'novelty-threshold': z.coerce.number().min(-1).max(1).optional(),
    // Every pattern is new to a fresh system: novelty is judged only after this much event time of history.
    'dashboard-url': dashboardUrlOption,
    'learning-period': durationMs.default(15 * 60_000),
    partitions: z.coerce.number().int().min(1).max(1_000).default(4),
    // Rounds (each with the embedder's own retries) for a template the endpoint keeps failing on while it answers
    // others.
    'max-attempts': z.coerce.number().int().min(1).max(100).default(5),
    // Templates embedded alone at once while looking for the one a batched request failed on.
    'embed-concurrency': z.coerce.number().int().min(1).max(64).default(4),
  })
  .strict();

const MAX_BATCH_BYTES = 16 * 1024 * 1024;

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
      const { threshold: noveltyThreshold, source } = chooseNoveltyThreshold(
        embedder.model,
        options['novelty-threshold'],
        await repositories.appConfig.getAll(),
      );
      ctx.logger.info({ model: embedder.model, noveltyThreshold, source }, 'novelty threshold');
      return {
        topics,
        engines,
        repositories,
        vectorStore,
        embedder,
        cache: resources.embeddingCache(),
        noveltyThreshold,
      };
    }).pipe(
      mergeMap(({ topics, engines, repositories, vectorStore, embedder, cache, noveltyThreshold }) => {
        const { config, metrics, name, logger, scheduler } = ctx;
        const counted = (stage: string) => metrics.recordsOut.labels({ pipeline: name, stage });
        const deadLetters = deadLetterSink(ctx, topics.producer(), config.topics.vectorizationQueueDlq);
        const patterns = new ErrorPatternStore(engines.clickhouse);
        // Patterns known before a change of embedder join its collection (README.md, "Local embeddings").
        const reembedding = startReembedding({ patterns, vectorStore, embedder, cache }, logger, scheduler);
        const stopReembedding = ctx.stopping$.subscribe(() => reembedding.stop());
        const sink = new PatternVectorSink(patterns, vectorStore, repositories, {
          model: embedder.model,
          complete: reembedding.done,
          noveltyThreshold,
          learningPeriodMs: options['learning-period'],
          notifications: notificationTargets(config, options['dashboard-url']),
          onNovel: () => counted('novel-pattern').inc(),
        });
        const subscription = consume(ctx, topics, config.topics.vectorizationQueue, {
          // A chunk is acked whole, so it cannot be split across batches: sources cut chunks to a quarter of this
          // bound (src/sources/topics.ts), which keeps every batch within batch-size.
          maxInFlightRecords: 4 * options['batch-size'],
        });
        const untilStopped = { ...RETRY_UNTIL_STOPPED, scheduler };
        const sendDeadLetters = (rejected: readonly Rejected[]) =>
          retry(() => deadLetters.send(rejected), untilStopped);
        const recordsIn = metrics.recordsIn.labels({ pipeline: name, stage: 'source' });

        const embedding: EmbedPatternsOptions = {
          embed: (texts) => embedder.embed(texts),
          cached: (hashes) =>
            cache.getMany(hashes.map((hash) => embeddingCacheKey(embedder.model, hash, embedder.dimension))),
          remember: (entries) =>
            cache.setMany(
              entries.map(({ hash, vector }) => ({
                key: embeddingCacheKey(embedder.model, hash, embedder.dimension),
                vector,
              })),
            ),
          maxAttempts: options['max-attempts'],
          concurrency: options['embed-concurrency'],
          onEmbedded: (embedded, cacheHits) => {
            if (embedded > 0) counted('embedded').inc(embedded);
            counted('cache-hit').inc(cacheHits);
          },
        };
        const logRejected = (pattern: Pattern, err: unknown) =>
          logger.warn({ errorHash: pattern.hash, records: pattern.entries.length, err }, 'error pattern dead-lettered');
        const countBatch = (b: PatternBatch) => {
          metrics.batchSize.observe({ pipeline: name, stage: 'vectors' }, b.pending().length);
          logger.debug({ records: b.size, patterns: b.pending().length, failed: b.rejectedCount }, 'vectorized batch');
        };

        const graph$ = subscription.chunks$.pipe(
          tap((chunk) => recordsIn.inc(chunk.records.length)),
          // Invalid requests are dead-lettered with stage `parse` before batching: no later stage could use them.
          parseRecords(parseQueuedRequest),
          deadLetterRejected(sendDeadLetters),
          batch<Chunk<QueuedRequest>>({
            maxRecords: options['batch-size'],
            maxBytes: MAX_BATCH_BYTES,
            maxWaitMs: options['batch-wait-ms'],
            scheduler,
            countOf: (chunk) => chunk.records.length,
          }),
          map((chunks) => PatternBatch.of(chunks, logRejected)),
          // One batch at a time through every stage: a batch's novelty check and known rows must see the vectors and
          // rows of the batch before it.
          oneAtATime(
            pipe(
              embedPatterns(embedding),
              concatMap((b) => retry(() => sink.lookUp(b), untilStopped)),
              throughItems(
                (b) => b.envelopes(),
                (b) => retryWithBackoff((pattern) => sink.checkNovelty(pattern, b), untilStopped),
              ),
              isolateFailures(
                (b) => b.envelopes(),
                (patterns) => sink.upsertVectors(patterns),
                untilStopped,
              ),
              isolateFailures(
                (b) => b.envelopes(),
                (patterns, b) => sink.markEmbedded(patterns, b),
                untilStopped,
              ),
              isolateFailures(
                (b) => b.envelopes(),
                (patterns) => sink.flagVectorized(patterns),
                untilStopped,
              ),
            ),
          ),
          tap(countBatch),
          // Back to the chunks, the dead-lettered patterns' records among their rejected: each chunk's ack covers
          // them once their letters are written.
          concatMap((b) => b.chunks()),
          deadLetterRejected(sendDeadLetters),
          acknowledge(),
          reportInFlight(
            () => subscription.inFlight.records,
            (records) => metrics.inFlight.set({ pipeline: name }, records),
            { scheduler },
          ),
        );
        return concat(thenClose(graph$, subscription), defer(() => reembedding.done).pipe(ignoreElements())).pipe(
          finalize(() => {
            stopReembedding.unsubscribe();
            reembedding.stop();
          }),
        );
      }),
    );
  },
});
