/**
 * The one declaration of a log event's fields and of the ClickHouse logs
 * table's columns. The validators (src/domain/log-event.ts), the event and
 * stored-log types, the column list and the row encoder
 * (src/stores/logs-table.ts) are all derived from LOG_FIELDS; the table itself
 * is created by the immutable migration sql/clickhouse/001_logs.sql, and
 * test/domain/log-fields.test.ts holds that table and this declaration to the
 * same names and types.
 */

export const LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'] as const;
export type Level = (typeof LEVELS)[number];

/** What a field holds once parsed or stored; each kind has one TS type (ValueOf) and one row encoding. */
type ValueKinds = {
  /** Lower-case UUID text. */
  readonly uuid: string;
  /** Epoch milliseconds; a DateTime64(3) column. */
  readonly time: number;
  readonly level: Level;
  readonly text: string;
  readonly 'nullable number': number | null;
  readonly attributes: Readonly<Record<string, string>>;
  /** An unsigned 64-bit integer in decimal text: a JS number cannot hold every UInt64. */
  readonly uint64: string;
  readonly number: number;
};
export type ValueKind = keyof ValueKinds;

/**
 * How a producer may send a field on raw-logs. The limits are the ones the
 * schema enforces and the fast path checks; both are built from these rules.
 */
export type InputRule =
  | { readonly kind: 'uuid' }
  /** RFC 3339 text up to `maxLength` characters, or epoch milliseconds. */
  | { readonly kind: 'timestamp'; readonly maxLength: number }
  /** Required text matching `pattern`; `patternMessage` is the rejection's wording. */
  | { readonly kind: 'name'; readonly pattern: RegExp; readonly patternMessage: string }
  /** Text up to `maxLength` characters; which levels and aliases it may name is checked after (src/domain/log-event.ts). */
  | { readonly kind: 'level'; readonly maxLength: number }
  /** Required text of at least one character and no limit but the payload's. */
  | { readonly kind: 'nonEmptyText' }
  /** Text up to `maxLength`; absent or null is ''; an event with '' stores `emptyAs` when given. */
  | { readonly kind: 'optionalText'; readonly maxLength: number; readonly emptyAs?: string }
  /** A number in [min, max] (an integer when `integer`), or absent or null. */
  | { readonly kind: 'optionalNumber'; readonly integer: boolean; readonly min: number; readonly max: number }
  /** String-to-string entries, keys and values up to the given lengths; absent or null is {}. */
  | { readonly kind: 'attributes'; readonly maxKeyLength: number; readonly maxValueLength: number };

export interface FieldDeclaration {
  readonly name: string;
  readonly value: ValueKind;
  /** ClickHouse type, as `DESCRIBE TABLE logs` prints it. */
  readonly column: string;
  /**
   * Where the value comes from: a producer's event (`input` says how it may be sent), ingest when it stores
   * the row, or a later pipeline that updates the row (never inserted by ingest).
   */
  readonly source: 'event' | 'ingest' | 'update';
  readonly input?: InputRule;
}

const SERVICE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const optionalText = (maxLength: number, column = 'LowCardinality(String)') =>
  ({ value: 'text', column, source: 'event', input: { kind: 'optionalText', maxLength } }) as const;

/**
 * In table order. Event fields keep their relative order: it is the schema's, which decides the order of
 * a rejection's reasons and which unstorable field is named first.
 */
