/**
 * Reports and on-demand analysis (an analysis_jobs row the nightly pipeline
 * picks up: the API never runs a pipeline), services, app_config and the
 * caller's own preferences, through the PostgreSQL repositories.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { configValueProblem } from '../../stores/postgres/app-config.ts';
import { SERVICE_TIERS, webhookUrl, type Service } from '../../stores/postgres/services.ts';
import { THEMES } from '../../stores/postgres/user-preferences.ts';
import { caller } from '../auth.ts';
import { invalid, notFound } from '../errors.ts';
import {
  calendarDate,
  cursor,
  decodeCursor,
  idParam,
  jsonObject,
  jsonValue,
  limit,
  noQuery,
  page,
} from '../schemas.ts';
import { bearer, zod, type RouteContext } from './context.ts';

const reportCursor = z.object({ before: calendarDate }).strict();
const serviceName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be lower-case letters, digits, ".", "_" or "-" (at most 63)');
const configKey = z
  .string()
  .max(200)
  .regex(/^[a-z][a-z0-9_.]*$/, 'must be lower-case letters, digits, "_" and "." starting with a letter');

const servicePatchShape = {
  displayName: z.string().min(1).max(200).optional(),
  description: z.string().max(2_000).nullable().optional(),
  ownerTeam: z.string().min(1).max(200).nullable().optional(),
  tier: z.enum(SERVICE_TIERS).optional(),
  monitoringEnabled: z.boolean().optional(),
  alertingEnabled: z.boolean().optional(),
  sensitivity: z.number().finite().positive().max(1_000).optional(),
  minCount: z.int().min(0).max(2_147_483_647).optional(),
  silenceDetection: z.boolean().optional(),
  retentionDays: z.int().min(1).max(36_500).optional(),
  tags: z.array(z.string().min(1).max(100)).max(50).optional(),
  /** Where this service's alert notifications go instead of LOGFLOW_ALERT_WEBHOOK_URL; null: back to the default. */
  alertWebhookUrl: webhookUrl.nullable().optional(),
};

/**
 * A webhook URL holds its secret in the path (Slack's do), so only admins, who may set it, read it whole; others see
 * its origin, enough to tell where notifications go.
 */
function forRole(service: Service, role: string): Service {
  if (role === 'admin' || service.alertWebhookUrl === null) return service;
  let origin: string;
  try {
    origin = `${new URL(service.alertWebhookUrl).origin}/…`;
  } catch {
    origin = '…';
  }
  return { ...service, alertWebhookUrl: origin };
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Leaves out the keys whose value is undefined (exactOptionalPropertyTypes: absent and undefined differ). */
function defined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as never;
}

