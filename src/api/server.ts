/**
 * The HTTP API and dashboard server (fastify). Routes validate their input
 * with zod schemas, which also generate the OpenAPI document; errors share
 * one JSON shape (errors.ts); bearer API keys with roles guard /api/v1
 * (auth.ts). Logging goes through the engine's pino logger with a request
 * serializer that never includes headers, so keys cannot reach a log line.
 *
 * The server only reads the stores and writes PostgreSQL rows through the
 * repositories; it never runs a pipeline (an on-demand analysis is a pending
 * analysis_jobs row the nightly pipeline picks up).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { asyncScheduler, type SchedulerLike } from 'rxjs';
import compress from '@fastify/compress';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import { Counter, type Registry } from 'prom-client';
import type { Config } from '../core/config.ts';
import type { Embedder } from '../clients/embeddings.ts';
import type { Health } from '../core/health.ts';
import type { Logger } from '../core/logger.ts';
import type { EngineMetrics } from '../core/metrics.ts';
import type { PoolRepositories } from '../stores/postgres/index.ts';
import type { VectorStore } from '../stores/vector-store.ts';
import { Analytics } from './analytics.ts';
import { installAuth } from './auth.ts';
import { registerDashboard } from './dashboard.ts';
import { ApiError, installErrorHandler } from './errors.ts';
import { installJsonBodyParser } from './json-body.ts';
import { installRequestTextCheck } from './request-text.ts';
import { registerAdminRoutes } from './routes/admin.ts';
import { registerAlertRoutes } from './routes/alerts.ts';
import { registerAnalyticsRoutes } from './routes/analytics.ts';
import { registerCatalogRoutes } from './routes/catalog.ts';
import type { RouteContext } from './routes/context.ts';
import { registerTailRoutes } from './routes/tail.ts';
import { TailHub } from './tail.ts';

export interface ApiDependencies {
  readonly config: Config;
  readonly logger: Logger;
  /** Registry served on /metrics; the server adds its request counter to it. */
  readonly metrics: EngineMetrics;
  /** Phase and status for /healthz and /readyz. */
  readonly health: Health;
  readonly clickhouse: ClickHouseClient;
  readonly repositories: PoolRepositories;
  readonly vectorStore: VectorStore;
  /**
   * Embeds a pattern's template to find its neighbours in the vector store
   * (the store searches by vector). Without it, patterns have no neighbours.
   */
  readonly embedder?: Embedder;
  /** The link in the notifications its resolves queue; LOGFLOW_DASHBOARD_URL otherwise. */
  readonly dashboardUrl?: string;
  /** Clock of the live tails' polls, heartbeats and grace timers (default: asyncScheduler). */
  readonly scheduler?: SchedulerLike;
}

export const API_VERSION = '1.0.0';

/** Any key-shaped text in a URL is masked before it is logged, should a client put one there. */
const KEY_IN_TEXT = /lf_[A-Za-z0-9_-]{8,}/g;

/** Only these request fields are ever logged: never headers (Authorization, cookies). */
function requestLogFields(request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: request.url.replace(KEY_IN_TEXT, 'lf_***'),
    remoteAddress: request.ip,
  };
}

function requestCounter(registry: Registry): Counter<'method' | 'route' | 'status'> {
  const name = 'logflow_http_requests_total';
  // Several servers may share one registry (tests, a restarted pipeline): reuse the counter.
  const existing = registry.getSingleMetric(name);
  if (existing !== undefined) return existing as Counter<'method' | 'route' | 'status'>;
  return new Counter({
    name,
    help: 'HTTP requests answered by the API, by route pattern and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
}

/** Builds the server with every route; not listening yet (call `listen`, or `inject` in tests). */
export async function buildApiServer(deps: ApiDependencies): Promise<FastifyInstance> {
  const { config } = deps;
  const logger = deps.logger.child({ component: 'api' }, { serializers: { req: requestLogFields } });
  const app = Fastify({
    // pino's Logger is what fastify expects; the generic parameters differ only in custom levels.
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.apiBodyLimitBytes,
    trustProxy: false,
    // Keys are never in URLs; ids are numbers and names are short.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandler(app);
  installJsonBodyParser(app);
  installRequestTextCheck(app);

  const requests = requestCounter(deps.metrics.registry);
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, not the URL: label values stay bounded.
    requests.inc({
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status: String(reply.statusCode),
    });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'logflow API',
        version: API_VERSION,
        description:
          'Logs, error rates, patterns, alerts, reports and settings of logflow. Send `Authorization: Bearer <api key>`.',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'an API key (lf_...) from `npm run keys -- create`' },
        },
      },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(compress, { global: true, threshold: 1024 });
  await app.register(rateLimit, {
    global: true,
    max: config.apiRateLimitPerMinute,
    timeWindow: 60_000,
    errorResponseBuilder: (_request, context) =>
      new ApiError(
        429,
        'rate_limited',
        `rate limit of ${context.max} requests per minute exceeded; retry in ${context.after}`,
      ),
  });
  installAuth(app, deps.repositories.apiKeys);

  const analytics = new Analytics(deps.clickhouse);
  const tail = new TailHub(
    analytics,
    config.tail,
    deps.scheduler ?? asyncScheduler,
    logger as FastifyBaseLogger,
    deps.metrics.registry,
  );
  // Open tails never end by themselves: closing the server would wait for them forever.
  app.addHook('preClose', async () => tail.closeAll());
  const context: RouteContext = { deps, analytics, tail };
  registerSystemRoutes(app, deps);
  registerAnalyticsRoutes(app, context);
  registerTailRoutes(app, context);
  registerAlertRoutes(app, context);
  registerAdminRoutes(app, context);
  registerCatalogRoutes(app, context);

  try {
    await registerDashboard(app);
  } catch (error) {
    // The API stays useful without its dashboard; the log says why the page is missing.
    logger.error({ err: error }, 'dashboard unavailable');
    app.get('/', { schema: { hide: true } }, async (_request, reply) =>
      reply
        .code(503)
        .send({ error: 'dashboard_unavailable', message: 'the dashboard failed to build; see the server log' }),
    );
  }
  return app;
}

function registerSystemRoutes(app: FastifyInstance, deps: ApiDependencies): void {
  // Probes and scrapers poll these: they are neither rate limited nor authenticated.
  const open = { rateLimit: false } as const;

  app.get('/metrics', { config: open, schema: { hide: true } }, async (_request, reply) =>
    reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
  );

  app.get('/healthz', { config: open, schema: { hide: true } }, async (_request, reply) => {
    return reply.code(deps.health.live() ? 200 : 503).send(deps.health.snapshot());
  });

  app.get('/readyz', { config: open, schema: { hide: true } }, async (_request, reply) => {
    return reply.code(deps.health.ready() ? 200 : 503).send(deps.health.snapshot());
  });

  app.get('/openapi.json', { config: open, schema: { hide: true } }, async () => app.swagger());
}
