/**
 * Configuration from environment variables, validated once at start and
 * frozen (the fastify/pino habit). Every problem is reported at once, each
 * naming its variable; unknown LOGFLOW_* variables are rejected because a
 * typo would otherwise silently fall back to a default.
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors.ts';

const PREFIX = 'LOGFLOW_';

const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();

const url = (protocols: readonly string[]) =>
  optionalString.refine(
    (v) => {
      if (v === undefined) return true;
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
  );

const intIn = (min: number, max: number, fallback: number) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      if (!/^-?\d+$/.test(v)) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number, got "${v}"` });
        return z.NEVER;
      }
      const n = Number(v);
      if (n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `must be between ${min} and ${max}, got ${n}` });
        return z.NEVER;
      }
      return n;
    });

const stringWithDefault = (fallback: string) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v) => (v === undefined || v === '' ? fallback : v));

const identifier = (fallback: string) =>
  stringWithDefault(fallback).refine((v) => /^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(v), {
    message: 'must be an identifier (letters, digits, underscore; not starting with a digit)',
  });

const brokerList = optionalString.transform((v, ctx) => {
  if (v === undefined) return undefined;
  const brokers = v
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
  for (const b of brokers) {
    if (!/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/.test(b)) {
      ctx.addIssue({ code: 'custom', message: `"${b}" is not host:port` });
      return z.NEVER;
    }
  }
  return brokers;
});

/** Variable name -> schema. The names are the documented interface (.env.example). */
const variables = {
  LOGFLOW_KAFKA_BROKERS: brokerList,
  LOGFLOW_KAFKA_CLIENT_ID: stringWithDefault('logflow'),
  LOGFLOW_CLICKHOUSE_URL: url(['http:', 'https:']),
  LOGFLOW_CLICKHOUSE_USER: stringWithDefault('default'),
  LOGFLOW_CLICKHOUSE_PASSWORD: stringWithDefault(''),
  LOGFLOW_CLICKHOUSE_DATABASE: identifier('logs_db'),
  LOGFLOW_POSTGRES_URL: url(['postgres:', 'postgresql:']),
  LOGFLOW_QDRANT_URL: url(['http:', 'https:']),
  LOGFLOW_QDRANT_API_KEY: optionalString,
  LOGFLOW_QDRANT_COLLECTION: identifier('log_embeddings'),
  LOGFLOW_REDIS_URL: url(['redis:', 'rediss:']),
  LOGFLOW_EMBEDDINGS_URL: url(['http:', 'https:']),
  LOGFLOW_EMBEDDINGS_API_KEY: optionalString,
  LOGFLOW_EMBEDDINGS_MODEL: stringWithDefault('jina-embeddings-v2-base-en'),
  LOGFLOW_EMBEDDINGS_SERVICE_PORT: intIn(0, 65535, 8081),
  LOGFLOW_EMBEDDINGS_SERVICE_HOST: stringWithDefault('127.0.0.1').refine((v) => /^[A-Za-z0-9.:_-]+$/.test(v), {
    message: 'must be a host name or IP address',
  }),
  LOGFLOW_LLM_URL: url(['http:', 'https:']),
  LOGFLOW_LLM_API_KEY: optionalString,
  LOGFLOW_LLM_MODEL: stringWithDefault('gpt-4o-mini'),
  LOGFLOW_DATA_DIR: stringWithDefault('./data'),
  // Unset: a per-user cache (modelsDir below), not the data directory, which `npm start -- --reset` deletes.
  LOGFLOW_MODELS_DIR: optionalString,
  LOGFLOW_MODEL_THREADS: intIn(1, 64, 1),
  LOGFLOW_MODEL_BATCH_SIZE: intIn(1, 4096, 64),
  LOGFLOW_API_PORT: intIn(0, 65535, 8080),
  LOGFLOW_API_HOST: stringWithDefault('127.0.0.1').refine((v) => /^[A-Za-z0-9.:_-]+$/.test(v), {
    message: 'must be a host name or IP address',
  }),
  LOGFLOW_API_BODY_LIMIT_BYTES: intIn(1_024, 104_857_600, 1_048_576),
  LOGFLOW_API_RATE_LIMIT: intIn(1, 1_000_000, 600),
  LOGFLOW_TAIL_POLL_MS: intIn(100, 10_000, 1_000),
  LOGFLOW_TAIL_MAX_CONNECTIONS: intIn(1, 10_000, 50),
  LOGFLOW_TAIL_BUFFER_BYTES: intIn(16_384, 67_108_864, 1_048_576),
  LOGFLOW_TAIL_HEARTBEAT_MS: intIn(1_000, 120_000, 15_000),
  LOGFLOW_METRICS_PORT: intIn(0, 65535, 9464),
  LOGFLOW_TOPIC_PREFIX: stringWithDefault('').refine((v) => /^[A-Za-z0-9._-]*$/.test(v), {
    message: 'may contain only letters, digits, ".", "_" and "-" (Kafka topic characters)',
  }),
  LOGFLOW_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOGFLOW_LOGS_TTL_DAYS: intIn(1, 3650, 30),
  LOGFLOW_SHUTDOWN_TIMEOUT_MS: intIn(100, 600_000, 15_000),
  LOGFLOW_ALERT_WEBHOOK_URL: url(['http:', 'https:']),
  LOGFLOW_DASHBOARD_URL: url(['http:', 'https:']),
} as const;

