/**
 * What the reliability tests share: real pipeline processes (`logflow run`)
 * to SIGKILL, a seeded random source so a failing run can be replayed, paced
 * producers, and small polling helpers. No fakes: the children run
 * src/app/cli.ts against real Kafka, PostgreSQL and chdb.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { loadConfig, type Config } from '../../src/core/config.ts';
import { openEngines } from '../../src/clients/engines.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import { KafkaTopics } from '../../src/sources/kafka-topics.ts';
import type { OutgoingMessage } from '../../src/sources/topics.ts';
import { KAFKA_BROKERS, POSTGRES_URL, postgresUrlFor, uniqueName } from '../support/services.ts';

const CLI = path.resolve(import.meta.dirname, '../../src/app/cli.ts');

/**
 * The generator's own PRNG (pure-rand); the seed is printed so a failing kill schedule can be replayed with
 * RELIABILITY_SEED.
 */
export function seededRandom(seed: number): () => number {
  const rng = xoroshiro128plus(seed);
  return () => uniformFloat64(rng);
}

export function testSeed(): number {
  const fromEnv = Number(process.env.RELIABILITY_SEED);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : Math.floor(Math.random() * 2 ** 31);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitFor(
  check: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 120_000,
  everyMs = 250,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A pipeline run as its own process, exactly as `logflow run <name>` runs it. */
export interface PipelineProcess {
  readonly child: ChildProcess;
  /** JSON log lines (pino) the process wrote so far. */
  readonly logs: Array<Record<string, unknown>>;
  readonly output: () => string;
  /** Resolves once the pipeline logged that it runs. */
  readonly running: Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const spawned = new Set<ChildProcess>();
// A test that fails or times out must not leave pipeline processes behind.
process.once('exit', () => {
  for (const child of spawned) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

export function spawnPipeline(
  name: string,
  env: Record<string, string>,
  options: Record<string, string> = {},
  preload?: string,
): PipelineProcess {
  const args = Object.entries(options).flatMap(([k, v]) => [`--${k}`, v]);
  const imports =
    preload === undefined
      ? ['--import', 'tsx']
      : ['--import', 'tsx', '--import', path.resolve(import.meta.dirname, preload)];
  const child = spawn(process.execPath, [...imports, CLI, 'run', name, ...args], {
    // info: the test follows the process through its log (running, episodes); no metrics port, so processes never
    // collide.
    env: { ...process.env, ...env, LOGFLOW_METRICS_PORT: '0', LOGFLOW_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  spawned.add(child);
  child.once('exit', () => spawned.delete(child));
  const logs: Array<Record<string, unknown>> = [];
  let text = '';
  let pending = '';
  let onRunning: () => void = () => undefined;
  const running = new Promise<void>((resolve) => {
    onRunning = resolve;
  });
  const take = (chunk: Buffer) => {
    const s = chunk.toString();
    text = (text + s).slice(-200_000);
    pending += s;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'pipeline running') onRunning();
      } catch {
        // Not a log line.
      }
    }
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    logs,
    output: () => text,
    running: Promise.race([
      running,
      exited.then(() => Promise.reject(new Error(`${name} exited before running:\n${text.slice(-4_000)}`))),
      sleep(90_000).then(() => Promise.reject(new Error(`${name} not running after 90 s:\n${text.slice(-4_000)}`))),
    ]),
    exited,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * A fresh PostgreSQL database, ClickHouse (chdb) directory and topic prefix, migrated; chdb is closed again so children
 * can open it.
 */
export interface Stack {
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly dir: string;
  readonly database: string;
  drop(): Promise<void>;
}

export async function createStack(
  options: { postgresUrl?: string; brokers?: readonly string[]; extraEnv?: Record<string, string> } = {},
): Promise<Stack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-reliability-'));
  const database = uniqueName('logflow_rel');
  const adminUrl = options.postgresUrl ?? POSTGRES_URL;
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  const env: Record<string, string> = {
    LOGFLOW_DATA_DIR: dir,
    LOGFLOW_POSTGRES_URL: options.postgresUrl === undefined ? postgresUrlFor(database) : url.toString(),
    LOGFLOW_CLICKHOUSE_DATABASE: database,
    LOGFLOW_TOPIC_PREFIX: `${uniqueName('rel')}.`,
    LOGFLOW_KAFKA_BROKERS: (options.brokers ?? KAFKA_BROKERS).join(','),
    LOGFLOW_SHUTDOWN_TIMEOUT_MS: '60000',
    LOGFLOW_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...options.extraEnv,
  };
  const config = loadConfig(env);
  const setup = await openEngines(config, { createDatabases: true });
  await migrateAll(setup);
  await setup.close();
  return {
    config,
    env,
    dir,
    database,
    async drop() {
      await rm(dir, { recursive: true, force: true });
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    },
  };
}

/** Sends `messages` in chunks at about `perSecond`, so they flow while the test breaks things. */
export async function producePaced(
  brokers: readonly string[],
  topic: string,
  messages: readonly OutgoingMessage[],
  perSecond: number,
  chunk = 1_000,
): Promise<void> {
  const topics = new KafkaTopics({ brokers, clientId: 'reliability-producer' });
  try {
    const producer = topics.producer();
    const started = Date.now();
    for (let i = 0; i < messages.length; i += chunk) {
      await producer.send(topic, messages.slice(i, i + chunk));
      const due = started + ((i + chunk) / perSecond) * 1_000;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  } finally {
    await topics.close();
  }
}

/** Resident set size of a process, from /proc (Linux). */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return Number(kb) * 1024;
}

/** True once the group committed every partition of `topic` up to its end. */
export async function caughtUp(topics: KafkaTopics, groupId: string, topic: string): Promise<boolean> {
  const end = await topics.endOffsets(topic);
  const committed = await topics.committedOffsets(groupId, topic);
  return [...end].every(([partition, high]) => (committed.get(partition) ?? 0) >= high);
}
