/**
 * The embeddings service's HTTP server (fastify, as src/api/server.ts):
 * OpenAI's `POST /v1/embeddings` and `GET /v1/models` from one embedder with
 * the embedding cache in front, plus /healthz, /readyz and /metrics.
 *
 * It serves one model and says which: a request naming another model gets
 * OpenAI's 404 `model_not_found`, so a client that stores vectors under the
 * model name it asked for (vectorize does) can never mix two models' vectors
 * after the service's default embedder changes.
 */
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Embedder } from '../../clients/embeddings.ts';
import { ErrorCodes, InputError, LogflowError } from '../../core/errors.ts';
import type { Health } from '../../core/health.ts';
import type { Logger } from '../../core/logger.ts';
import type { EngineMetrics } from '../../core/metrics.ts';
import type { EmbeddingCache } from '../../stores/embedding-cache.ts';
import { ApiError } from '../errors.ts';
import { installJsonBodyParser } from '../json-body.ts';
import { embeddingsServiceMetrics } from './metrics.ts';
import {
  embeddingsResponse,
  EmbeddingsRequestError,
  invalidRequest,
  requestProblem,
  requestSchema,
  type EmbeddingsLimits,
  type OpenAIErrorBody,
} from './protocol.ts';
import { embedWithCache } from './text-cache.ts';

export interface EmbeddingsServerDependencies {
  readonly embedder: Embedder;
  readonly cache: EmbeddingCache;
  readonly logger: Logger;
  readonly metrics: EngineMetrics;
  readonly health: Health;
  readonly limits: EmbeddingsLimits;
}

/** 2048 texts of 8192 characters, JSON-escaped, need about this much; fastify answers 413 beyond. */
export const EMBEDDINGS_BODY_LIMIT_BYTES = 32 * 1024 * 1024;

function requestLogFields(request: FastifyRequest): Record<string, unknown> {
  return { method: request.method, url: request.url, remoteAddress: request.ip };
}

function errorReply(error: FastifyError | Error): { status: number; body: OpenAIErrorBody } {
  if (error instanceof EmbeddingsRequestError) return { status: error.statusCode, body: error.body };
  // The JSON body parser's depth check (src/api/json-body.ts) and an embedder refusing a text.
  if (error instanceof ApiError || error instanceof InputError) {
    const e = invalidRequest(error.message, 'input');
    return { status: 400, body: e.body };
  }
  if (error instanceof LogflowError && (error.retriable || error.code === ErrorCodes.SHUTDOWN)) {
    return {
      status: 503,
      body: { error: { message: error.message, type: 'service_unavailable', param: null, code: error.code } },
    };
  }
  const status = (error as FastifyError).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // fastify's own refusals: malformed JSON, a body over the limit (413), a content type it cannot parse (415).
    return { status, body: invalidRequest(error.message, null, (error as FastifyError).code ?? null, status).body };
  }
  return {
    status: 500,
    body: { error: { message: 'internal error; see the server log', type: 'server_error', param: null, code: null } },
  };
}

/** Builds the server; not listening yet (call `listen`). */
export function buildEmbeddingsServer(deps: EmbeddingsServerDependencies): FastifyInstance {
  const { embedder, cache, limits } = deps;
  const logger = deps.logger.child({ component: 'embeddings-service' }, { serializers: { req: requestLogFields } });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: EMBEDDINGS_BODY_LIMIT_BYTES,
    trustProxy: false,
    routerOptions: { ignoreTrailingSlash: true },
  });
  installJsonBodyParser(app);
  const metrics = embeddingsServiceMetrics(deps.metrics.registry);
  const schema = requestSchema(limits);

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(invalidRequest(`no route ${request.method} ${request.url.split('?')[0] ?? ''}`, null, null, 404).body),
  );
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { status, body } = errorReply(error);
    if (status >= 500) request.log.error({ err: error }, 'embeddings request failed');
    return reply.code(status).type('application/json').send(body);
  });
  app.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.url !== '/v1/embeddings') return;
    metrics.requests.inc({ status: String(reply.statusCode) });
    metrics.seconds.observe(reply.elapsedTime / 1000);
  });

  app.post('/v1/embeddings', async (request) => {
    const parsed = schema.safeParse(request.body);
    if (!parsed.success) throw requestProblem(parsed.error);
    const body = parsed.data;
    if (body.model !== undefined && body.model !== embedder.model) {
      throw invalidRequest(
        `The model \`${body.model}\` is not served here; this service serves \`${embedder.model}\``,
        'model',
        'model_not_found',
        404,
      );
    }
    if (body.dimensions !== undefined && embedder.dimension !== undefined && body.dimensions !== embedder.dimension) {
      throw invalidRequest(
        `dimensions: ${embedder.model} has ${embedder.dimension} dimensions, not ${body.dimensions}`,
        'dimensions',
      );
    }
    const texts = body.input;
    const result = await embedWithCache(embedder, cache, texts);
    metrics.texts.inc({ source: 'cache' }, result.cacheHits);
    metrics.texts.inc({ source: 'embedder' }, result.embedded);
    return embeddingsResponse(embedder.model, texts, result.vectors, body.encoding_format ?? 'float');
  });

  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: embedder.model, object: 'model', created: 0, owned_by: 'logflow' }],
  }));

  app.get('/metrics', async (_request, reply) =>
    reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
  );
  app.get('/healthz', async (_request, reply) =>
    reply.code(deps.health.live() ? 200 : 503).send(deps.health.snapshot()),
  );
  app.get('/readyz', async (_request, reply) =>
    reply.code(deps.health.ready() ? 200 : 503).send(deps.health.snapshot()),
  );
  return app;
}