export function registerAdminRoutes(app: FastifyInstance, { deps }: RouteContext): void {
  const r = zod(app);
  const { nightlyReports, analysisJobs, services, appConfig, userPreferences } = deps.repositories;

  r.get('/api/v1/me', {
    config: { minRole: 'viewer' },
    schema: { tags: ['auth'], summary: 'The API key making the request', security: bearer, querystring: noQuery },
    handler: async (request) => {
      const key = caller(request);
      return { name: key.name, role: key.role };
    },
  });

  r.get('/api/v1/reports', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['reports'],
      summary: 'Nightly reports, newest date first (summary fields)',
      security: bearer,
      querystring: z.object({ limit: limit(30), cursor: cursor.optional() }).strict(),
    },
    handler: async (request) => {
      const q = request.query;
      const after = decodeCursor(reportCursor, q.cursor);
      const rows = await nightlyReports.list({
        limit: Math.min(q.limit + 1, 1000),
        ...(after === undefined ? {} : { before: after.before }),
      });
      const result = page(rows, q.limit, (last) => ({ before: last.reportDate }));
      return {
        items: result.items.map((report) => ({
          id: report.id,
          reportDate: report.reportDate,
          producedBy: report.producedBy,
          modelUsed: report.modelUsed,
          summary: report.summary,
          totalLogs: report.totalLogs,
          totalErrors: report.totalErrors,
          errorRate: report.errorRate,
          uniquePatterns: report.uniquePatterns,
          anomaliesDetected: report.anomaliesDetected,
          keyIssues: report.keyIssues.length,
          createdAt: report.generatedAt,
        })),
        nextCursor: result.nextCursor,
      };
    },
  });

  r.get('/api/v1/reports/:date', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['reports'],
      summary: "One day's report",
      security: bearer,
      params: z.object({ date: calendarDate }),
    },
    handler: async (request) => {
      const report = await nightlyReports.getByDate(request.params.date);
      if (report === null) throw notFound(`report for ${request.params.date}`);
      return report;
    },
  });

  r.post('/api/v1/analysis-jobs', {
    config: { minRole: 'operator' },
    schema: {
      tags: ['reports'],
      summary: "Ask for a day's analysis now; the nightly pipeline runs pending jobs",
      security: bearer,
      body: z.object({ date: calendarDate }).strict(),
    },
    handler: async (request, reply) => {
      if (request.body.date > new Date().toISOString().slice(0, 10)) throw invalid('body.date', 'is in the future');
      const job = await analysisJobs.create({
        jobType: 'on_demand',
        targetDate: request.body.date,
        requestedBy: caller(request).name,
      });
      return reply.code(202).send({ id: job.id, status: job.status });
    },
  });

  r.get('/api/v1/analysis-jobs/:id', {
    config: { minRole: 'viewer' },
    schema: { tags: ['reports'], summary: 'An analysis job and its state', security: bearer, params: idParam },
    handler: async (request) => {
      const job = await analysisJobs.get(request.params.id);
      if (job === null) throw notFound(`analysis job ${request.params.id}`);
      return job;
    },
  });

  r.get('/api/v1/services', {
    config: { minRole: 'viewer' },
    schema: { tags: ['services'], summary: 'Monitored services, by name', security: bearer, querystring: noQuery },
    handler: async (request) => {
      const role = caller(request).role;
      return { items: (await services.list()).map((s) => forRole(s, role)) };
    },
  });

  r.get('/api/v1/services/:name', {
    config: { minRole: 'viewer' },
    schema: { tags: ['services'], summary: 'One service', security: bearer, params: z.object({ name: serviceName }) },
    handler: async (request) => {
      const service = await services.get(request.params.name);
      if (service === null) throw notFound(`service ${request.params.name}`);
      return forRole(service, caller(request).role);
    },
  });

  r.post('/api/v1/services', {
    config: { minRole: 'admin' },
    schema: {
      tags: ['services'],
      summary: 'Add a service (409 when the name is taken)',
      security: bearer,
      body: z.object({ ...servicePatchShape, name: serviceName, displayName: z.string().min(1).max(200) }).strict(),
    },
    handler: async (request, reply) => reply.code(201).send(await services.create(defined(request.body))),
  });

  r.patch('/api/v1/services/:name', {
    config: { minRole: 'admin' },
    schema: {
      tags: ['services'],
      summary: "Change a service's settings",
      security: bearer,
      params: z.object({ name: serviceName }),
      body: z
        .object(servicePatchShape)
        .strict()
        .refine((p) => Object.values(p).some((v) => v !== undefined), { message: 'nothing to update' }),
    },
    handler: async (request) => services.update(request.params.name, defined(request.body)),
  });

  r.delete('/api/v1/services/:name', {
    config: { minRole: 'admin' },
    schema: {
      tags: ['services'],
      summary: 'Remove a service',
      security: bearer,
      params: z.object({ name: serviceName }),
    },
    handler: async (request, reply) => {
      if (!(await services.delete(request.params.name))) throw notFound(`service ${request.params.name}`);
      return reply.code(204).send();
    },
  });

  r.get('/api/v1/config', {
    config: { minRole: 'admin' },
    schema: { tags: ['config'], summary: 'Runtime settings (app_config)', security: bearer, querystring: noQuery },
    handler: async () => ({ items: await appConfig.list() }),
  });

  r.get('/api/v1/config/:key', {
    config: { minRole: 'admin' },
    schema: { tags: ['config'], summary: 'One setting', security: bearer, params: z.object({ key: configKey }) },
    handler: async (request) => {
      const entry = await appConfig.get(request.params.key);
      if (entry === null) throw notFound(`config key ${request.params.key}`);
      return entry;
    },
  });

  r.put('/api/v1/config/:key', {
    config: { minRole: 'admin' },
    schema: {
      tags: ['config'],
      summary: 'Create or change a setting (JSON value)',
      security: bearer,
      params: z.object({ key: configKey }),
      body: z.object({ value: jsonValue, description: z.string().min(1).max(2_000).optional() }).strict(),
    },
    handler: async (request) => {
      const { value, description } = request.body;
      if (value === undefined) throw invalid('body.value', 'is required');
      const problem = configValueProblem(request.params.key, value);
      if (problem !== undefined) throw invalid('body.value', problem);
      return appConfig.set(
        request.params.key,
        value,
        caller(request).name,
        ...(description === undefined ? [] : [description]),
      );
    },
  });

  r.delete('/api/v1/config/:key', {
    config: { minRole: 'admin' },
    schema: { tags: ['config'], summary: 'Remove a setting', security: bearer, params: z.object({ key: configKey }) },
    handler: async (request, reply) => {
      if (!(await appConfig.delete(request.params.key))) throw notFound(`config key ${request.params.key}`);
      return reply.code(204).send();
    },
  });

  r.get('/api/v1/preferences', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['preferences'],
      summary: "The caller's dashboard preferences (defaults until saved)",
      security: bearer,
      querystring: noQuery,
    },
    handler: async (request) => userPreferences.get(caller(request).name),
  });

  r.put('/api/v1/preferences', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['preferences'],
      summary: "Save any of the caller's own preferences",
      security: bearer,
      body: z
        .object({
          timezone: z.string().max(100).refine(isTimeZone, 'is not a known IANA time zone').optional(),
          theme: z.enum(THEMES).optional(),
          defaultFilters: jsonObject.optional(),
          notifications: jsonObject.optional(),
        })
        .strict()
        .refine((p) => Object.values(p).some((v) => v !== undefined), { message: 'nothing to update' }),
    },
    handler: async (request) => userPreferences.upsert(caller(request).name, defined(request.body)),
  });
}
