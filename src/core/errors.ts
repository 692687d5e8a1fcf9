/**
 * One error module for the whole engine (the kafkajs habit): every error has a
 * stable code, a `retriable` flag, the stage it happened in and its cause.
 * The retry loop consults only `retriable`; everything else is dead-lettered
 * or surfaced, never retried blindly.
 */

export const ErrorCodes = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  DATA_DIR_IN_USE: 'DATA_DIR_IN_USE',
  MIGRATION_FAILED: 'MIGRATION_FAILED',
  INPUT_INVALID: 'INPUT_INVALID',
  SINK_UNAVAILABLE: 'SINK_UNAVAILABLE',
  SINK_REJECTED: 'SINK_REJECTED',
  SOURCE_UNAVAILABLE: 'SOURCE_UNAVAILABLE',
  TIMEOUT: 'TIMEOUT',
  LLM_OUTPUT_INVALID: 'LLM_OUTPUT_INVALID',
  UPSTREAM_UNAVAILABLE: 'UPSTREAM_UNAVAILABLE',
  SHUTDOWN: 'SHUTDOWN',
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export type Stage =
  | 'config'
  | 'migrate'
  | 'source'
  | 'parse'
  | 'normalize'
  | 'operator'
  | 'sink'
  | 'embed'
  | 'llm'
  | 'api'
  | 'runner';

export interface LogflowErrorOptions {
  readonly retriable?: boolean;
  readonly stage?: Stage;
  readonly cause?: unknown;
  readonly details?: Readonly<Record<string, unknown>>;
}

export class LogflowError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly stage: Stage | undefined;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options: LogflowErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LogflowError';
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.stage = options.stage;
    this.details = options.details;
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      retriable: this.retriable,
      stage: this.stage,
      ...(this.details === undefined ? {} : { details: this.details }),
      ...(this.cause === undefined ? {} : { cause: describeCause(this.cause) }),
    };
  }
}

export class ConfigError extends LogflowError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(ErrorCodes.CONFIG_INVALID, `Invalid configuration:\n  - ${problems.join('\n  - ')}`, { stage: 'config' });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export class InputError extends LogflowError {
  constructor(message: string, options: Omit<LogflowErrorOptions, 'retriable'> = {}) {
    super(ErrorCodes.INPUT_INVALID, message, { ...options, retriable: false, stage: options.stage ?? 'parse' });
    this.name = 'InputError';
  }
}

/** True only for errors that declare themselves retriable; unknown errors are programmer errors. */
export function isRetriable(error: unknown): boolean {
  return error instanceof LogflowError && error.retriable;
}

export function errorCode(error: unknown): ErrorCode {
  return error instanceof LogflowError ? error.code : ErrorCodes.INTERNAL;
}

export function describeCause(cause: unknown): string {
  if (cause instanceof Error) return `${cause.name}: ${cause.message}`;
  return String(cause);
}

/**
 * A rule of a classification table: adapters map their library's errors to
 * ours by matching on the error's code or message, so the mapping is data
 * that tests can enumerate instead of scattered `if`s.
 */
export interface ClassificationRule {
  readonly match: (error: Error & { code?: unknown; type?: unknown }) => boolean;
  readonly code: ErrorCode;
  readonly retriable: boolean;
}

export function classify(
  error: unknown,
  rules: readonly ClassificationRule[],
  stage: Stage,
  fallback: { code: ErrorCode; retriable: boolean } = { code: ErrorCodes.INTERNAL, retriable: false },
): LogflowError {
  if (error instanceof LogflowError) return error;
  const err = error instanceof Error ? error : new Error(String(error));
  const rule = rules.find((r) => r.match(err));
  const chosen = rule ?? fallback;
  return new LogflowError(chosen.code, err.message, { retriable: chosen.retriable, stage, cause: err });
}
