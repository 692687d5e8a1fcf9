/**
 * api: the HTTP API and dashboard as a named pipeline, so it runs like every
 * other one (`npm run pipeline -- api` in server mode, inside `npm start` in
 * embedded mode) and stops on the same signal. It opens the stores it reads,
 * listens on LOGFLOW_API_HOST:LOGFLOW_API_PORT (or --host / --port), and on
 * stop closes the server after in-flight requests finish.
 */
import { z } from 'zod';
import { buildApiServer } from '../api/server.ts';
import { definePipeline } from '../core/pipeline.ts';
import { parseOptions } from '../core/options.ts';
import type { Resources } from '../pipelines/resources.ts';
import { listenOptions, serveUntilStopped } from './http-service.ts';
import { dashboardUrlOption } from '../stores/postgres/alert-notifications.ts';

const optionsSchema = z
  .object({
    ...listenOptions,
    'dashboard-url': dashboardUrlOption,
  })
  .strict();

export const api = definePipeline<Resources>({
  name: 'api',
  description:
    'HTTP API and web dashboard: logs, error rates, patterns, alerts, reports, services and settings (bearer API keys)',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'api');
    const build = async () => {
      const { resources, config } = ctx;
      const engines = await resources.engines();
      const [repositories, vectorStore] = await Promise.all([resources.repositories(), resources.vectorStore()]);
      return buildApiServer({
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
    };
    return serveUntilStopped(ctx, build, {
      port: options.port ?? ctx.config.apiPort,
      host: options.host ?? ctx.config.apiHost,
      path: '/',
      onListening: options.onListening,
      describe: (url, port) => ({ url, port }),
      message: 'api listening',
    });
  },
});
