/**
 * vectorize (the seed's vectorization-worker and embeddings client):
 * vectorization-queue -> group by error_hash -> embed each template once
 * (embedding cache first; bounded concurrency inside the embedder) -> novelty
 * check against the vector store (no neighbour above the similarity threshold
 * -> a novel_pattern alert and an auto-created error_catalog entry) -> upsert
 * the vectors -> flag logs.is_vectorized and error_patterns.has_embedding, in
 * batches. Records are acked once all of that is written.
 */
import { concatMap, defer, from, ignoreElements, mergeMap } from 'rxjs';
import { z } from 'zod';
import type { Envelope } from '../envelope.ts';
import { InputError } from '../errors.ts';
import { batch } from '../operators/batch.ts';
import { definePipeline } from '../pipeline.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../retry.ts';
import type { Failure } from '../sinks/dead-letter.ts';
import { embeddingCacheKey } from '../sinks/embedding-cache.ts';
import { ErrorPatternStore, type PatternObservation } from '../sinks/error-patterns.ts';
import { isUniqueViolation } from '../sinks/postgres/db.ts';
import { pointIdFor } from '../sinks/vector-store.ts';
import type { ConsumedRecord } from '../topics.ts';
import { durationMs } from './duration.ts';
import { consume, deadLetterSink, thenClose } from './consume.ts';
import { parseOptions } from './options.ts';
import type { Resources } from './resources.ts';

const requestSchema = z.object({
  log_id: z.uuid(),
  error_hash: z.string().regex(/^\d{1,20}$/),
  template: z.string().min(1).max(65_536),
  message: z.string().max(65_536),
  service: z.string().min(1).max(128),
  environment: z.string().max(64),
  level: z.enum(['WARN', 'ERROR', 'FATAL']),
  timestamp: z.number().finite(),
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
  })
  .strict();


