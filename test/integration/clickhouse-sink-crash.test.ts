/**
 * Exactly-once across a crash: the sink process is SIGKILLed right after
 * ClickHouse inserts succeeded and before their offsets were committed. The
 * restarted process re-reads those records, re-cuts them into the recorded
 * ranges, and ClickHouse drops the retried inserts (the hourly view too).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { openEngines } from '../../src/clients/engines.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import { KafkaTopics } from '../../src/sources/kafka-topics.ts';
import { sampleLog } from '../support/log-fixtures.ts';
import { dropTestDatabase, KAFKA_BROKERS, postgresUrlFor, uniqueName } from '../support/services.ts';

const ROWS = 20_000;

function runChild(
  env: Record<string, string>,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('test/support/sink-child.ts')], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code, signal) => resolve({ code, signal, output }));
  });
}

describe('ClickHouse sink across a crash between insert and commit', () => {
  const database = uniqueName('logflow_crash');
  let dir = '';
  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
    await dropTestDatabase(database);
  });

  it('ends with every record exactly once in logs and in logs_hourly_agg', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-crash-'));
    const config = loadConfig({
      LOGFLOW_DATA_DIR: dir,
      LOGFLOW_POSTGRES_URL: postgresUrlFor(database),
      LOGFLOW_CLICKHOUSE_DATABASE: database,
    });
    // Migrate, then release chdb: the children open the same data directory.
    const setup = await openEngines(config, { createDatabases: true });
    await migrateAll(setup);
    await setup.close();

    const topic = uniqueName('crash');
    const topics = new KafkaTopics({ brokers: KAFKA_BROKERS, clientId: 'crash-test' });
    await topics.ensureTopic(topic, 4);
    const producer = topics.producer();
    for (let i = 0; i < ROWS; i += 1_000) {
      await producer.send(
        topic,
        Array.from({ length: 1_000 }, (_, j) => {
          const log = sampleLog(i + j);
          return { key: String(log.service), value: JSON.stringify(log) };
        }),
      );
    }
    await topics.close();

    const env = {
      TOPIC: topic,
      GROUP: uniqueName('crash-group'),
      DATA_DIR: dir,
      PG_URL: postgresUrlFor(database),
      CH_DATABASE: database,
      EXPECTED_ROWS: String(ROWS),
      BROKERS: KAFKA_BROKERS.join(','),
    };
    const crashed = await runChild({ ...env, CRASH_AFTER_INSERTS: '6' });
    expect(crashed.signal, crashed.output).toBe('SIGKILL');

    const restarted = await runChild(env);
    expect(restarted.code, restarted.output).toBe(0);

    const engines = await openEngines(config);
    try {
      const [logs] = await (
        await engines.clickhouse.query({
          query: 'SELECT count() AS n, uniqExact(log_id) AS ids FROM logs',
          format: 'JSONEachRow',
        })
      ).json<{ n: string; ids: string }>();
      const [agg] = await (
        await engines.clickhouse.query({
          query: 'SELECT sum(log_count) AS n FROM logs_hourly_agg',
          format: 'JSONEachRow',
        })
      ).json<{ n: string }>();
      const { rows } = await engines.postgres.query<{ n: string }>(
        "SELECT count(*) AS n FROM sink_batches WHERE status = 'inserted'",
      );
      expect(Number(rows[0]?.n)).toBeGreaterThanOrEqual(6);
      expect({ rows: Number(logs?.n), ids: Number(logs?.ids), hourly: Number(agg?.n) }).toEqual({
        rows: ROWS,
        ids: ROWS,
        hourly: ROWS,
      });
    } finally {
      await engines.close();
    }
  }, 240_000);
});
