/**
 * api: the HTTP API and dashboard as a named pipeline, so it runs like every
 * other one (`npm run pipeline -- api` in server mode, inside `npm start` in
 * embedded mode) and stops on the same signal. It opens the stores it reads,
 * listens on LOGFLOW_API_HOST:LOGFLOW_API_PORT (or --host / --port), and on
 * stop closes the server after in-flight requests finish.
 */
import { defaultIfEmpty, defer, ignoreElements, mergeMap, take, type Observable } from 'rxjs';
import { z } from 'zod';
import { buildApiServer } from '../api/server.ts';
import { definePipeline } from '../core/pipeline.ts';
import { parseOptions } from '../core/options.ts';
import type { Resources } from '../pipelines/resources.ts';
import { dashboardUrlOption } from '../stores/postgres/alert-notifications.ts';

const optionsSchema = z
  .object({
    port: z.coerce.number().int().min(0).max(65_535).optional(),
    host: z.string().min(1).optional(),
    'dashboard-url': dashboardUrlOption,
    // In-process callers (npm start) learn the bound URL; the command line cannot pass a function.
    onListening: z.custom<(url: string) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  })
  .strict();

export const api = definePipeline<Resources>({
  name: 'api',
  description:
    'HTTP API and web dashboard: logs, error rates, patterns, alerts, reports, services and settings (bearer API keys)',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'api');
    const port = options.port ?? ctx.config.apiPort;
    const host = options.host ?? ctx.config.apiHost;
    return defer(async () => {
      const { resources, config } = ctx;
      const engines = await resources.engines();
      const [repositories, vectorStore] = await Promise.all([resources.repositories(), resources.vectorStore()]);
      const server = await buildApiServer({
        config,
        logger: ctx.logger,
        metrics: ctx.metrics,
        health: ctx.health,
        clickhouse: engines.clickhouse,
        repositories,
        vectorStore,
        embedder: resources.embedder(),
        ...(options['dashboard-url'] === undefined ? {} : { dashboardUrl: options['dashboard-url'] }),
      });
      try {
        await server.listen({ port, host });
      } catch (error) {
        await server.close();
        throw error;
      }
      const address = server.server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}/`;
      ctx.logger.info({ url, port: bound }, 'api listening');
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
