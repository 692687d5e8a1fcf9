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
import {
  compile,
  EVENT_FIELDS,
  LEVELS,
  type EventFieldDeclaration,
  type InputRule,
  type Level,
  type LogEvent,
} from './log-fields.ts';

export { LEVELS, MAX_DATE_MS, type Level, type LogEvent };

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

/** The schema of one event field, from its declared rule (src/domain/log-fields.ts). */
function schemaOf(rule: InputRule): z.ZodType {
  switch (rule.kind) {
    case 'uuid':
      return z.uuid({ message: 'is not a UUID' }).optional();
    case 'timestamp':
      return z.union([z.string().max(rule.maxLength), z.number()]);
    case 'name':
      return z.string().regex(rule.pattern, { message: rule.patternMessage });
    case 'level':
      return z.string().max(rule.maxLength);
    case 'nonEmptyText':
      return z.string().min(1, { message: 'is empty' });
    case 'optionalText':
      return z
        .union([text(rule.maxLength), z.null()])
        .optional()
        .transform((v) => v ?? '');
    case 'optionalNumber':
      return z.union([(rule.integer ? z.int() : z.number()).min(rule.min).max(rule.max), z.null()]).optional();
    case 'attributes':
      return z
        .union([z.record(z.string().max(rule.maxKeyLength), z.string().max(rule.maxValueLength)), z.null()])
        .optional();
  }
}

/** What each rule lets through validation, before the event is built. */
type ValidatedKinds = {
  readonly uuid: string | undefined;
  readonly timestamp: string | number;
  readonly name: string;
  readonly level: string;
  readonly nonEmptyText: string;
  readonly optionalText: string;
  readonly optionalNumber: number | null | undefined;
  readonly attributes: Record<string, string> | null | undefined;
};

/** The validators' result: each event field as its rule lets it through. */
export type ValidatedFields = {
  readonly [F in EventFieldDeclaration as F['name']]: ValidatedKinds[F['input']['kind']];
};

const schema = z
  .object(Object.fromEntries(EVENT_FIELDS.map((field) => [field.name, schemaOf(field.input)])))
  .strip() as unknown as z.ZodType<ValidatedFields>;

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

const UUID_PATTERN = z.regexes.uuid();

/** A copy of plainly valid attributes, as the schema makes one; undefined leaves "__proto__" and other oddities to the schema. */
function copyAttributes(
  attributes: object,
  maxKeyLength: number,
  maxValueLength: number,
): Record<string, string> | undefined {
  if (Array.isArray(attributes)) return undefined;
  const copy: Record<string, string> = {};
  for (const key in attributes) {
    if (!Object.hasOwn(attributes, key)) return undefined;
    const value = (attributes as Record<string, unknown>)[key];
    if (key.length > maxKeyLength || key === '__proto__' || typeof value !== 'string' || value.length > maxValueLength)
      return undefined;
    copy[key] = value;
  }
  return copy;
}

/** The fast path's check of one field, held in `v`: it returns undefined (unsure) unless the value is plainly valid. */
function fastCheckOf(rule: InputRule, v: string, read: string, patterns: RegExp[]): string {
  const pattern = (regex: RegExp) => `patterns[${patterns.push(regex) - 1}]`;
  switch (rule.kind) {
    case 'uuid':
      return `const ${v} = ${read};
  if (${v} !== undefined && (typeof ${v} !== 'string' || !${pattern(UUID_PATTERN)}.test(${v}))) return undefined;`;
    case 'timestamp':
      return `const ${v} = ${read};
  if (typeof ${v} === 'string') {
    if (${v}.length > ${rule.maxLength}) return undefined;
  } else if (typeof ${v} !== 'number' || !Number.isFinite(${v})) return undefined;`;
    case 'name':
      return `const ${v} = ${read};
  if (typeof ${v} !== 'string' || !${pattern(rule.pattern)}.test(${v})) return undefined;`;
    case 'level':
      return `const ${v} = ${read};
  if (typeof ${v} !== 'string' || ${v}.length > ${rule.maxLength}) return undefined;`;
    case 'nonEmptyText':
      return `const ${v} = ${read};
  if (typeof ${v} !== 'string' || ${v}.length === 0) return undefined;`;
    case 'optionalText':
      return `let ${v} = ${read};
  if (${v} === undefined || ${v} === null) ${v} = '';
  else if (typeof ${v} !== 'string' || ${v}.length > ${rule.maxLength}) return undefined;`;
    case 'optionalNumber': {
      const invalid = rule.integer
        ? `!Number.isSafeInteger(${v}) || ${v} < ${rule.min} || ${v} > ${rule.max}`
        : `typeof ${v} !== 'number' || !(${v} >= ${rule.min} && ${v} <= ${rule.max})`;
      return `const ${v} = ${read};
  if (${v} !== undefined && ${v} !== null && (${invalid})) return undefined;`;
    }
    case 'attributes':
      return `let ${v} = ${read};
  if (${v} !== undefined && ${v} !== null) {
    if (typeof ${v} !== 'object') return undefined;
    ${v} = copyAttributes(${v}, ${rule.maxKeyLength}, ${rule.maxValueLength});
    if (${v} === undefined) return undefined;
  }`;
  }
}

