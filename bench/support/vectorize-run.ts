/**
 * One run of the vectorize pipeline (src/pipelines/vectorize.ts) with a given
 * embedder, on the bench stack (Kafka, chdb, PostgreSQL): the queue records
 * are produced first to a fresh topic prefix, then vectorize drains them, with
 * a fresh in-memory embedding cache and vector table, so every pattern is
 * embedded once in the run. Done when its consumer group has committed every
 * record: each was embedded (or a cache hit), checked for novelty, upserted and
 * flagged. Commits run every second, so a run's time includes up to one
 * second after its last record was done.
 */
import { randomUUID } from 'node:crypto';
import { startPipeline } from '../../src/app/runner.ts';
import type { Embedder } from '../../src/clients/embeddings.ts';
import { consumerGroup } from '../../src/core/config.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { normalizeMessage } from '../../src/domain/normalizer.ts';
import type { VectorizationRequest } from '../../src/domain/vectorization-request.ts';
import { vectorize } from '../../src/pipelines/vectorize.ts';
import type { Resources } from '../../src/pipelines/resources.ts';
import { uniqueName, type BenchStack } from './stack.ts';

const PARTITIONS = 4;
// Within the broker's default 1 MB request size: queue records are a few hundred bytes.
const SEND_CHUNK = 1_000;

export interface VectorizeRun {
  readonly records: number;
  readonly patterns: number;
  readonly seconds: number;
}

/** Queue requests as ingest writes them, one per message, 100 ms of event time apart. */
export function vectorizationRequests(messages: readonly string[], count: number): VectorizationRequest[] {
  const start = Date.now() - count * 100;
  return Array.from({ length: count }, (_, i) => {
    const message = messages[i % messages.length]!;
    const { template, errorHash } = normalizeMessage(message);
    return {
      log_id: randomUUID(),
      error_hash: errorHash,
      template,
      message,
      service: `bench-${i % 8}`,
      environment: 'production',
      level: 'ERROR',
      timestamp: start + i * 100,
    };
  });
}

export async function runVectorize(
  stack: BenchStack,
  embedder: Embedder,
  requests: readonly VectorizationRequest[],
  onProgress?: (committed: number) => void,
): Promise<VectorizeRun> {
  const base = stack.config(`${uniqueName('bench_vec')}.`);
  const config = { ...base, qdrant: { ...base.qdrant, collection: uniqueName('bench_vectors') } };
  const opened = stack.resources(config);
  const resources: Resources = { ...opened, embedder: () => embedder };
  const topics = opened.topics();
  const topic = config.topics.vectorizationQueue;
  try {
    await topics.ensureTopic(topic, PARTITIONS);
    const producer = topics.producer();
    for (let i = 0; i < requests.length; i += SEND_CHUNK) {
      await producer.send(
        topic,
        requests.slice(i, i + SEND_CHUNK).map((r) => ({ key: r.service, value: JSON.stringify(r) })),
      );
    }
    // The producer is the topics' shared one, which vectorize's dead letters use too: it closes with them.

    const started = performance.now();
    const running = startPipeline(vectorize, {
      config,
      logger: stack.logger,
      metrics: createMetrics({ defaultMetrics: false }),
      resources,
      options: { partitions: String(PARTITIONS) },
    });
    const group = consumerGroup(config, 'vectorize');
    let committed = 0;
    while (committed < requests.length) {
      const outcome = await Promise.race([
        running.done,
        new Promise<undefined>((resolve) => setTimeout(resolve, 200, undefined)),
      ]);
      if (outcome !== undefined)
        throw new Error(`vectorize ended before draining the queue: ${JSON.stringify(outcome)}`);
      committed = [...(await topics.committedOffsets(group, topic)).values()].reduce((sum, offset) => sum + offset, 0);
      onProgress?.(committed);
    }
    const seconds = (performance.now() - started) / 1000;
    await running.stop();
    return { records: requests.length, patterns: new Set(requests.map((r) => r.error_hash)).size, seconds };
  } finally {
    await opened.close();
  }
}