/** A credential without its endpoint is a mistake, not a request for the embedded default. */
const dependencies: ReadonlyArray<readonly [ConfigVariable, ConfigVariable]> = [
  ['LOGFLOW_CLICKHOUSE_PASSWORD', 'LOGFLOW_CLICKHOUSE_URL'],
  ['LOGFLOW_QDRANT_API_KEY', 'LOGFLOW_QDRANT_URL'],
  ['LOGFLOW_EMBEDDINGS_API_KEY', 'LOGFLOW_EMBEDDINGS_URL'],
  ['LOGFLOW_LLM_API_KEY', 'LOGFLOW_LLM_URL'],
];

const nonEmpty = (v: string | undefined): boolean => v !== undefined && v.trim() !== '';

export type ConfigVariable = keyof typeof variables;
export const CONFIG_VARIABLES = Object.keys(variables) as readonly ConfigVariable[];

export interface Config {
  readonly kafka: { readonly brokers: readonly string[] | undefined; readonly clientId: string };
  readonly clickhouse: {
    readonly url: string | undefined;
    readonly user: string;
    readonly password: string;
    readonly database: string;
  };
  readonly postgres: { readonly url: string | undefined };
  readonly qdrant: {
    readonly url: string | undefined;
    readonly apiKey: string | undefined;
    readonly collection: string;
  };
  readonly redis: { readonly url: string | undefined };
  readonly embeddings: {
    readonly url: string | undefined;
    readonly apiKey: string | undefined;
    readonly model: string;
  };
  /** Where `npm run pipeline -- embeddings` listens (README.md, "Embeddings service"). */
  readonly embeddingsService: { readonly port: number; readonly host: string };
  readonly llm: { readonly url: string | undefined; readonly apiKey: string | undefined; readonly model: string };
  readonly dataDir: string;
  /** The local embedding model (README.md, "Local embeddings"): where its files are, and how it runs. */
  readonly model: {
    readonly dir: string;
    /** onnxruntime intra-op threads of the model's worker thread. */
    readonly threads: number;
    /** Texts handed to the worker thread per message. */
    readonly batchSize: number;
  };
  /** HTTP API and dashboard; 0 turns the API off in `npm start`. */
  readonly apiPort: number;
  readonly apiHost: string;
  /** Largest request body the API accepts (413 beyond). */
  readonly apiBodyLimitBytes: number;
  /** Requests per minute per client (429 beyond). */
  readonly apiRateLimitPerMinute: number;
  /** Live tail (GET /api/v1/logs/tail): README.md "Live tail". */
  readonly tail: {
    /** How often the logs table is polled for newly stored rows, per distinct filter. */
    readonly pollMs: number;
    /** Open tail connections the server holds at once (503 beyond). */
    readonly maxConnections: number;
    /** Bytes a connection may have written but not yet taken by its client before it is dropped. */
    readonly bufferBytes: number;
    /** Interval of the comment lines that keep idle connections open through proxies. */
    readonly heartbeatMs: number;
  };
  /** /metrics and /healthz of a pipeline process; 0 turns them off. */
  readonly metricsPort: number;
  readonly topicPrefix: string;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly logsTtlDays: number;
  readonly shutdownTimeoutMs: number;
  /** Where alert notifications go unless a service names its own receiver (README.md, "Notifications"). */
  readonly alertWebhookUrl: string | undefined;
  /** The dashboard's public address, the link in alert notifications; `npm start` uses its own. */
  readonly dashboardUrl: string | undefined;
  readonly topics: {
    readonly rawLogs: string;
    readonly vectorizationQueue: string;
    readonly rawLogsDlq: string;
    readonly vectorizationQueueDlq: string;
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * LOGFLOW_ variables that belong to the project's scripts, not to the engine
 * (scripts/services.sh's state directory, the benchmarks' Loghub sample in
 * bench/support/loghub.ts): set in a developer's shell, they must not stop
 * `npm start` or a test's child process as unknown.
 */
export const TOOLING_VARIABLES = ['LOGFLOW_SERVICES_DIR', 'LOGFLOW_LOGHUB_DIR'] as const;

/**
 * Reads and validates the configuration. Throws one ConfigError listing every
 * problem, each prefixed by its variable name.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const known = new Set<string>([...CONFIG_VARIABLES, ...TOOLING_VARIABLES]);
  for (const name of Object.keys(env)) {
    if (name.startsWith(PREFIX) && !known.has(name)) {
      problems.push(`${name}: unknown variable (known: see .env.example)`);
    }
  }

  const raw: Record<string, string | undefined> = {};
  for (const name of CONFIG_VARIABLES) raw[name] = env[name];
  const parsed = z.object(variables).safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? '?');
      problems.push(`${name}: ${describeIssue(issue)}`);
    }
  }
  for (const [dependent, required] of dependencies) {
    if (nonEmpty(env[dependent]) && !nonEmpty(env[required])) {
      problems.push(`${required}: required when ${dependent} is set`);
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);

  const v = parsed.data;
  const prefix = v.LOGFLOW_TOPIC_PREFIX;
  return deepFreeze<Config>({
    kafka: { brokers: v.LOGFLOW_KAFKA_BROKERS, clientId: v.LOGFLOW_KAFKA_CLIENT_ID },
    clickhouse: {
      url: v.LOGFLOW_CLICKHOUSE_URL,
      user: v.LOGFLOW_CLICKHOUSE_USER,
      password: v.LOGFLOW_CLICKHOUSE_PASSWORD,
      database: v.LOGFLOW_CLICKHOUSE_DATABASE,
    },
    postgres: { url: v.LOGFLOW_POSTGRES_URL },
    qdrant: { url: v.LOGFLOW_QDRANT_URL, apiKey: v.LOGFLOW_QDRANT_API_KEY, collection: v.LOGFLOW_QDRANT_COLLECTION },
    redis: { url: v.LOGFLOW_REDIS_URL },
    embeddings: {
      url: v.LOGFLOW_EMBEDDINGS_URL,
      apiKey: v.LOGFLOW_EMBEDDINGS_API_KEY,
      model: v.LOGFLOW_EMBEDDINGS_MODEL,
    },
    embeddingsService: { port: v.LOGFLOW_EMBEDDINGS_SERVICE_PORT, host: v.LOGFLOW_EMBEDDINGS_SERVICE_HOST },
    llm: { url: v.LOGFLOW_LLM_URL, apiKey: v.LOGFLOW_LLM_API_KEY, model: v.LOGFLOW_LLM_MODEL },
    dataDir: v.LOGFLOW_DATA_DIR,
    model: {
      dir: v.LOGFLOW_MODELS_DIR ?? defaultModelsDir(env),
      threads: v.LOGFLOW_MODEL_THREADS,
      batchSize: v.LOGFLOW_MODEL_BATCH_SIZE,
    },
    apiPort: v.LOGFLOW_API_PORT,
    apiHost: v.LOGFLOW_API_HOST,
    apiBodyLimitBytes: v.LOGFLOW_API_BODY_LIMIT_BYTES,
    apiRateLimitPerMinute: v.LOGFLOW_API_RATE_LIMIT,
    tail: {
      pollMs: v.LOGFLOW_TAIL_POLL_MS,
      maxConnections: v.LOGFLOW_TAIL_MAX_CONNECTIONS,
      bufferBytes: v.LOGFLOW_TAIL_BUFFER_BYTES,
      heartbeatMs: v.LOGFLOW_TAIL_HEARTBEAT_MS,
    },
    metricsPort: v.LOGFLOW_METRICS_PORT,
    topicPrefix: prefix,
    logLevel: v.LOGFLOW_LOG_LEVEL,
    logsTtlDays: v.LOGFLOW_LOGS_TTL_DAYS,
    shutdownTimeoutMs: v.LOGFLOW_SHUTDOWN_TIMEOUT_MS,
    alertWebhookUrl: v.LOGFLOW_ALERT_WEBHOOK_URL,
    dashboardUrl: v.LOGFLOW_DASHBOARD_URL,
    topics: {
      rawLogs: `${prefix}raw-logs`,
      vectorizationQueue: `${prefix}vectorization-queue`,
      rawLogsDlq: `${prefix}raw-logs-dlq`,
      vectorizationQueueDlq: `${prefix}vectorization-queue-dlq`,
    },
  });
}

/** $XDG_CACHE_HOME/logflow/models, else ~/.cache/logflow/models: shared by every checkout and data directory. */
function defaultModelsDir(env: NodeJS.ProcessEnv): string {
  const cache = env.XDG_CACHE_HOME?.trim() || path.join(os.homedir(), '.cache');
  return path.resolve(cache, 'logflow', 'models');
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_value' && 'values' in issue) {
    return `must be one of ${issue.values.map((x) => String(x)).join(', ')}`;
  }
  return issue.message;
}

/** A pipeline's consumer group, prefixed like topics so side-by-side deployments stay apart. */
export function consumerGroup(config: Config, pipeline: string): string {
  return `${config.topicPrefix}logflow-${pipeline}`;
}

/** Config safe to log: credentials in URLs and keys are masked. */
export function redactedConfig(config: Config): Record<string, unknown> {
  const maskUrl = (u: string | undefined) => {
    if (u === undefined) return undefined;
    const parsed = new URL(u);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  };
  const mask = (s: string | undefined) => (s === undefined || s === '' ? s : '***');
  return {
    ...config,
    clickhouse: {
      ...config.clickhouse,
      url: maskUrl(config.clickhouse.url),
      password: mask(config.clickhouse.password),
    },
    postgres: { url: maskUrl(config.postgres.url) },
    qdrant: { ...config.qdrant, apiKey: mask(config.qdrant.apiKey) },
    redis: { url: maskUrl(config.redis.url) },
    embeddings: { ...config.embeddings, apiKey: mask(config.embeddings.apiKey) },
    llm: { ...config.llm, apiKey: mask(config.llm.apiKey) },
    // A webhook's path is its secret (Slack's are): only the receiver's origin is shown.
    alertWebhookUrl: config.alertWebhookUrl === undefined ? undefined : `${new URL(config.alertWebhookUrl).origin}/***`,
  };
}
