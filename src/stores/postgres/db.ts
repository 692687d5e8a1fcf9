/**
 * What every PostgreSQL repository shares: one way to run a query (errors
 * classified from a table), transactions, the repository error kinds, input
 * validation and the conversions between PostgreSQL's wire types and ours.
 * Repositories run on the server and on PGlite alike: only `pg` is used.
 */
import pg from 'pg';
import { z } from 'zod';
import { classify, ErrorCodes, InputError, LogflowError, type ClassificationRule } from '../../core/errors.ts';

/** A pool or a client checked out of it (inside a transaction): repositories run on either. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };
export type JsonObject = { readonly [key: string]: JsonValue };

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Why a repository refused: the API maps these to 404 / 409 / 409 without parsing messages. */
export type RepositoryErrorKind = 'not_found' | 'conflict' | 'invalid_state';

export class RepositoryError extends LogflowError {
  readonly kind: RepositoryErrorKind;
  constructor(
    kind: RepositoryErrorKind,
    message: string,
    details?: Readonly<Record<string, unknown>>,
    cause?: unknown,
  ) {
    super(kind === 'conflict' ? ErrorCodes.SINK_REJECTED : ErrorCodes.INPUT_INVALID, message, {
      retriable: false,
      stage: 'sink',
      ...(details === undefined ? {} : { details }),
      ...(cause === undefined ? {} : { cause }),
    });
    this.name = 'RepositoryError';
    this.kind = kind;
  }
}

const NODE_CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
]);

/** SQLSTATEs that describe the server or the moment, not the statement: the same statement may succeed later. */
const TRANSIENT_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
]);

const sqlState = (error: { code?: unknown }): string => (typeof error.code === 'string' ? error.code : '');

export const postgresErrorRules: readonly ClassificationRule[] = [
  { match: (e) => NODE_CONNECTION_ERRORS.has(sqlState(e)), code: ErrorCodes.SINK_UNAVAILABLE, retriable: true },
  { match: (e) => sqlState(e).startsWith('08'), code: ErrorCodes.SINK_UNAVAILABLE, retriable: true },
  { match: (e) => TRANSIENT_SQLSTATES.has(sqlState(e)), code: ErrorCodes.SINK_UNAVAILABLE, retriable: true },
  { match: (e) => sqlState(e) === '57014', code: ErrorCodes.TIMEOUT, retriable: true },
  // pg reports a dropped or never-established connection without a code.
  {
    match: (e) =>
      /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended/i.test(
        e.message,
      ),
    code: ErrorCodes.SINK_UNAVAILABLE,
    retriable: true,
  },
  {
    match: (e) => sqlState(e).startsWith('23') || sqlState(e).startsWith('22'),
    code: ErrorCodes.SINK_REJECTED,
    retriable: false,
  },
];

interface ServerError {
  readonly code: string;
  readonly constraint?: string | undefined;
}

/**
 * An error the server (or PGlite) sent. Checked by shape, not by class: PGlite
 * raises the DatabaseError of its own bundled copy of the protocol code, not pg's.
 */
function asServerError(error: unknown): ServerError | undefined {
  if (!(error instanceof Error)) return undefined;
  const { code, severity } = error as Error & { code?: unknown; severity?: unknown };
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof severity === 'string'
    ? (error as Error & ServerError)
    : undefined;
}

export function classifyPostgresError(error: unknown): LogflowError {
  if (error instanceof LogflowError) return error;
  const classified = classify(error, postgresErrorRules, 'sink');
  const server = asServerError(error);
  if (server === undefined) return classified;
  return new LogflowError(classified.code, classified.message, {
    retriable: classified.retriable,
    stage: 'sink',
    cause: error,
    details: { sqlState: server.code, ...(server.constraint === undefined ? {} : { constraint: server.constraint }) },
  });
}

/** True when `error` (classified or not) is a unique violation, of `constraint` when given. */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const server = asServerError(error instanceof LogflowError ? error.cause : error);
  if (server === undefined || server.code !== '23505') return false;
  return constraint === undefined || server.constraint === constraint;
}

/**
 * One statement on `db`. On a pool it checks a client out itself instead of
 * using `pool.query`, which destroys the client after ANY failed statement:
 * harmless on a server (a new connection is opened), but PGlite's pg adapter
 * shares one connection object between clients, so the next client finds it
 * ended ("Connection terminated unexpectedly"). An error the server sent
 * leaves the connection usable; only other failures retire the client (and
 * pg-pool retires clients whose connection ended by itself).
 */