function compileFastValidate(): (json: Readonly<Record<string, unknown>>) => ValidatedFields | undefined {
  const patterns: RegExp[] = [];
  const checks = EVENT_FIELDS.map((field, i) => fastCheckOf(field.input, `v${i}`, `json.${field.name}`, patterns));
  const fields = EVENT_FIELDS.map((field, i) => `${field.name}: v${i}`);
  const body = `return function fastValidate(json) {
  ${checks.join('\n  ')}
  return { ${fields.join(', ')} };
};`;
  return compile(['patterns', 'copyAttributes'], body, patterns, copyAttributes);
}

/**
 * The schema's result for the common, valid event, without zod's per-field
 * machinery (most of ingest's CPU at tens of thousands of events a second).
 * Returns undefined whenever anything is not plainly valid, so the schema
 * stays the only judge of what is rejected and the only author of reasons;
 * a property test holds the two to the same output. Compiled from the same
 * declared rules as the schema (see compile in src/domain/log-fields.ts).
 */
export const fastValidate = compileFastValidate();

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

/** Rules whose event value check() computes (id, time, level, attributes) rather than copies from validation. */
type ComputedRule = 'uuid' | 'timestamp' | 'level' | 'attributes';
type ComputedFields = {
  readonly [F in EventFieldDeclaration as F['input']['kind'] extends ComputedRule
    ? F['name']
    : never]: LogEvent[F['name']];
};

/** How a field's event value is written from the validated fields `e` and the computed ones `c`. */
function eventValueOf(field: EventFieldDeclaration): string {
  const rule: InputRule = field.input;
  switch (rule.kind) {
    case 'uuid':
    case 'timestamp':
    case 'level':
    case 'attributes':
      return `c.${field.name}`;
    case 'optionalText':
      return rule.emptyAs === undefined
        ? `e.${field.name}`
        : `e.${field.name} === '' ? ${JSON.stringify(rule.emptyAs)} : e.${field.name}`;
    case 'optionalNumber':
      return `e.${field.name} ?? null`;
    case 'name':
    case 'nonEmptyText':
      return `e.${field.name}`;
  }
}

/** The event from its validated fields: one object literal of one shape, every field in declared order. */
const buildEvent = compile<(e: ValidatedFields, c: ComputedFields) => LogEvent>(
  [],
  `return function buildEvent(e, c) {
  return { ${EVENT_FIELDS.map((field) => `${field.name}: ${eventValueOf(field)}`).join(', ')} };
};`,
);

/** The environment an event that names none is counted and stored under. */
const ENVIRONMENT_WHEN_EMPTY = (() => {
  const environment = EVENT_FIELDS.find((field) => field.name === 'environment');
  return environment?.input.kind === 'optionalText' ? (environment.input.emptyAs ?? '') : '';
})();

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
  return buildEvent(e, { log_id: e.log_id?.toLowerCase() ?? deriveLogId(origin), timestamp, level, attributes });
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
  return {
    service: e.service,
    environment: e.environment === '' ? ENVIRONMENT_WHEN_EMPTY : e.environment,
    level,
    timestamp,
  };
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') return `expected ${issue.expected}`;
  if (issue.code === 'invalid_union') return 'has the wrong type or is out of range';
  return issue.message;
}
