/**
 * embeddings (the seed's jina-embeddings service): an OpenAI-compatible
 * `POST /v1/embeddings` serving this process's default embedder (what
 * vectorize would use here, Resources.embedder) with the embedding cache in
 * front (Redis when LOGFLOW_REDIS_URL is set). Server-mode vectorize points
 * LOGFLOW_EMBEDDINGS_URL at it, so one process holds the model and every
 * vectorize instance shares its cache. Listens on
 * LOGFLOW_EMBEDDINGS_SERVICE_HOST:LOGFLOW_EMBEDDINGS_SERVICE_PORT (or --host /
 * --port); on stop, closes after in-flight requests finish.
 */
import { z } from 'zod';
import type { Embedder } from '../clients/embeddings.ts';
import { DEFAULT_MAX_INPUTS, DEFAULT_MAX_TEXT_CHARS } from '../api/embeddings/protocol.ts';
import { buildEmbeddingsServer } from '../api/embeddings/server.ts';
import { parseOptions } from '../core/options.ts';
import { definePipeline } from '../core/pipeline.ts';
import type { Resources } from '../pipelines/resources.ts';
import { listenOptions, serveUntilStopped } from './http-service.ts';

const optionsSchema = z
  .object({
    ...listenOptions,
    'max-inputs': z.coerce.number().int().min(1).max(DEFAULT_MAX_INPUTS).default(DEFAULT_MAX_INPUTS),
    'max-text-chars': z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_MAX_TEXT_CHARS),
  })
  .strict();

export const embeddings = definePipeline<Resources>({
  name: 'embeddings',
  description:
    'OpenAI-compatible POST /v1/embeddings from the default embedder, embedding cache in front (point LOGFLOW_EMBEDDINGS_URL at it)',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'embeddings');
    // Opened when the graph runs, as every resource is; the log line on listening names it.
    let embedder: Embedder | undefined;
    const build = async () => {
      embedder = ctx.resources.embedder();
      return buildEmbeddingsServer({
        embedder,
        cache: ctx.resources.embeddingCache(),
        logger: ctx.logger,
        metrics: ctx.metrics,
        health: ctx.health,
        limits: { maxInputs: options['max-inputs'], maxTextChars: options['max-text-chars'] },
      });
    };
    return serveUntilStopped(ctx, build, {
      port: options.port ?? ctx.config.embeddingsService.port,
      host: options.host ?? ctx.config.embeddingsService.host,
      path: '/v1',
      onListening: options.onListening,
      describe: (url) => ({ url, model: embedder?.model, dimension: embedder?.dimension, embedder: embedder?.name }),
      message: 'embeddings service listening',
    });
  },
});
