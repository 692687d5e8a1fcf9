/**
 * Query-string pieces shared by the routes: time ranges, page sizes and
 * opaque cursors. Every value is checked here before it reaches a query;
 * the routes add only what is their own.
 */
import { z } from 'zod';
import { LEVELS } from '../domain/log-event.ts';
import { isErrorHash } from '../stores/vector-store.ts';
import { invalid } from './errors.ts';

const DAY_MS = 86_400_000;
/** Longer ranges would scan the whole table for one page; the logs TTL is far shorter anyway. */
const MAX_RANGE_MS = 400 * DAY_MS;

export const isoDateTime = z.iso.datetime({ offset: true }).describe('ISO 8601 date-time, e.g. 2026-03-01T10:00:00Z');
/** Names of services, environments, rules: free text compared for equality, bounded in size. */
export const label = z.string().min(1).max(200);
export const level = z.enum(LEVELS);
export const errorHash = z.string().refine(isErrorHash, 'must be a UInt64 in decimal without leading zeros');
export const limit = (fallback: number, max = 1000) => z.coerce.number().int().min(1).max(max).default(fallback);
export const cursor = z.string().min(1).max(500).describe('nextCursor of the previous page');
/**
 * Days logs can have: ClickHouse's DateTime columns (the rollups, TTLs) start
 * at the Unix epoch, and PostgreSQL refuses year 0. A date outside is refused
 * here with the reason, instead of failing later in a store's own words.
 * Impossible days (2026-02-30) are refused by the format itself.
 */
export const FIRST_DATE = '1970-01-01';
export const LAST_DATE = '2099-12-31';
export const calendarDate = z.iso
  .date()
  .refine(
    (date) => date >= FIRST_DATE && date <= LAST_DATE,
    `must be from ${FIRST_DATE} to ${LAST_DATE}: no log can fall outside these days`,
  )
  .describe('YYYY-MM-DD');

/** Searched as a plain substring: never a pattern, never SQL. */
export const text = z.string().min(1).max(500);

/**
 * Attribute keys in `attr.<key>=<value>`: what attribute keys look like in
 * practice (`pod`, `k8s.pod.name`, `app.kubernetes.io/name`), at most the
 * 128 characters a stored key may have (src/domain/log-fields.ts). The key is
 * a query parameter like the value; the pattern is for a clear 400 on a typo.
 */
export const ATTRIBUTE_KEY = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$/;
export const ATTRIBUTE_PREFIX = 'attr.';
export const MAX_ATTRIBUTE_FILTERS = 10;

/** The filters the logs search and the live tail share, apart from time. */
export const logMatchShape = {
  service: label.optional(),
  environment: label.optional(),
  level: level.optional(),
  q: text.optional().describe('case-insensitive substring of the message'),
  errorHash: errorHash.optional(),
  traceId: z.string().min(1).max(256).optional().describe('exact trace id'),
};

const ATTRIBUTE_HELP =
  'Also `attr.<key>=<value>` (up to 10): logs whose attribute <key> equals <value> exactly. ' +
  'Keys: 1-128 characters, letters, digits and `_ . : / -`, not starting with `. : / -`.';

/**
 * A query-string object with `shape`'s parameters plus `attr.<key>` ones;
 * any other parameter is refused, as `.strict()` would.
 */
export function withAttributeFilters<S extends z.core.$ZodLooseShape>(shape: S) {
  return z
    .object(shape)
    .catchall(z.string().min(1).max(4096))
    .superRefine((query, ctx) => {
      let count = 0;
      for (const key of Object.keys(query)) {
        if (Object.hasOwn(shape, key)) continue;
        if (!key.startsWith(ATTRIBUTE_PREFIX)) {
          ctx.addIssue({ code: 'custom', path: [], message: `unknown parameter "${key.slice(0, 100)}"` });
          continue;
        }
        count += 1;
        if (!ATTRIBUTE_KEY.test(key.slice(ATTRIBUTE_PREFIX.length)))
          ctx.addIssue({
            code: 'custom',
            path: [key.slice(0, 140)],
            message:
              'an attribute key is 1-128 characters: letters, digits and _ . : / -, starting with a letter, digit or _',
          });
      }
      if (count > MAX_ATTRIBUTE_FILTERS)
        ctx.addIssue({ code: 'custom', path: [], message: `at most ${MAX_ATTRIBUTE_FILTERS} attr.<key> filters` });
    })
    .describe(ATTRIBUTE_HELP);
}

/** The `attr.<key>=<value>` pairs of a query `withAttributeFilters` accepted, in a stable order. */
export function attributeFilters(query: Readonly<Record<string, unknown>>): Array<[string, string]> {
  return Object.entries(query)
    .filter((e): e is [string, string] => e[0].startsWith(ATTRIBUTE_PREFIX) && typeof e[1] === 'string')
    .map(([key, value]): [string, string] => [key.slice(ATTRIBUTE_PREFIX.length), value])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export const timeRangeShape = {
  from: isoDateTime.optional().describe('start, inclusive (default: 24 hours before `to`)'),
  to: isoDateTime.optional().describe('end, exclusive (default: now)'),
};

export interface TimeRange {
  readonly from: number;
  readonly to: number;
}

export function resolveRange(
  query: { readonly from?: string | undefined; readonly to?: string | undefined },
  now = Date.now(),
): TimeRange {
  const to = query.to === undefined ? now : Date.parse(query.to);
  const from = query.from === undefined ? to - DAY_MS : Date.parse(query.from);
  if (!(from < to)) throw invalid('query.from', 'must be before to');
  if (to - from > MAX_RANGE_MS) throw invalid('query.from', 'the range may span at most 400 days');
  return { from, to };
}

/** Cursors are opaque to clients: base64url JSON, validated again on the way in. */
export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

export function decodeCursor<S extends z.ZodType>(schema: S, text: string | undefined): z.output<S> | undefined {
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw invalid('query.cursor', 'is not a cursor returned by this endpoint');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw invalid('query.cursor', 'is not a cursor returned by this endpoint');
  return parsed.data;
}

export function page<T>(
  rows: readonly T[],
  size: number,
  cursorOf: (last: T) => unknown,
): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, size);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > size && last !== undefined ? encodeCursor(cursorOf(last)) : null };
}

/** Bucket width for a series: the one asked for, else a whole number of minutes giving at most 300 points. */
export function chooseStep(range: TimeRange, asked: number | undefined, maxPoints: number): number {
  const seconds = (range.to - range.from) / 1000;
  if (asked !== undefined) {
    if (seconds / asked > maxPoints)
      throw invalid('query.step', `gives more than ${maxPoints} points for this range; use a larger step`);
    return asked;
  }
  return Math.max(60, Math.ceil(seconds / 300 / 60) * 60);
}

/**
 * Free JSON (config values, dashboard filters). It is recursive, so the OpenAPI
 * document refers to it by name: registered with an id, it is defined under
 * components.schemas instead of leaving a reference to nothing.
 */
export const jsonValue = z.json();
z.globalRegistry.add(jsonValue, { id: 'JsonValue' });
export const jsonObject = z.record(z.string(), jsonValue);

/** Routes without query parameters still refuse unknown ones: a typo should not pass silently. */
export const noQuery = z.object({}).strict();

export const idParam = z.object({ id: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER) });
