/** GET /api/v1/logs/tail: newly stored logs as server-sent events (src/api/tail.ts, README.md "Live tail"). */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApiError } from '../errors.ts';
import { isoDateTime, logMatchShape, withAttributeFilters } from '../schemas.ts';
import { logMatch } from './analytics.ts';
import { bearer, zod, type RouteContext } from './context.ts';

export function registerTailRoutes(app: FastifyInstance, { tail, deps }: RouteContext): void {
  const r = zod(app);
  const { pollMs, heartbeatMs, bufferBytes, maxConnections } = deps.config.tail;

  r.get('/api/v1/logs/tail', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['logs'],
      summary: 'Stream newly stored logs as server-sent events (live tail)',
      description: [
        'The same filters as `GET /api/v1/logs` (with `attr.<key>=<value>`), without a time range: logs stored ' +
          'after the request that match, oldest first, as `text/event-stream`.',
        `Events: \`ready\` once the tail has started; \`log\` per log (data: a log as the search returns it; id: a ` +
          '`Last-Event-ID` to resume after it); `warning` when reading the store failed (the tail retries); ' +
          '`closed` last, with `{ reason, message }`, when the server ends the stream (`slow_client`, `shutdown`). ' +
          `A comment line every ${heartbeatMs} ms keeps idle connections open.`,
        `Polls the store every ${pollMs} ms. A client that leaves more than ${bufferBytes} bytes unread is ` +
          `dropped; at most ${maxConnections} tails are open at once (503 beyond). Resume with the ` +
          '`Last-Event-ID` header or start from `since` (at most one hour back).',
      ].join('\n\n'),
      security: bearer,
      querystring: withAttributeFilters({
        ...logMatchShape,
        since: isoDateTime.optional().describe('start with the logs ingested since then (at most one hour back)'),
      }),
      headers: z.object({
        'last-event-id': z
          .string()
          .max(500)
          .optional()
          .describe('id of the last event received: the tail resumes after it (at most one hour back)'),
      }),
      response: {
        200: {
          description: 'the event stream; it ends only when the client leaves or the server ends it',
          content: { 'text/event-stream': { schema: z.string() } },
        },
      },
    },
    handler: async (request, reply) => {
      let slot: { release(): void };
      try {
        slot = tail.reserve();
      } catch (error) {
        if (error instanceof ApiError) reply.header('retry-after', '5');
        throw error;
      }
      let events;
      try {
        events = await tail.source(logMatch(request.query), {
          lastEventId: request.headers['last-event-id'],
          since: request.query.since,
        });
      } catch (error) {
        slot.release();
        throw error;
      }
      // From here the response is ours: fastify neither serializes nor compresses it.
      reply.hijack();
      tail.stream(reply.raw, slot, events);
    },
  });
}
