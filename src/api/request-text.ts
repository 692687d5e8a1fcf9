/**
 * One rule for every string a request carries (query, path parameters, body
 * values and object keys, however deep): no NUL and no lone UTF-16 surrogate.
 * PostgreSQL refuses both (NUL in text, `\ud800` in jsonb) and ClickHouse
 * refuses lone surrogates, so letting them through to a repository turned a
 * client's mistake into a 500. Checked in a hook before schema validation, so
 * a route cannot forget it and a schema that takes free JSON is covered too.
 */
import type { FastifyInstance } from 'fastify';
import { textProblem } from '../core/text.ts';
import { ApiError, type ErrorDetail } from './errors.ts';

/** Enough to show what is wrong; a body full of NULs need not be listed whole. */
const MAX_DETAILS = 20;

/** Every string in `value` that breaks the rule, by field path. Bodies are at most MAX_JSON_DEPTH deep. */
export function findTextProblems(value: unknown, field: string, out: ErrorDetail[] = []): ErrorDetail[] {
  if (out.length >= MAX_DETAILS) return out;
  if (typeof value === 'string') {
    const problem = textProblem(value);
    if (problem !== undefined) out.push({ field, message: problem });
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => findTextProblems(item, `${field}.${i}`, out));
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const problem = textProblem(key);
      if (problem !== undefined) {
        out.push({ field, message: `has a key that ${problem}` });
        continue;
      }
      findTextProblems(item, `${field}.${key}`, out);
    }
  }
  return out;
}

export function installRequestTextCheck(app: FastifyInstance): void {
  // The field names follow the schema validation errors: querystring.x, params.x, body.x.
  app.addHook('preValidation', async (request) => {
    const details = findTextProblems(request.query, 'querystring');
    findTextProblems(request.params, 'params', details);
    findTextProblems(request.body, 'body', details);
    if (details.length > 0) {
      throw new ApiError(400, 'invalid_request', details.map((d) => `${d.field}: ${d.message}`).join('; '), details);
    }
  });
}
