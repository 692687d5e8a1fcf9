/** What every route module gets: the server's dependencies, the ClickHouse reads built on them, the live tails. */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Analytics } from '../analytics.ts';
import type { ApiDependencies } from '../server.ts';
import type { TailHub } from '../tail.ts';

export interface RouteContext {
  readonly deps: ApiDependencies;
  readonly analytics: Analytics;
  readonly tail: TailHub;
}

export function zod(app: FastifyInstance) {
  return app.withTypeProvider<ZodTypeProvider>();
}

/** OpenAPI security requirement of the bearer-key routes. */
export const bearer = [{ apiKey: [] }];
