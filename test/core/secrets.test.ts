/**
 * Config secrets never appear in logs or error messages (issue 9, security):
 * each way a secret could leak is driven for real, with a secret that cannot
 * occur by chance, and every message and log line is searched for it.
 */
import { Writable } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, redactedConfig } from '../../src/core/config.ts';
import { createOpenAIEmbedder } from '../../src/clients/embeddings.ts';
import { openEngines } from '../../src/clients/engines.ts';
import { createLogger } from '../../src/core/logger.ts';

const SECRET = 'Zq8-secret-7Xw';
const everything = (error: unknown) =>
  `${String(error)} ${JSON.stringify(error, Object.getOwnPropertyNames(error as object))} ${String((error as Error).cause ?? '')}`;

describe('secrets', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('are not echoed by configuration errors', () => {
    let error: unknown;
    try {
      loadConfig({
        LOGFLOW_POSTGRES_URL: `postgres://user:${SECRET}@127.0.0.1:1/db`,
        LOGFLOW_CLICKHOUSE_URL: `ftp://user:${SECRET}@host`,
        LOGFLOW_UNKNOWN: SECRET,
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/LOGFLOW_CLICKHOUSE_URL/);
    expect(everything(error)).not.toContain(SECRET);
  });

  it('are not in the errors of unreachable databases and endpoints', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-secrets-'));
    dirs.push(dir);
    const config = loadConfig({
      LOGFLOW_POSTGRES_URL: `postgres://user:${SECRET}@127.0.0.1:1/db`,
      LOGFLOW_DATA_DIR: dir,
    });
    const postgresError = await openEngines(config)
      .then((e) => e.postgres.query('SELECT 1').finally(() => e.close()))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(postgresError).toBeInstanceOf(Error);
    expect(everything(postgresError)).not.toContain(SECRET);

    const embedder = createOpenAIEmbedder({ url: 'http://127.0.0.1:1/v1', apiKey: SECRET, model: 'm', maxRetries: 0 });
    const embedError = await embedder.embed(['x']).then(
      () => undefined,
      (e: unknown) => e,
    );
    await embedder.close();
    expect(embedError).toBeInstanceOf(Error);
    expect((embedError as Error).message).toMatch(/127\.0\.0\.1:1/);
    expect(everything(embedError)).not.toContain(SECRET);
  });

  it('are masked in the logged configuration and in logged fields', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger({ destination: sink });
    const config = loadConfig({
      LOGFLOW_POSTGRES_URL: `postgres://user:${SECRET}@db:5432/log_analysis`,
      LOGFLOW_LLM_URL: 'https://llm.example/v1',
      LOGFLOW_LLM_API_KEY: SECRET,
    });
    logger.info({ config: redactedConfig(config) }, 'starting');
    logger.warn({ apiKey: SECRET, headers: { authorization: `Bearer ${SECRET}` } }, 'request failed');
    expect(lines.length).toBe(2);
    expect(lines.join('')).toContain('log_analysis');
    expect(lines.join('')).not.toContain(SECRET);
  });
});
