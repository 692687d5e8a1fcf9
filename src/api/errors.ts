/**
 * The API's one error shape, `{ error, message, details? }`, and the mapping
 * from what the layers below throw: zod validation (400), repository kinds
 * (404 / 409), fastify's own body and rate limits (413 / 429). Anything else
 * is a 500 whose message says nothing about internals; the log has the cause.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { InputError } from '../core/errors.ts';
import { RepositoryError } from '../stores/postgres/db.ts';

export interface ErrorDetail {
  readonly field: string;
  readonly message: string;
}

export interface ErrorBody {
  readonly error: string;
  readonly message: string;
  readonly details?: readonly ErrorDetail[];
}

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: readonly ErrorDetail[],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const notFound = (what: string): ApiError => new ApiError(404, 'not_found', `${what} does not exist`);
export const invalid = (field: string, message: string): ApiError =>
  new ApiError(400, 'invalid_request', `${field}: ${message}`, [{ field, message }]);

function send(reply: FastifyReply, status: number, body: ErrorBody): FastifyReply {
  return reply.code(status).type('application/json').send(body);
}

/** fastify's own client errors (bad JSON, wrong content type, ...) keep their status under our shape. */
const FASTIFY_CODES: Readonly<Record<number, string>> = {
  400: 'invalid_request',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};

export function installErrorHandler(app: FastifyInstance): void {
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) =>
    send(reply, 404, { error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0] ?? ''}` }),
  );

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const where = error.validationContext ?? 'request';
      const details = error.validation.map((v) => ({
        field: `${where}${v.instancePath === '/' ? '' : v.instancePath.replaceAll('/', '.')}`,
        message: v.message ?? 'is invalid',
      }));
      return send(reply, 400, {
        error: 'invalid_request',
        message: details.map((d) => `${d.field}: ${d.message}`).join('; '),
        details,
      });
    }
    if (error instanceof ApiError) {
      return send(reply, error.statusCode, {
        error: error.code,
        message: error.message,
        ...(error.details === undefined ? {} : { details: error.details }),
      });
    }
    if (error instanceof RepositoryError) {
      if (error.kind === 'not_found') return send(reply, 404, { error: 'not_found', message: error.message });
      return send(reply, 409, { error: 'conflict', message: error.message });
    }
    if (error instanceof InputError) {
      // A repository's own validation caught what the route schema let through.
      const problems = (error.details?.problems as string[] | undefined) ?? [error.message];
      return send(reply, 400, {
        error: 'invalid_request',
        message: error.message,
        details: problems.map((p) => {
          const [field = 'body', ...rest] = p.split(': ');
          return { field, message: rest.join(': ') || p };
        }),
      });
    }
    const status = typeof error.statusCode === 'number' ? error.statusCode : 500;
    if (status >= 400 && status < 500) {
      return send(reply, status, { error: FASTIFY_CODES[status] ?? 'bad_request', message: error.message });
    }
    request.log.error({ err: error }, 'request failed');
    return send(reply, 500, { error: 'internal', message: 'internal error; see the server log' });
  });
}