async function runStatement<R extends pg.QueryResultRow>(
  db: Queryable,
  text: string,
  values: unknown[],
): Promise<pg.QueryResult<R>> {
  if (!(db instanceof pg.Pool)) return db.query<R>(text, values);
  const client = await db.connect();
  let broken: Error | undefined;
  try {
    return await client.query<R>(text, values);
  } catch (error) {
    if (asServerError(error) === undefined) broken = error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    client.release(broken);
  }
}

/** Runs one parameterized statement; every failure leaves as a classified LogflowError. */
export async function queryRows<R extends pg.QueryResultRow>(
  db: Queryable,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  try {
    return (await runStatement<R>(db, text, values)).rows;
  } catch (error) {
    throw classifyPostgresError(error);
  }
}

/** Like queryRows, for statements whose row count is the answer. */
export async function execute(db: Queryable, text: string, values: unknown[] = []): Promise<number> {
  try {
    return (await runStatement(db, text, values)).rowCount ?? 0;
  } catch (error) {
    throw classifyPostgresError(error);
  }
}

/**
 * Runs `fn` in one transaction on a client of its own and commits, or rolls
 * back and rethrows `fn`'s error as it is. With PGlite the pool has a single
 * connection: inside `fn`, use only `client` (a pool query would wait for the
 * connection `fn` holds).
 */
export async function withTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw classifyPostgresError(error);
  }
  let broken: Error | undefined;
  const rollback = async (): Promise<void> => {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackError) {
      // A connection that cannot even roll back must not go back to the pool.
      broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
    }
  };
  try {
    try {
      await client.query('BEGIN');
    } catch (error) {
      if (asServerError(error) === undefined) broken = error instanceof Error ? error : new Error(String(error));
      throw classifyPostgresError(error);
    }
    let result: T;
    try {
      result = await fn(client);
    } catch (error) {
      await rollback();
      throw error;
    }
    try {
      await client.query('COMMIT');
    } catch (error) {
      await rollback();
      throw classifyPostgresError(error);
    }
    return result;
  } finally {
    client.release(broken);
  }
}

/** Validates a repository input; every problem is reported at once, naming its field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (issue) => `${issue.path.length === 0 ? '(input)' : issue.path.join('.')}: ${issue.message}`,
  );
  throw new InputError(`invalid ${what}: ${problems.join('; ')}`, { stage: 'sink', details: { problems } });
}

export function notFound(what: string, id: unknown): RepositoryError {
  return new RepositoryError('not_found', `${what} ${String(id)} does not exist`, { id });
}

const UINT64_MAX = 18_446_744_073_709_551_615n;

/** A calendar date, 'YYYY-MM-DD'. DATE columns are read as `::text`: pg would turn them into local-midnight Dates. */
export const calendarDate = z.iso.date();

export const listLimit = (fallback: number) => z.int().min(1).max(1000).default(fallback);

/**
 * error_hash is ClickHouse's UInt64, stored as NUMERIC(20): in TypeScript it
 * travels as a decimal string, because a number would lose digits above 2^53.
 */
export const errorHashSchema = z.union([z.string(), z.bigint()]).transform((value, ctx) => {
  const text = typeof value === 'bigint' ? value.toString() : value;
  if (!/^\d{1,20}$/.test(text) || BigInt(text) > UINT64_MAX) {
    ctx.addIssue({ code: 'custom', message: `must be a UInt64 in decimal, got "${text}"` });
    return z.NEVER;
  }
  return BigInt(text).toString();
});

export const jsonObjectSchema = z.record(z.string(), z.json());

/** NUMERIC(20, 0) comes back as text. */
export function errorHashFromRow(value: string): string {
  return BigInt(value).toString();
}

/** BIGINT comes back as text; ids, counts and offsets stay far below 2^53. */
export function toSafeInteger(value: string | number, column: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new LogflowError(ErrorCodes.INTERNAL, `${column} = ${String(value)} is not a safe integer`, {
      stage: 'sink',
    });
  }
  return n;
}

/** JSONB parameters go as JSON text: pg would turn a JS array into a PostgreSQL array literal instead. */
export function jsonParam(value: unknown): string {
  return JSON.stringify(value);
}
