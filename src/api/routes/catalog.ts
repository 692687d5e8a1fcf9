/**
 * error_catalog: what is known about each error pattern, written by the
 * nightly analysis and curated by engineers. An edit through this API marks
 * the entry edited_by_human, after which the analysis only refreshes what it
 * observes (counts, first/last seen, services) and never its text
 * (src/stores/postgres/error-catalog.ts).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SEVERITIES } from '../../stores/postgres/db.ts';
import { notFound } from '../errors.ts';
import { cursor, decodeCursor, errorHash, label, limit, page } from '../schemas.ts';
import { bearer, zod, type RouteContext } from './context.ts';

const catalogCursor = z.object({ offset: z.int().min(0).max(1_000_000) }).strict();
const optionalText = (max: number) => z.string().trim().min(1).max(max).nullable().optional();

const editShape = {
  template: z.string().trim().min(1).max(4_096).optional(),
  title: z.string().trim().min(1).max(500).optional(),
  description: optionalText(20_000),
  category: optionalText(200),
  severity: z.enum(SEVERITIES).optional(),
  solution: optionalText(20_000),
  documentationUrl: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .max(2_000)
    .nullable()
    .optional(),
  tags: z.array(z.string().trim().min(1).max(100)).max(50).optional(),
};

/** Leaves out the keys whose value is undefined (exactOptionalPropertyTypes: absent and undefined differ). */
function defined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as never;
}

export function registerCatalogRoutes(app: FastifyInstance, { deps }: RouteContext): void {
  const r = zod(app);
  const { errorCatalog } = deps.repositories;

  r.get('/api/v1/catalog', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['catalog'],
      summary: 'Error catalog entries, most frequent first',
      security: bearer,
      querystring: z
        .object({
          severity: z.enum(SEVERITIES).optional(),
          service: label.optional(),
          editedByHuman: z.enum(['true', 'false']).optional(),
          limit: limit(50, 500),
          cursor: cursor.optional(),
        })
        .strict(),
    },
    handler: async (request) => {
      const q = request.query;
      const offset = decodeCursor(catalogCursor, q.cursor)?.offset ?? 0;
      const rows = await errorCatalog.list({
        limit: q.limit + 1,
        offset,
        ...(q.severity === undefined ? {} : { severity: q.severity }),
        ...(q.service === undefined ? {} : { service: q.service }),
        ...(q.editedByHuman === undefined ? {} : { editedByHuman: q.editedByHuman === 'true' }),
      });
      return page(rows, q.limit, () => ({ offset: offset + q.limit }));
    },
  });

  r.get('/api/v1/catalog/:errorHash', {
    config: { minRole: 'viewer' },
    schema: {
      tags: ['catalog'],
      summary: "One pattern's catalog entry",
      security: bearer,
      params: z.object({ errorHash }),
    },
    handler: async (request) => {
      const entry = await errorCatalog.get(request.params.errorHash);
      if (entry === null) throw notFound(`catalog entry ${request.params.errorHash}`);
      return entry;
    },
  });

  r.post('/api/v1/catalog', {
    config: { minRole: 'operator' },
    schema: {
      tags: ['catalog'],
      summary: 'Document a pattern the analysis has not catalogued yet (409 when it has)',
      security: bearer,
      body: z
        .object({
          ...editShape,
          errorHash,
          template: editShape.template.unwrap(),
          title: editShape.title.unwrap(),
          services: z.array(label).max(100).optional(),
        })
        .strict(),
    },
    handler: async (request, reply) => reply.code(201).send(await errorCatalog.createByEngineer(defined(request.body))),
  });

  r.patch('/api/v1/catalog/:errorHash', {
    config: { minRole: 'operator' },
    schema: {
      tags: ['catalog'],
      summary: 'Edit an entry; the analysis never overwrites its text afterwards',
      security: bearer,
      params: z.object({ errorHash }),
      body: z
        .object(editShape)
        .strict()
        .refine((p) => Object.values(p).some((v) => v !== undefined), { message: 'nothing to update' }),
    },
    handler: async (request) => errorCatalog.updateByEngineer(request.params.errorHash, defined(request.body)),
  });
}