function parseRequest(record: ConsumedRecord): Request {
  let json: unknown;
  try {
    json = JSON.parse(record.value.toString('utf8'));
  } catch (error) {
    throw new InputError(`not valid JSON: ${(error as Error).message}`);
  }
  const parsed = requestSchema.safeParse(json);
  if (!parsed.success) throw new InputError(`invalid vectorization request: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

export const vectorize = definePipeline<Resources>({
  name: 'vectorize',
  description: 'vectorization-queue -> embed each error pattern once (cached) -> novelty check -> vector store; flags logs and error_patterns',
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

        const embedTemplates = async (byHash: Map<string, Request>): Promise<Map<string, Float32Array>> => {
          const hashes = [...byHash.keys()];
          const cached = await cache.getMany(hashes.map((h) => embeddingCacheKey(embedder.model, h)));
          const vectors = new Map<string, Float32Array>();
          const missing: string[] = [];
          hashes.forEach((h, i) => {
            const v = cached[i];
            if (v === null || v === undefined) missing.push(h);
            else vectors.set(h, v);
          });
          if (missing.length > 0) {
            const embedded = await embedder.embed(missing.map((h) => byHash.get(h)!.template));
            missing.forEach((h, i) => vectors.set(h, embedded[i]!));
            await cache.setMany(missing.map((h, i) => ({ key: embeddingCacheKey(embedder.model, h), vector: embedded[i]! })));
            metrics.recordsOut.inc({ pipeline: name, stage: 'embedded' }, missing.length);
          }
          metrics.recordsOut.inc({ pipeline: name, stage: 'cache-hit' }, hashes.length - missing.length);
          return vectors;
        };

        const raiseNovel = async (request: Request, score: number | null) => {
          const dedupKey = `novel_pattern:${request.error_hash}`;
          await repositories.errorCatalog.upsertAutoCreated({
            errorHash: request.error_hash,
            template: request.template,
            title: request.template.slice(0, 120),
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
              description: `New error pattern: ${request.template.slice(0, 500)}`,
              details: { nearestSimilarity: score, sampleMessage: request.message.slice(0, 1_000) },
              openedAt: new Date(),
            });
            metrics.recordsOut.inc({ pipeline: name, stage: 'novel-pattern' });
          } catch (error) {
            // Another instance raised it first: one open alert per key is the point.
            if (!isUniqueViolation(error)) throw error;
          }
        };

        const process = async (records: Envelope<ConsumedRecord>[]) => {
          const valid: Array<{ envelope: Envelope<ConsumedRecord>; request: Request }> = [];
          const failures: Array<{ envelope: Envelope<ConsumedRecord>; failure: Failure }> = [];
          for (const envelope of records) {
            try {
              valid.push({ envelope, request: parseRequest(envelope.value) });
            } catch (error) {
              failures.push({ envelope, failure: { payload: envelope.value.value, error, stage: 'parse', origin: envelope.origin, key: envelope.key } });
            }
          }
          const byHash = new Map<string, Request>();
          const observations = new Map<string, PatternObservation>();
          for (const { request } of valid) {
            if (!byHash.has(request.error_hash)) byHash.set(request.error_hash, request);
            const prior = observations.get(request.error_hash);
            observations.set(request.error_hash, {
              errorHash: request.error_hash,
              template: request.template,
              sampleMessage: prior?.sampleMessage ?? request.message,
              service: request.service,
              level: request.level,
              firstSeen: Math.min(prior?.firstSeen ?? Infinity, request.timestamp),
              lastSeen: Math.max(prior?.lastSeen ?? -Infinity, request.timestamp),
              occurrences: (prior?.occurrences ?? 0) + 1,
            });
          }
          if (byHash.size > 0) {
            const vectors = await retry(() => embedTemplates(byHash), RETRY_UNTIL_STOPPED);
            const dimension = vectors.values().next().value!.length;
            collectionReady ??= vectorStore.ensureCollection(dimension);
            await collectionReady;
            const known = await retry(() => patterns.get([...byHash.keys()]), RETRY_UNTIL_STOPPED);
            historyStart ??= (await retry(() => patterns.firstSeen(), RETRY_UNTIL_STOPPED)) ?? Math.min(...[...observations.values()].map((o) => o.firstSeen));
            for (const [hash, request] of byHash) {
              if (known.get(hash)?.has_embedding === 1) continue;
              if (request.timestamp < historyStart + options['learning-period']) continue;
              const [nearest] = await vectorStore.search([...vectors.get(hash)!], { limit: 1, excludeErrorHash: hash });
              if (nearest === undefined || nearest.score < options['novelty-threshold']) await raiseNovel(request, nearest?.score ?? null);
            }
            await retry(
              () =>
                vectorStore.upsert(
                  [...byHash].map(([hash, r]) => ({
                    errorHash: hash,
                    vector: [...vectors.get(hash)!],
                    payload: { error_hash: hash, template: r.template, service: r.service, level: r.level, first_seen: new Date(r.timestamp).toISOString() },
                  })),
                ),
              RETRY_UNTIL_STOPPED,
            );
            await retry(() => patterns.markEmbedded([...observations.values()], pointIdFor, known), RETRY_UNTIL_STOPPED);
            await retry(() => patterns.flagVectorized(valid.map((v) => v.request.log_id)), RETRY_UNTIL_STOPPED);
          }
          if (failures.length > 0) await retry(() => deadLetters.send(failures.map((f) => f.failure)), RETRY_UNTIL_STOPPED);
          for (const r of records) r.ack();
          metrics.recordsIn.inc({ pipeline: name, stage: 'source' }, records.length);
          logger.debug({ records: records.length, patterns: byHash.size, invalid: failures.length }, 'vectorized batch');
        };

        const graph$ = subscription.records$.pipe(
          batch({ maxRecords: options['batch-size'], maxBytes: 16 * 1024 * 1024, maxWaitMs: options['batch-wait-ms'], scheduler: ctx.scheduler }),
          concatMap((records) => from(process(records))),
          ignoreElements(),
        );
        return thenClose(graph$, subscription);
      }),
    );
  },
});
