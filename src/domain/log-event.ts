/**
 * The log event on raw-logs: parsed and validated once, at the
 * edge, so everything downstream handles well-typed values. Every rejection
 * names the field and the problem; it becomes the dead letter's reason.
 */
import { isUtf8 } from 'node:buffer';
import { v5 as uuidv5 } from 'uuid';
import { z } from 'zod';
import { InputError } from '../core/errors.ts';
import type { Origin } from '../core/envelope.ts';
import { mayHoldUnstorableEscapes, textProblem, truncateText } from '../core/text.ts';
import { MAX_DATE_MS, parseTimestamp } from '../core/timestamp.ts';

export { MAX_DATE_MS };

export const LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'] as const;
export type Level = (typeof LEVELS)[number];

/** Levels that are worth vectorizing (the seed's vectorization-queue). */
export const PROBLEM_LEVELS: ReadonlySet<Level> = new Set(['WARN', 'ERROR', 'FATAL']);

// A Map, not an object literal: a level named "constructor" must not find Object's.
const LEVEL_ALIASES: ReadonlyMap<string, Level> = new Map([
  ['DEBUG', 'DEBUG'],
  ['TRACE', 'DEBUG'],
  ['INFO', 'INFO'],
  ['WARN', 'WARN'],
  ['WARNING', 'WARN'],
  ['ERROR', 'ERROR'],
  ['ERR', 'ERROR'],
  ['FATAL', 'FATAL'],
  ['CRITICAL', 'FATAL'],
]);

export interface LogEvent {
  readonly log_id: string;
  /** Epoch milliseconds. */
  readonly timestamp: number;
  readonly service: string;
  readonly environment: string;
  readonly level: Level;
  readonly message: string;
  readonly host: string;
  readonly region: string;
  readonly version: string;
  readonly logger: string;
  readonly trace_id: string;
  readonly span_id: string;
  readonly request_id: string;
  readonly user_id: string;
  readonly session_id: string;
  readonly http_method: string;
  readonly http_path: string;
  readonly http_status: number | null;
  readonly duration_ms: number | null;
  readonly error_type: string;
  readonly error_code: string;
  readonly stack_trace: string;
  readonly attributes: Readonly<Record<string, string>>;
}

export interface ParseLimits {
  /** Bigger payloads are rejected before parsing (a 10 MB message must not stall the stream). */
  readonly maxMessageBytes: number;
  /** Events older than this (relative to ingest time) are rejected: they would fall outside retention. */
  readonly maxAgeMs: number;
  /** Events further ahead than this are rejected: a wrong clock must not pollute future partitions. */
  readonly maxFutureMs: number;
  readonly maxAttributes: number;
}

export const DEFAULT_PARSE_LIMITS: ParseLimits = {
  maxMessageBytes: 256 * 1024,
  maxAgeMs: 30 * 24 * 3600_000,
  maxFutureMs: 24 * 3600_000,
  maxAttributes: 64,
};

/** Namespace of derived log ids, fixed forever: the same Kafka record always gets the same id. */
const LOG_ID_NAMESPACE = '7d0c4ad2-5c1e-4f4b-9d43-7b1c2f0e9a11';

export function deriveLogId(origin: Origin): string {
  return uuidv5(`${origin.topic}/${origin.partition}/${origin.offset}`, LOG_ID_NAMESPACE);
}

const text = (max: number) => z.string().max(max, { message: `longer than ${max} characters` });
const optionalText = (max: number) =>
  z
    .union([text(max), z.null()])
    .optional()
    .transform((v) => v ?? '');

const schema = z
  .object({
    log_id: z.uuid({ message: 'is not a UUID' }).optional(),
    timestamp: z.union([z.string().max(64), z.number()]),
    service: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, { message: 'must be 1-128 letters, digits, ".", "_", ":" or "-"' }),
    environment: optionalText(64),
    level: z.string().max(16),
    message: z.string().min(1, { message: 'is empty' }),
    host: optionalText(255),
    region: optionalText(64),
    version: optionalText(64),
    logger: optionalText(255),
    trace_id: optionalText(128),
    span_id: optionalText(128),
    request_id: optionalText(128),
    user_id: optionalText(256),
    session_id: optionalText(256),
    http_method: optionalText(16),
    http_path: optionalText(2048),
    http_status: z.union([z.int().min(100).max(599), z.null()]).optional(),
    duration_ms: z.union([z.number().min(0).max(86_400_000), z.null()]).optional(),
    error_type: optionalText(255),
    error_code: optionalText(128),
    stack_trace: optionalText(64 * 1024),
    attributes: z.union([z.record(z.string().max(128), z.string().max(4096)), z.null()]).optional(),
  })
  .strip();

export type ValidatedFields = z.output<typeof schema>;

/**
 * Epoch milliseconds of an event's timestamp; a string is RFC 3339, UTC when it names no zone (src/core/timestamp.ts).
 */
