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
import { defaultIfEmpty, defer, ignoreElements, mergeMap, take, type Observable } from 'rxjs';
import { z } from 'zod';
import { DEFAULT_MAX_INPUTS, DEFAULT_MAX_TEXT_CHARS } from '../api/embeddings/protocol.ts';
import { buildEmbeddingsServer } from '../api/embeddings/server.ts';
import { parseOptions } from '../core/options.ts';
import { definePipeline } from '../core/pipeline.ts';
import type { Resources } from '../pipelines/resources.ts';

const optionsSchema = z
  .object({
    port: z.coerce.number().int().min(0).max(65_535).optional(),
    host: z.string().min(1).optional(),
    'max-inputs': z.coerce.number().int().min(1).max(DEFAULT_MAX_INPUTS).default(DEFAULT_MAX_INPUTS),
    'max-text-chars': z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_MAX_TEXT_CHARS),
    // In-process callers (tests, the bench) learn the bound URL; the command line cannot pass a function.
    onListening: z.custom<(url: string) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  })
  .strict();

export const embeddings = definePipeline<Resources>({
  name: 'embeddings',
  description:
    'OpenAI-compatible POST /v1/embeddings from the default embedder, embedding cache in front (point LOGFLOW_EMBEDDINGS_URL at it)',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'embeddings');
    const port = options.port ?? ctx.config.embeddingsService.port;
    const host = options.host ?? ctx.config.embeddingsService.host;
    return defer(async () => {
      const embedder = ctx.resources.embedder();
      const server = buildEmbeddingsServer({
        embedder,
        cache: ctx.resources.embeddingCache(),
        logger: ctx.logger,
        metrics: ctx.metrics,
        health: ctx.health,
        limits: { maxInputs: options['max-inputs'], maxTextChars: options['max-text-chars'] },
      });
      try {
        await server.listen({ port, host });
      } catch (error) {
        await server.close();
        throw error;
      }
      const address = server.server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}/v1`;
      ctx.logger.info(
        { url, model: embedder.model, dimension: embedder.dimension, embedder: embedder.name },
        'embeddings service listening',
      );
      options.onListening?.(url);
      return server;
    }).pipe(
      mergeMap(
        (server): Observable<never> =>
          ctx.stopping$.pipe(
            take(1),
            // A stop asked for while the server was starting has already completed stopping$.
            defaultIfEmpty(undefined),
            mergeMap(() => server.close()),
            ignoreElements(),
          ),
      ),
    );
  },
});
