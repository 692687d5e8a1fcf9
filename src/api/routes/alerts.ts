/** Alerts (list, one, acknowledge, resolve, silence) and silences, through the PostgreSQL repositories. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { resolveAlert } from '../../sinks/alert-transitions.ts';
import { notificationTargets } from '../../stores/postgres/alert-notifications.ts';
import { ALERT_STATUSES } from '../../stores/postgres/anomaly-alerts.ts';
import { SEVERITIES } from '../../stores/postgres/db.ts';
import { caller } from '../auth.ts';
import { invalid, notFound } from '../errors.ts';
import { cursor, decodeCursor, encodeCursor, idParam, isoDateTime, label, limit, noQuery } from '../schemas.ts';
import { bearer, zod, type RouteContext } from './context.ts';

const MAX_SILENCE_MINUTES = 43_200;
const reason = z.string().trim().min(1).max(1_000);
/** Clients may send `{}` or no body at all. */
const emptyBody = z.object({}).strict().nullish();
const alertCursor = z.object({ id: z.int().positive() }).strict();

export function registerAlertRoutes(app: FastifyInstance, { deps }: RouteContext): void {
  const r = zod(app);
  const { anomalyAlerts, alertSilences } = deps.repositories;

  r.get('/api/v1/alerts', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['alerts'],
      summary: 'Alerts, newest first',
      security: bearer,
      querystring: z
        .object({
          status: z.enum(ALERT_STATUSES).optional(),
          service: label.optional(),
          rule: label.optional(),
          severity: z.enum(SEVERITIES).optional(),
          limit: limit(100),
          cursor: cursor.optional(),
        })
        .strict(),
    },
    handler: async (request) => {
      const q = request.query;
      const after = decodeCursor(alertCursor, q.cursor);
      const page = await anomalyAlerts.list({
        limit: q.limit,
        ...(q.status === undefined ? {} : { status: q.status }),
        ...(q.service === undefined ? {} : { service: q.service }),
        ...(q.rule === undefined ? {} : { rule: q.rule }),
        ...(q.severity === undefined ? {} : { severity: q.severity }),
        ...(after === undefined ? {} : { cursor: String(after.id) }),
      });
      return {
        items: page.items,
        nextCursor: page.nextCursor === null ? null : encodeCursor({ id: Number(page.nextCursor) }),
      };
    },
  });

  r.get('/api/v1/alerts/:id', {
    config: { minRole: 'viewer' },
    schema: { tags: ['alerts'], summary: 'One alert', security: bearer, params: idParam },
    handler: async (request) => {
      const alert = await anomalyAlerts.get(request.params.id);
      if (alert === null) throw notFound(`alert ${request.params.id}`);
      return alert;
    },
  });

  r.post('/api/v1/alerts/:id/acknowledge', {
    config: { minRole: 'operator' },
    schema: {
      tags: ['alerts'],
      summary: 'Acknowledge an open alert (409 from any other state)',
      security: bearer,
      params: idParam,
      body: emptyBody,
    },
    handler: async (request) => anomalyAlerts.acknowledge(request.params.id, caller(request).name),
  });

  r.post('/api/v1/alerts/:id/resolve', {
    config: { minRole: 'operator' },
    schema: {
      tags: ['alerts'],
      summary: 'Resolve an alert that is not resolved yet',
      security: bearer,
      params: idParam,
      body: emptyBody,
    },
    // The receiver told of the opening hears of the resolution too (src/sinks/alert-transitions.ts).
    handler: async (request) =>
      resolveAlert(deps.repositories, request.params.id, notificationTargets(deps.config, deps.dashboardUrl)),
  });

  r.post('/api/v1/alerts/:id/silence', {
    config: { minRole: 'operator' },
    schema: {
      tags: ['alerts'],
      summary: "Silence the alert's dedup key for a while (its notifications are held back)",
      security: bearer,
      params: idParam,
      body: z.object({ durationMinutes: z.int().min(1).max(MAX_SILENCE_MINUTES), reason }).strict(),
    },
    handler: async (request, reply) => {
      const alert = await anomalyAlerts.get(request.params.id);
      if (alert === null) throw notFound(`alert ${request.params.id}`);
      const silence = await alertSilences.create({
        dedupKey: alert.dedupKey,
        reason: request.body.reason,
        createdBy: caller(request).name,
        expiresAt: new Date(Date.now() + request.body.durationMinutes * 60_000),
      });
      return reply.code(201).send(silence);
    },
  });

  r.get('/api/v1/silences', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['alerts'],
      summary: 'Silences in force now, soonest to expire first',
      security: bearer,
      querystring: noQuery,
    },
    handler: async () => ({ items: await alertSilences.listActive(new Date()) }),
  });

  r.post('/api/v1/silences', {
    config: { minRole: 'operator' },
    schema: {
      tags: ['alerts'],
      summary: 'Create a silence; at least one matcher (rule, service, environment, level, dedupKey)',
      security: bearer,
      body: z
        .object({
          rule: label.optional(),
          service: label.optional(),
          environment: label.optional(),
          level: label.optional(),
          dedupKey: z.string().min(1).max(1_000).optional(),
          reason,
          expiresAt: isoDateTime,
        })
        .strict()
        .refine((s) => [s.rule, s.service, s.environment, s.level, s.dedupKey].some((m) => m !== undefined), {
          message: 'needs at least one matcher: rule, service, environment, level or dedupKey',
        }),
    },
    handler: async (request, reply) => {
      const b = request.body;
      const expiresAt = new Date(b.expiresAt);
      if (expiresAt.getTime() <= Date.now()) throw invalid('body.expiresAt', 'must be in the future');
      if (expiresAt.getTime() > Date.now() + MAX_SILENCE_MINUTES * 60_000)
        throw invalid('body.expiresAt', 'may be at most 30 days ahead');
      const silence = await alertSilences.create({
        ...(b.rule === undefined ? {} : { rule: b.rule }),
        ...(b.service === undefined ? {} : { service: b.service }),
        ...(b.environment === undefined ? {} : { environment: b.environment }),
        ...(b.level === undefined ? {} : { level: b.level }),
        ...(b.dedupKey === undefined ? {} : { dedupKey: b.dedupKey }),
        reason: b.reason,
        createdBy: caller(request).name,
        expiresAt,
      });
      return reply.code(201).send(silence);
    },
  });

  r.delete('/api/v1/silences/:id', {
    config: { minRole: 'operator' },
    schema: { tags: ['alerts'], summary: 'Delete a silence', security: bearer, params: idParam },
    handler: async (request, reply) => {
      if (!(await alertSilences.delete(request.params.id))) throw notFound(`silence ${request.params.id}`);
      return reply.code(204).send();
    },
  });
}
