/** prom-client metrics of the embeddings service; labels come from code only (status codes, two sources). */
import { Counter, Histogram, type Registry } from 'prom-client';

export interface EmbeddingsServiceMetrics {
  readonly requests: Counter<'status'>;
  /** Distinct texts per request, by where their vector came from: `cache` or `embedder`. */
  readonly texts: Counter<'source'>;
  readonly seconds: Histogram;
}

/** Several servers may share one registry (tests, a restarted pipeline): existing metrics are reused. */
function reuse<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

export function embeddingsServiceMetrics(registry: Registry): EmbeddingsServiceMetrics {
  const registers = [registry];
  return {
    requests: reuse(
      registry,
      'logflow_embeddings_service_requests_total',
      () =>
        new Counter({
          name: 'logflow_embeddings_service_requests_total',
          help: 'POST /v1/embeddings requests answered, by HTTP status',
          labelNames: ['status'],
          registers,
        }),
    ),
    texts: reuse(
      registry,
      'logflow_embeddings_service_texts_total',
      () =>
        new Counter({
          name: 'logflow_embeddings_service_texts_total',
          help: 'Distinct texts of embeddings requests, by where the vector came from (cache, embedder)',
          labelNames: ['source'],
          registers,
        }),
    ),
    seconds: reuse(
      registry,
      'logflow_embeddings_service_request_seconds',
      () =>
        new Histogram({
          name: 'logflow_embeddings_service_request_seconds',
          help: 'Time to answer POST /v1/embeddings',
          buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
          registers,
        }),
    ),
  };
}
