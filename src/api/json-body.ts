/**
 * The application/json body parser: nesting depth is checked on the raw text
 * before anything is built from it, then fastify's own parser (secure-json-parse,
 * refusing `__proto__` and `constructor.prototype`) does the parsing.
 *
 * Without the depth check a body within the size limit could still nest
 * hundreds of thousands of levels: JSON.parse holds the event loop for
 * hundreds of milliseconds on it, and the recursive schema validation that
 * follows overflows the stack (a 500). The scan stops at the first bracket
 * past the limit, so refusing such a body costs microseconds.
 */
import type { FastifyInstance } from 'fastify';
import { invalid } from './errors.ts';

/**
 * No request of the API needs more: the deepest legitimate bodies are JSON
 * settings and dashboard filters a few levels deep. Documented in SECURITY.md.
 */
export const MAX_JSON_DEPTH = 64;

const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * True when `text` opens more than `max` objects or arrays inside one another.
 * Brackets inside strings do not count. Malformed text is not judged here:
 * the parser refuses it afterwards.
 */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > max) return true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
    }
  }
  return false;
}

/** Replaces fastify's application/json parser; the body limit (413) stays the server's. */
export function installJsonBodyParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
      done(invalid('body', `JSON is nested deeper than ${MAX_JSON_DEPTH} levels`), undefined);
      return;
    }
    parse(request, text, done);
  });
}