function eventTime(value: string | number): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && Math.abs(value) <= MAX_DATE_MS) return value;
    throw new InputError('invalid log event: timestamp: epoch milliseconds outside the range a date can hold');
  }
  const parsed = parseTimestamp(value);
  if (!parsed.ok) throw new InputError(`invalid log event: timestamp: ${parsed.reason}`);
  return parsed.ms;
}

/** Levels are ASCII words: toUpperCase alone would read the dotless "ınfo" as INFO. */
function levelOf(text: string): Level | undefined {
  const exact = LEVEL_ALIASES.get(text);
  if (exact !== undefined) return exact;
  return /^[A-Za-z]+$/.test(text) ? LEVEL_ALIASES.get(text.toUpperCase()) : undefined;
}

const SERVICE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const UUID_PATTERN = z.regexes.uuid();
/** Marks a field the fast path is unsure of: the schema then decides, and words the rejection. */
const UNSURE = Symbol('unsure');

function optional(value: unknown, max: number): string | typeof UNSURE {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' && value.length <= max ? value : UNSURE;
}

/**
 * The schema's result for the common, valid event, without zod's per-field
 * machinery (most of ingest's CPU at tens of thousands of events a second).
 * Returns undefined whenever anything is not plainly valid, so the schema
 * stays the only judge of what is rejected and the only author of reasons;
 * a property test holds the two to the same output.
 */
export function fastValidate(json: Readonly<Record<string, unknown>>): ValidatedFields | undefined {
  const { log_id, timestamp, service, level, message, http_status, duration_ms, attributes } = json;
  if (log_id !== undefined && (typeof log_id !== 'string' || !UUID_PATTERN.test(log_id))) return undefined;
  if (typeof timestamp === 'string') {
    if (timestamp.length > 64) return undefined;
  } else if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) return undefined;
  if (typeof service !== 'string' || !SERVICE_PATTERN.test(service)) return undefined;
  if (typeof level !== 'string' || level.length > 16) return undefined;
  if (typeof message !== 'string' || message.length === 0) return undefined;
  if (
    http_status !== undefined &&
    http_status !== null &&
    (!Number.isSafeInteger(http_status) || (http_status as number) < 100 || (http_status as number) > 599)
  )
    return undefined;
  if (
    duration_ms !== undefined &&
    duration_ms !== null &&
    (typeof duration_ms !== 'number' || !(duration_ms >= 0 && duration_ms <= 86_400_000))
  )
    return undefined;
  let attrs: Record<string, string> | null | undefined;
  if (attributes === undefined || attributes === null) {
    attrs = attributes;
  } else {
    if (typeof attributes !== 'object' || Array.isArray(attributes)) return undefined;
    // A copy, as the schema makes one; "__proto__" and other oddities are left to the schema.
    attrs = {};
    for (const key in attributes) {
      if (!Object.hasOwn(attributes, key)) return undefined;
      const value = (attributes as Record<string, unknown>)[key];
      if (key.length > 128 || key === '__proto__' || typeof value !== 'string' || value.length > 4096) return undefined;
      attrs[key] = value;
    }
  }
  const environment = optional(json.environment, 64);
  const host = optional(json.host, 255);
  const region = optional(json.region, 64);
  const version = optional(json.version, 64);
  const logger = optional(json.logger, 255);
  const trace_id = optional(json.trace_id, 128);
  const span_id = optional(json.span_id, 128);
  const request_id = optional(json.request_id, 128);
  const user_id = optional(json.user_id, 256);
  const session_id = optional(json.session_id, 256);
  const http_method = optional(json.http_method, 16);
  const http_path = optional(json.http_path, 2048);
  const error_type = optional(json.error_type, 255);
  const error_code = optional(json.error_code, 128);
  const stack_trace = optional(json.stack_trace, 64 * 1024);
  if (
    environment === UNSURE ||
    host === UNSURE ||
    region === UNSURE ||
    version === UNSURE ||
    logger === UNSURE ||
    trace_id === UNSURE ||
    span_id === UNSURE ||
    request_id === UNSURE ||
    user_id === UNSURE ||
    session_id === UNSURE ||
    http_method === UNSURE ||
    http_path === UNSURE ||
    error_type === UNSURE ||
    error_code === UNSURE ||
    stack_trace === UNSURE
  ) {
    return undefined;
  }
  return {
    log_id,
    timestamp,
    service,
    environment,
    level,
    message,
    host,
    region,
    version,
    logger,
    trace_id,
    span_id,
    request_id,
    user_id,
    session_id,
    http_method,
    http_path,
    http_status: http_status as number | null | undefined,
    duration_ms: duration_ms as number | null | undefined,
    error_type,
    error_code,
    stack_trace,
    attributes: attrs,
  };
}

