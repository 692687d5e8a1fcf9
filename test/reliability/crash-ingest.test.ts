/**
 * Exactly once across crashes: the real ingest process (`logflow run ingest`)
 * is SIGKILLed at 5 random moments while 200,000 logs flow into raw-logs; a
 * sixth process finishes the job. ClickHouse must then hold exactly 200,000
 * rows with 200,000 distinct log_ids, and the hourly aggregate must count each
 * once: a kill between an insert and its offset commit replays the batch, which
 * the ledger re-cuts into the recorded range so ClickHouse drops the retry.
 * The kill moments come from a seed the test prints (RELIABILITY_SEED replays them).
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { consumerGroup } from '../../src/core/config.ts';
import { openEngines } from '../../src/clients/engines.ts';
import { KafkaTopics } from '../../src/sources/kafka-topics.ts';
import { KAFKA_BROKERS } from '../support/services.ts';
import {
  caughtUp,
  createStack,
  producePaced,
  seededRandom,
  sleep,
  spawnPipeline,
  testSeed,
  waitFor,
  type Stack,
} from './support.ts';

const LOGS = 200_000;
const KILLS = 5;
const SERVICES = ['api-gateway', 'auth-service', 'payment-service', 'order-service', 'user-service', 'search-service'];

describe('ingest killed 5 times while 200,000 logs flow', () => {
  let stack: Stack | undefined;
  afterAll(async () => {
    await stack?.drop();
  });

  it('ends with every log exactly once in logs and in logs_hourly_agg', async () => {
    const seed = testSeed();
    const random = seededRandom(seed);
    console.info(`crash-ingest: RELIABILITY_SEED=${seed}`);
    stack = await createStack();
    const { config, env } = stack;
    const topics = new KafkaTopics({ brokers: KAFKA_BROKERS, clientId: 'crash-ingest' });
    await topics.ensureTopic(config.topics.rawLogs, 4);

    const base = Date.now() - 3 * 3_600_000;
    const messages = Array.from({ length: LOGS }, (_, i) => {
      const service = SERVICES[i % SERVICES.length]!;
      const log = {
        log_id: randomUUID(),
        timestamp: new Date(base + Math.floor((i / LOGS) * 2.5 * 3_600_000)).toISOString(),
        service,
        environment: i % 3 === 0 ? 'staging' : 'production',
        level: i % 20 === 0 ? 'ERROR' : i % 7 === 0 ? 'WARN' : 'INFO',
        message: `request ${i} for user ${i % 977} handled in ${i % 250} ms`,
        host: `host-${i % 9}`,
        duration_ms: i % 250,
      };
      return { key: service, value: JSON.stringify(log) };
    });
    // Paced, so the kills land while records are still arriving, not on a drained topic.
    const producing = producePaced(KAFKA_BROKERS, config.topics.rawLogs, messages, 5_000, 2_000);

    const options = { 'batch-size': '2000', 'batch-wait-ms': '200', 'max-in-flight': '20000' };
    const group = consumerGroup(config, 'ingest');
    const committed = async () =>
      [...(await topics.committedOffsets(group, config.topics.rawLogs)).values()].reduce((a, b) => a + b, 0);
    const kills: Array<{ afterMs: number; committedBefore: number; signal: string | null }> = [];
    const ledger = new pg.Pool({ connectionString: env.LOGFLOW_POSTGRES_URL, max: 1 });
    const inserted = async () =>
      Number(
        (await ledger.query<{ n: string }>("SELECT count(*) AS n FROM sink_batches WHERE status = 'inserted'")).rows[0]
          ?.n,
      );
    for (let k = 0; k < KILLS; k += 1) {
      const child = spawnPipeline('ingest', env, options);
      await child.running;
      // Mid-work, not during start-up: once this process has inserted a batch, at a random moment of the next 2 s.
      const before = await inserted();
      await waitFor(async () => (await inserted()) > before, `ingest process ${k + 1} to insert a batch`, 90_000, 100);
      const afterMs = Math.floor(random() * 2_000);
      await sleep(afterMs);
      const committedBefore = await committed();
      const exit = await child.kill('SIGKILL');
      kills.push({ afterMs, committedBefore, signal: exit.signal });
    }
    await producing;
    await ledger.end();

    const last = spawnPipeline('ingest', env, options);
    await last.running;
    await waitFor(
      () => caughtUp(topics, group, config.topics.rawLogs),
      'the last ingest to commit everything',
      240_000,
      500,
    );
    const exit = await last.kill('SIGTERM');
    await topics.close();
    console.info(`crash-ingest: kills ${JSON.stringify(kills)}`);

    expect(exit, last.output().slice(-4_000)).toEqual({ code: 0, signal: null });
    expect(kills.map((k) => k.signal)).toEqual(Array(KILLS).fill('SIGKILL'));
    // The kills fell while records flowed: before everything was committed.
    expect(kills.filter((k) => k.committedBefore < LOGS)).toHaveLength(KILLS);

    const engines = await openEngines(config);
    try {
      const query = async (sql: string) =>
        (
          await (await engines.clickhouse.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, string>>()
        )[0] ?? {};
      const logs = await query('SELECT count() AS n, uniqExact(log_id) AS ids FROM logs');
      const hourly = await query('SELECT sum(log_count) AS n FROM logs_hourly_agg');
      const { rows } = await engines.postgres.query<{ n: string }>(
        "SELECT count(*) AS n FROM sink_batches WHERE status = 'inserted'",
      );
      expect(Number(rows[0]?.n)).toBeGreaterThan(KILLS);
      expect({ rows: Number(logs.n), ids: Number(logs.ids), hourly: Number(hourly.n) }).toEqual({
        rows: LOGS,
        ids: LOGS,
        hourly: LOGS,
      });
    } finally {
      await engines.close();
    }
  }, 420_000);
});
