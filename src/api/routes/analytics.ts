/** Logs search, error-rate series, top errors, hourly counts and error patterns (ClickHouse). */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { LogCursor, LogMatch, PatternCursor } from '../analytics.ts';
import { spaceThresholds } from '../../domain/novelty.ts';
import { notFound } from '../errors.ts';
import {
  attributeFilters,
  chooseStep,
  cursor,
  decodeCursor,
  encodeCursor,
  errorHash,
  label,
  limit,
  logMatchShape,
  resolveRange,
  text,
  timeRangeShape,
  withAttributeFilters,
} from '../schemas.ts';
import { bearer, zod, type RouteContext } from './context.ts';

const logCursor = z.object({ t: z.number().int().min(0).max(8_000_000_000_000), id: z.uuid() }).strict();
const patternCursor = z.object({ t: z.number().int().min(0).max(8_000_000_000_000), h: errorHash }).strict();
const SIMILAR = 10;

/** The shared filters of a validated logs or tail query, as the ClickHouse reads take them. */
export function logMatch(q: {
  readonly service?: string | undefined;
  readonly environment?: string | undefined;
  readonly level?: string | undefined;
  readonly q?: string | undefined;
  readonly errorHash?: string | undefined;
  readonly traceId?: string | undefined;
}): LogMatch {
  const attributes = attributeFilters(q as Record<string, unknown>);
  return {
    service: q.service,
    environment: q.environment,
    level: q.level,
    q: q.q,
    errorHash: q.errorHash,
    traceId: q.traceId,
    ...(attributes.length === 0 ? {} : { attributes }),
  };
}

export function registerAnalyticsRoutes(app: FastifyInstance, { deps, analytics }: RouteContext): void {
  const r = zod(app);

  r.get('/api/v1/logs', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['logs'],
      summary: 'Search logs, newest first',
      description:
        'Filters combine with AND. Besides the parameters below, `attr.<key>=<value>` (up to 10) keeps logs whose ' +
        'attribute <key> equals <value>; keys are 1-128 characters: letters, digits and `_ . : / -`.',
      security: bearer,
      querystring: withAttributeFilters({
        ...timeRangeShape,
        ...logMatchShape,
        limit: limit(100),
        cursor: cursor.optional(),
      }),
    },
    handler: async (request) => {
      const q = request.query;
      const after = decodeCursor(logCursor, q.cursor) as LogCursor | undefined;
      const range = resolveRange(q);
      const result = await analytics.logs({ range, ...logMatch(q) }, q.limit, after);
      return {
        items: result.items,
        nextCursor: result.more && result.last !== undefined ? encodeCursor(result.last) : null,
      };
    },
  });

  r.get('/api/v1/stats/error-rate', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['stats'],
      summary: 'Total and error (ERROR+FATAL) counts per service over time',
      security: bearer,
      querystring: z
        .object({
          ...timeRangeShape,
          step: z.coerce
            .number()
            .int()
            .min(1)
            .max(86_400)
            .optional()
            .describe('bucket width in seconds (default: whole minutes, at most 300 points)'),
          service: label.optional(),
          environment: label.optional(),
        })
        .strict(),
    },
    handler: async (request) => {
      const q = request.query;
      const range = resolveRange(q);
      const step = chooseStep(range, q.step, 2_000);
      return {
        step,
        series: await analytics.errorRate({ range, service: q.service, environment: q.environment }, step),
      };
    },
  });

  r.get('/api/v1/stats/top-errors', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['stats'],
      summary: 'Most frequent ERROR and FATAL patterns in the range',
      security: bearer,
      querystring: z.object({ ...timeRangeShape, service: label.optional(), limit: limit(10, 100) }).strict(),
    },
    handler: async (request) => {
      const q = request.query;
      return { items: await analytics.topErrors({ range: resolveRange(q), service: q.service }, q.limit) };
    },
  });

  r.get('/api/v1/stats/hourly', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['stats'],
      summary: 'Log counts per hour, service, environment and level (the hourly rollup)',
      security: bearer,
      querystring: z.object({ ...timeRangeShape, service: label.optional(), environment: label.optional() }).strict(),
    },
    handler: async (request) => {
      const q = request.query;
      return {
        items: await analytics.hourly({ range: resolveRange(q), service: q.service, environment: q.environment }),
      };
    },
  });

  r.get('/api/v1/patterns', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['patterns'],
      summary: 'Error patterns, most recently seen first',
      security: bearer,
      querystring: z
        .object({
          service: label.optional(),
          q: text.optional().describe('case-insensitive substring of the template'),
          limit: limit(100),
          cursor: cursor.optional(),
        })
        .strict(),
    },
    handler: async (request) => {
      const q = request.query;
      const after = decodeCursor(patternCursor, q.cursor) as PatternCursor | undefined;
      const result = await analytics.patterns({ service: q.service, q: q.q }, q.limit, after);
      return {
        items: result.items,
        nextCursor: result.more && result.last !== undefined ? encodeCursor(result.last) : null,
      };
    },
  });

  r.get('/api/v1/patterns/:errorHash', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['patterns'],
      summary: 'One pattern with its occurrence series and its nearest patterns in the vector store',
      security: bearer,
      params: z.object({ errorHash }),
      querystring: z.object({ ...timeRangeShape }).strict(),
    },
    handler: async (request) => {
      const hash = request.params.errorHash;
      const [pattern] = (await analytics.patterns({ errorHash: hash }, 1, undefined)).items;
      if (pattern === undefined) throw notFound(`pattern ${hash}`);
      const range = resolveRange(request.query);
      const step = chooseStep(range, undefined, 300);
      const series = await analytics.patternSeries(hash, range, step);
      return { pattern, step, series, similar: await similarTo(hash, pattern.template) };
    },
  });

  /**
   * The vector store searches by vector, so the template is embedded again:
   * the embedder is deterministic for a model, which gives back the stored
   * point. Without an embedder, or while the store is unavailable, the page
   * still shows the pattern, with no neighbours. Only neighbours at least the
   * embedder's "similar" cut-off are listed (src/domain/novelty.ts): below
   * it, the nearest patterns are no nearer than unrelated ones.
   */
  async function similarTo(
    hash: string,
    template: string,
  ): Promise<Array<{ errorHash: string; template: string; service: string; score: number }>> {
    if (deps.embedder === undefined) return [];
    try {
      const [vector] = await deps.embedder.embed([template]);
      if (vector === undefined) return [];
      const cutOff = spaceThresholds(deps.embedder.model).similar;
      const matches = await deps.vectorStore.search([...vector], {
        limit: SIMILAR,
        excludeErrorHash: hash,
        ...(cutOff > -1 ? { minScore: cutOff } : {}),
      });
      return matches.map((m) => ({
        errorHash: m.errorHash,
        template: m.payload.template,
        service: m.payload.service,
        score: m.score,
      }));
    } catch (error) {
      deps.logger.warn({ err: error, errorHash: hash }, 'similar patterns unavailable');
      return [];
    }
  }
}