export const LOG_FIELDS = [
  { name: 'log_id', value: 'uuid', column: 'UUID', source: 'event', input: { kind: 'uuid' } },
  {
    name: 'timestamp',
    value: 'time',
    column: "DateTime64(3, 'UTC')",
    source: 'event',
    input: { kind: 'timestamp', maxLength: 64 },
  },
  {
    name: 'service',
    value: 'text',
    column: 'LowCardinality(String)',
    source: 'event',
    input: {
      kind: 'name',
      pattern: SERVICE_PATTERN,
      patternMessage: 'must be 1-128 letters, digits, ".", "_", ":" or "-"',
    },
  },
  {
    name: 'environment',
    value: 'text',
    column: 'LowCardinality(String)',
    source: 'event',
    input: { kind: 'optionalText', maxLength: 64, emptyAs: 'unknown' },
  },
  {
    name: 'level',
    value: 'level',
    column: 'LowCardinality(String)',
    source: 'event',
    input: { kind: 'level', maxLength: 16 },
  },
  { name: 'message', value: 'text', column: 'String', source: 'event', input: { kind: 'nonEmptyText' } },
  { name: 'template', value: 'text', column: 'String', source: 'ingest' },
  { name: 'error_hash', value: 'uint64', column: 'UInt64', source: 'ingest' },
  { name: 'host', ...optionalText(255) },
  { name: 'region', ...optionalText(64) },
  { name: 'version', ...optionalText(64) },
  { name: 'logger', ...optionalText(255) },
  { name: 'trace_id', ...optionalText(128, 'String') },
  { name: 'span_id', ...optionalText(128, 'String') },
  { name: 'request_id', ...optionalText(128, 'String') },
  { name: 'user_id', ...optionalText(256, 'String') },
  { name: 'session_id', ...optionalText(256, 'String') },
  { name: 'http_method', ...optionalText(16) },
  { name: 'http_path', ...optionalText(2048, 'String') },
  {
    name: 'http_status',
    value: 'nullable number',
    column: 'Nullable(UInt16)',
    source: 'event',
    input: { kind: 'optionalNumber', integer: true, min: 100, max: 599 },
  },
  {
    name: 'duration_ms',
    value: 'nullable number',
    column: 'Nullable(Float64)',
    source: 'event',
    input: { kind: 'optionalNumber', integer: false, min: 0, max: 86_400_000 },
  },
  { name: 'error_type', ...optionalText(255) },
  { name: 'error_code', ...optionalText(128) },
  { name: 'stack_trace', ...optionalText(64 * 1024, 'String') },
  {
    name: 'attributes',
    value: 'attributes',
    column: 'Map(String, String)',
    source: 'event',
    input: { kind: 'attributes', maxKeyLength: 128, maxValueLength: 4096 },
  },
  { name: 'ingested_at', value: 'time', column: "DateTime64(3, 'UTC')", source: 'ingest' },
  { name: 'kafka_topic', value: 'text', column: 'LowCardinality(String)', source: 'ingest' },
  { name: 'kafka_partition', value: 'number', column: 'UInt32', source: 'ingest' },
  { name: 'kafka_offset', value: 'number', column: 'UInt64', source: 'ingest' },
  { name: 'is_vectorized', value: 'number', column: 'UInt8', source: 'update' },
  { name: 'is_anomaly', value: 'number', column: 'UInt8', source: 'update' },
  { name: 'anomaly_score', value: 'number', column: 'Float32', source: 'update' },
] as const satisfies readonly FieldDeclaration[];

type Declared = (typeof LOG_FIELDS)[number];
type FieldsOf<Source extends FieldDeclaration['source']> = Extract<Declared, { readonly source: Source }>;
type ValuesOf<F extends FieldDeclaration> = { readonly [D in F as D['name']]: ValueKinds[D['value']] };

/** A valid event as parsed from raw-logs (`timestamp` in epoch milliseconds). */
export type LogEvent = ValuesOf<FieldsOf<'event'>>;
/** What ingest adds to an event when it stores it. */
export type IngestColumns = ValuesOf<FieldsOf<'ingest'>>;
/** One row ingest inserts into the logs table. */
export type StoredLog = LogEvent & IngestColumns;

export type EventFieldDeclaration = FieldsOf<'event'>;
export const EVENT_FIELDS: readonly EventFieldDeclaration[] = LOG_FIELDS.filter(
  (f): f is EventFieldDeclaration => f.source === 'event',
);
/** The columns ingest writes, in table order; the `update` ones are left to their defaults. */
export const INSERTED_FIELDS: readonly FieldsOf<'event' | 'ingest'>[] = LOG_FIELDS.filter(
  (f): f is FieldsOf<'event' | 'ingest'> => f.source !== 'update',
);

/**
 * A function compiled from the declaration: one property access per field, as hand-written code has.
 * A loop over the declaration reads a different key at each step, which V8 answers through its megamorphic
 * cache: for the row encoder on ingest's path that was about 20% slower than the compiled function, which
 * matches the hand-written one (`npm run bench -- log-event` measures both hot paths). The generated text
 * holds only names checked against FIELD_NAME, numbers and JSON-quoted strings from LOG_FIELDS, never data.
 */
export function compile<T>(parameters: readonly string[], body: string, ...args: readonly unknown[]): T {
  return new Function(...parameters, `'use strict';\n${body}`)(...args) as T;
}

/** The only names compile() is given; anything else in LOG_FIELDS is a mistake caught at load. */
const FIELD_NAME = /^[a-z][a-z_]*$/;
for (const field of LOG_FIELDS)
  if (!FIELD_NAME.test(field.name)) throw new Error(`log field name ${JSON.stringify(field.name)} is not a-z and _`);