/** The schema's verdict: the fields, or an InputError naming up to five problems. */
export function schemaValidate(json: unknown): ValidatedFields {
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const reasons = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || 'message'}: ${describe(i)}`);
    throw new InputError(`invalid log event: ${reasons.join('; ')}`);
  }
  return parsed.data;
}

interface Checked {
  readonly e: ValidatedFields;
  readonly level: Level;
  readonly timestamp: number;
  readonly attributes: Readonly<Record<string, string>>;
}

function check(payload: Buffer, now: number, limits: ParseLimits): Checked {
  if (payload.length > limits.maxMessageBytes) {
    throw new InputError(`message is ${payload.length} bytes, over the ${limits.maxMessageBytes}-byte limit`);
  }
  // A Kafka tombstone (null value) reaches here as an empty payload.
  if (payload.length === 0)
    throw new InputError('message is empty (a Kafka tombstone or an empty value): not a log event');
  // Checked on the bytes: a U+FFFD the producer meant to send is text like any other.
  if (!isUtf8(payload)) throw new InputError('message is not valid UTF-8');
  const textPayload = payload.toString('utf8');
  if (textPayload.includes('\u0000')) throw new InputError('message contains NUL characters');
  let json: unknown;
  try {
    json = JSON.parse(textPayload);
  } catch (error) {
    throw new InputError(`message is not valid JSON: ${(error as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new InputError('message is not a JSON object');

  const e = fastValidate(json as Record<string, unknown>) ?? schemaValidate(json);
  // Escaped NUL and lone surrogates survive JSON.parse; ClickHouse refuses lone surrogates and PostgreSQL both: refused
  // here.
  if (mayHoldUnstorableEscapes(textPayload)) {
    const problem = unstorableField(e);
    if (problem !== undefined) throw new InputError(`invalid log event: ${problem}`);
  }
  const level = levelOf(e.level);
  if (level === undefined)
    throw new InputError(
      `invalid log event: level: unknown level ${JSON.stringify(truncateText(e.level, 16))} (expected one of ${LEVELS.join(', ')})`,
    );
  const timestamp = eventTime(e.timestamp);
  if (timestamp < now - limits.maxAgeMs)
    throw new InputError(
      `invalid log event: timestamp: ${new Date(timestamp).toISOString()} is older than the retention window`,
    );
  if (timestamp > now + limits.maxFutureMs)
    throw new InputError(`invalid log event: timestamp: ${new Date(timestamp).toISOString()} is too far in the future`);
  const attributes = e.attributes ?? {};
  let entries = 0;
  for (const key in attributes) if (Object.hasOwn(attributes, key)) entries += 1;
  if (entries > limits.maxAttributes) {
    throw new InputError(`invalid log event: attributes: more than ${limits.maxAttributes} entries`);
  }
  return { e, level, timestamp, attributes };
}

/**
 * Parses one raw-logs payload. Throws InputError with a reason naming the
 * problem (which field, what is wrong) for anything that is not a valid event.
 */
export function parseLogEvent(
  payload: Buffer,
  origin: Origin,
  now: number,
  limits: ParseLimits = DEFAULT_PARSE_LIMITS,
): LogEvent {
  const { e, level, timestamp, attributes } = check(payload, now, limits);
  return {
    log_id: e.log_id?.toLowerCase() ?? deriveLogId(origin),
    timestamp,
    service: e.service,
    environment: e.environment === '' ? 'unknown' : e.environment,
    level,
    message: e.message,
    host: e.host,
    region: e.region,
    version: e.version,
    logger: e.logger,
    trace_id: e.trace_id,
    span_id: e.span_id,
    request_id: e.request_id,
    user_id: e.user_id,
    session_id: e.session_id,
    http_method: e.http_method,
    http_path: e.http_path,
    http_status: e.http_status ?? null,
    duration_ms: e.duration_ms ?? null,
    error_type: e.error_type,
    error_code: e.error_code,
    stack_trace: e.stack_trace,
    attributes,
  };
}

/** The first field holding text no store accepts, with the problem: "message: contains NUL characters". */
function unstorableField(e: ValidatedFields): string | undefined {
  for (const [key, value] of Object.entries(e)) {
    const problem = typeof value === 'string' ? textProblem(value) : undefined;
    if (problem !== undefined) return `${key}: ${problem}`;
  }
  for (const [key, value] of Object.entries(e.attributes ?? {})) {
    const problem = textProblem(key) ?? textProblem(value);
    // The key is shown as JSON would escape it, so the reason itself stays storable.
    if (problem !== undefined) return `attributes.${JSON.stringify(key).slice(1, -1)}: ${problem}`;
  }
  return undefined;
}

/** What the detector counts by; present exactly when parseLogEvent would accept the payload. */
export interface LogEventKey {
  readonly service: string;
  readonly environment: string;
  readonly level: Level;
  readonly timestamp: number;
}

/** parseLogEvent's verdict with only the counting fields: no log id is derived and no event is built. */
export function parseLogEventKey(
  payload: Buffer,
  now: number,
  limits: ParseLimits = DEFAULT_PARSE_LIMITS,
): LogEventKey {
  const { e, level, timestamp } = check(payload, now, limits);
  return { service: e.service, environment: e.environment === '' ? 'unknown' : e.environment, level, timestamp };
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') return `expected ${issue.expected}`;
  if (issue.code === 'invalid_union') return 'has the wrong type or is out of range';
  return issue.message;
}
