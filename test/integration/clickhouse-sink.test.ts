/**
 * Kafka -> ClickHouse sink on real Kafka, real PostgreSQL (the batch ledger)
 * and chdb: volume, a poison row, and a slow sink.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { firstValueFrom, ignoreElements, map, Subject, take, tap, toArray, type Observable } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { withRecords, type Chunk } from '../../src/core/chunk.ts';
import { openEngines, type Engines } from '../../src/clients/engines.ts';
import { migrateAll } from '../../src/app/migrate.ts';
import { clickHouseSink } from '../../src/sinks/clickhouse.ts';
import { sinkBatchLedger } from '../../src/sinks/clickhouse-ledger.ts';
import { DeadLetterSink, type DeadLetter } from '../../src/sinks/dead-letter.ts';
import { LOGS_COLUMNS, toLogsRow, type StoredLog } from '../../src/stores/logs-table.ts';
import { createSinkBatchRepository } from '../../src/stores/postgres/sink-batches.ts';
import { KafkaTopics } from '../../src/sources/kafka-topics.ts';
import type { ConsumedRecord, TopicSubscription } from '../../src/sources/topics.ts';
import { sampleLog, storedFrom } from '../support/log-fixtures.ts';
import { dropTestDatabase, KAFKA_BROKERS, postgresUrlFor, uniqueName } from '../support/services.ts';

describe('ClickHouse sink', () => {
  const database = uniqueName('logflow_sink');
  let dir = '';
  let engines: Engines;
  const topics = new KafkaTopics({ brokers: KAFKA_BROKERS, clientId: 'sink-test' });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-sink-'));
    engines = await openEngines(
      loadConfig({
        LOGFLOW_DATA_DIR: dir,
        LOGFLOW_POSTGRES_URL: postgresUrlFor(database),
        LOGFLOW_CLICKHOUSE_DATABASE: database,
      }),
      { createDatabases: true },
    );
    await migrateAll(engines);
  });

  afterAll(async () => {
    await topics.close();
    await engines.close();
    await rm(dir, { recursive: true, force: true });
    await dropTestDatabase(database);
  });

  // Keyed by log id, so even a handful of services spreads over every partition.
  async function produce(
    topic: string,
    partitions: number,
    logs: ReadonlyArray<Record<string, unknown>>,
  ): Promise<void> {
    await topics.ensureTopic(topic, partitions);
    const producer = topics.producer();
    for (let i = 0; i < logs.length; i += 2_000) {
      await producer.send(
        topic,
        logs.slice(i, i + 2_000).map((log) => ({ key: String(log.log_id), value: JSON.stringify(log) })),
      );
    }
  }

  async function countWhere(column: string, values: readonly string[]): Promise<number> {
    const [row] = await (
      await engines.clickhouse.query({
        query: `SELECT count() AS n FROM logs WHERE ${column} IN {values:Array(String)}`,
        query_params: { values },
        format: 'JSONEachRow',
      })
    ).json<{ n: string }>();
    return Number(row?.n);
  }

  /** Each record's stored log, parsed as the fixture says (its origin is the record's own). */
  const stored = (chunk: Chunk<ConsumedRecord>): Chunk<StoredLog> =>
    withRecords(
      chunk,
      chunk.records.map((r) => storedFrom(JSON.parse(r.value.toString()) as Record<string, unknown>, r)),
    );

  function sinkGraph(
    subscription: TopicSubscription,
    options: { client?: ClickHouseClient; deadLetters?: DeadLetterSink; sink: string; maxRecords?: number },
  ): Observable<never> {
    return subscription.chunks$.pipe(
      map(stored),
      clickHouseSink<StoredLog>(options.client ?? engines.clickhouse, {
        sink: options.sink,
        table: 'logs',
        columns: LOGS_COLUMNS,
        toRow: toLogsRow,
        offsetOf: (log) => log.kafka_offset,
        ledger: sinkBatchLedger(createSinkBatchRepository(engines.postgres)),
        deadLetter: async (failures) => {
          if (options.deadLetters === undefined) throw new Error('unexpected dead letter');
          await options.deadLetters.send(failures);
        },
        maxRecords: options.maxRecords ?? 5_000,
        maxWaitMs: 200,
      }),
      tap((chunk) => chunk.ack()),
      ignoreElements(),
    );
  }

  /** Runs the graph until `done()` holds, then stops it gracefully and commits. */
  async function runUntil(
    subscription: TopicSubscription,
    stop: Subject<void>,
    graph: Observable<never>,
    done: () => Promise<boolean>,
  ) {
    let failed: unknown;
    const finished = new Promise<void>((resolve, reject) => graph.subscribe({ complete: resolve, error: reject }));
    finished.catch((error: unknown) => {
      failed = error;
    });
    // A graph that fails is reported at once, not as a timeout of the wait.
    while (!(await done())) {
      if (failed !== undefined) throw failed;
      await new Promise((r) => setTimeout(r, 250));
    }
    stop.next();
    await finished;
    await subscription.close();
  }

  it('moves 100,000 records across 4 partitions with nothing lost or duplicated', async () => {
    const topic = uniqueName('sink-volume');
    const logs = Array.from({ length: 100_000 }, (_, i) => sampleLog(i));
    await produce(topic, 4, logs);
    const stop = new Subject<void>();
    const groupId = uniqueName('g');
    const subscription = topics.subscribe({ groupId, topics: [topic], stop$: stop });
    await runUntil(subscription, stop, sinkGraph(subscription, { sink: 'volume' }), async () => {
      const [row] = await (
        await engines.clickhouse.query({
          query: 'SELECT count() AS n FROM logs WHERE kafka_topic = {t:String}',
          query_params: { t: topic },
          format: 'JSONEachRow',
        })
      ).json<{ n: string }>();
      return Number(row?.n) >= 100_000;
    });
    const [row] = await (
      await engines.clickhouse.query({
        query:
          'SELECT count() AS n, uniqExact(log_id) AS ids, uniqExact(kafka_partition) AS partitions FROM logs WHERE kafka_topic = {t:String}',
        query_params: { t: topic },
        format: 'JSONEachRow',
      })
    ).json<{ n: string; ids: string; partitions: string }>();
    expect({ n: Number(row?.n), ids: Number(row?.ids), partitions: Number(row?.partitions) }).toEqual({
      n: 100_000,
      ids: 100_000,
      partitions: 4,
    });
    // Everything written was acked and committed on the graceful stop.
    expect(await topics.committedOffsets(groupId, topic)).toEqual(await topics.endOffsets(topic));
  });

  it('isolates the one row ClickHouse rejects in a batch of 10,000: 9,999 stored, 1 dead-lettered with its reason', async () => {
    const topic = uniqueName('sink-poison');
    const dlqTopic = uniqueName('sink-poison-dlq');
    const logs = Array.from({ length: 10_000 }, (_, i) => sampleLog(i));
    // Valid JSON with a log_id ClickHouse cannot parse as a UUID: only the table can reject it.
    logs[4_321] = { ...logs[4_321], log_id: 'not-a-uuid' };
    await produce(topic, 1, logs);
    await topics.ensureTopic(dlqTopic, 1);
    const stop = new Subject<void>();
    const subscription = topics.subscribe({ groupId: uniqueName('g'), topics: [topic], stop$: stop });
    const deadLetters = new DeadLetterSink(topics.producer(), dlqTopic, 'sink-test');
    const ids = logs.map((l) => String(l.log_id));
    await runUntil(
      subscription,
      stop,
      sinkGraph(subscription, { sink: 'poison', deadLetters, maxRecords: 10_000 }),
      async () =>
        (await countWhere(
          'log_id',
          ids.filter((id) => id !== 'not-a-uuid'),
        )) >= 9_999,
    );

    expect(
      await countWhere(
        'log_id',
        ids.filter((id) => id !== 'not-a-uuid'),
      ),
    ).toBe(9_999);
    const dlq = topics.subscribe({ groupId: uniqueName('dlq'), topics: [dlqTopic], stop$: new Subject<void>() });
    const [letter] = await firstValueFrom(dlq.records$.pipe(take(1), toArray()));
    letter?.ack();
    await dlq.close();
    const parsed = JSON.parse(letter!.value.value.toString()) as DeadLetter;
    expect(parsed).toMatchObject({
      error_code: 'SINK_REJECTED',
      stage: 'sink',
      pipeline: 'sink-test',
      source_topic: topic,
      source_partition: 0,
      source_offset: 4_321,
    });
    expect(parsed.error_message).toMatch(/UUID/i);
    expect(JSON.parse(parsed.payload)).toMatchObject({ log_id: 'not-a-uuid' });
  });

  it('bisects a batch refused under a code it has no rule for (a lone surrogate, code 25) and dead-letters only that row', async () => {
    const topic = uniqueName('sink-surrogate');
    const dlqTopic = uniqueName('sink-surrogate-dlq');
    const logs = Array.from({ length: 2_000 }, (_, i) => sampleLog(i));
    // Past the parser (which refuses it now), only the table can: it once stopped ingest for good.
    logs[777] = { ...logs[777], message: 'lone \ud800 surrogate' };
    logs[1_500] = { ...logs[1_500], service: 'svc-\ud83d' };
    await produce(topic, 1, logs);
    await topics.ensureTopic(dlqTopic, 1);
    const stop = new Subject<void>();
    const subscription = topics.subscribe({ groupId: uniqueName('g'), topics: [topic], stop$: stop });
    const deadLetters = new DeadLetterSink(topics.producer(), dlqTopic, 'sink-test');
    const good = logs.filter((_, i) => i !== 777 && i !== 1_500).map((l) => String(l.log_id));
    await runUntil(
      subscription,
      stop,
      sinkGraph(subscription, { sink: 'surrogate', deadLetters, maxRecords: 2_000 }),
      async () => (await countWhere('log_id', good)) >= good.length,
    );

    expect(await countWhere('log_id', good)).toBe(1_998);
    const dlq = topics.subscribe({ groupId: uniqueName('dlq'), topics: [dlqTopic], stop$: new Subject<void>() });
    const letters = await firstValueFrom(dlq.records$.pipe(take(2), toArray()));
    for (const l of letters) l.ack();
    await dlq.close();
    const parsed = letters.map((l) => JSON.parse(l.value.value.toString()) as DeadLetter);
    expect(parsed.map((l) => l.source_offset).sort((a, b) => a - b)).toEqual([777, 1_500]);
    for (const letter of parsed) {
      expect(letter).toMatchObject({ error_code: 'SINK_REJECTED', stage: 'sink', source_topic: topic });
      // The engine's own words, so whoever reads the DLQ sees what ClickHouse objected to.
      expect(letter.error_message).toMatch(/surrogate/i);
    }
  });

  it('stops, naming the cause, when no row is to blame (the table does not exist), and acks nothing', async () => {
    const topic = uniqueName('sink-no-table');
    await produce(
      topic,
      1,
      Array.from({ length: 10 }, (_, i) => sampleLog(i)),
    );
    const stop = new Subject<void>();
    const groupId = uniqueName('g');
    const subscription = topics.subscribe({ groupId, topics: [topic], stop$: stop });
    const graph = subscription.chunks$.pipe(
      map(stored),
      clickHouseSink<StoredLog>(engines.clickhouse, {
        sink: 'no-table',
        table: 'no_such_table',
        columns: LOGS_COLUMNS,
        toRow: toLogsRow,
        offsetOf: (log) => log.kafka_offset,
        ledger: sinkBatchLedger(createSinkBatchRepository(engines.postgres)),
        deadLetter: async () => {
          throw new Error('nothing is to be dead-lettered when the table is missing');
        },
        maxWaitMs: 100,
      }),
      tap((chunk) => chunk.ack()),
      ignoreElements(),
    );
    const error = await new Promise<unknown>((resolve) =>
      graph.subscribe({ error: resolve, complete: () => resolve(undefined) }),
    );
    stop.next();
    await subscription.close();
    expect(error).toMatchObject({ code: 'CONFIG_INVALID', stage: 'sink' });
    expect((error as Error).message).toMatch(
      /insert into no_such_table failed because of the table, the statement or the credentials, not of a row: .*no_such_table/,
    );
    expect(await topics.committedOffsets(groupId, topic)).not.toEqual(await topics.endOffsets(topic));
  });

  it('pauses the source while the sink is slow, keeps memory bounded, and delivers everything once it recovers', async () => {
    const topic = uniqueName('sink-slow');
    const logs = Array.from({ length: 20_000 }, (_, i) => sampleLog(i));
    await produce(topic, 2, logs);
    let slow = true;
    // The real client, made slow: every insert waits first while `slow` holds.
    const slowClient = new Proxy(engines.clickhouse, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property !== 'insert' || typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          while (slow) await new Promise((r) => setTimeout(r, 50));
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      },
    });
    const stop = new Subject<void>();
    const subscription = topics.subscribe({
      groupId: uniqueName('g'),
      topics: [topic],
      stop$: stop,
      maxInFlightRecords: 2_000,
    });
    const graph = sinkGraph(subscription, { client: slowClient, sink: 'slow', maxRecords: 500 });
    let maxInFlight = 0;
    const sampler = setInterval(() => (maxInFlight = Math.max(maxInFlight, subscription.inFlight.records)), 10);
    const heapBefore = process.memoryUsage().heapUsed;
    const finished = new Promise<void>((resolve, reject) => graph.subscribe({ complete: resolve, error: reject }));
    await new Promise((r) => setTimeout(r, 3_000));
    const stalledAt = subscription.inFlight.records;
    const heapStalled = process.memoryUsage().heapUsed;
    slow = false;
    const ids = logs.map((l) => String(l.log_id));
    while ((await countWhere('log_id', ids)) < 20_000) await new Promise((r) => setTimeout(r, 250));
    stop.next();
    await finished;
    await subscription.close();
    clearInterval(sampler);

    expect(stalledAt).toBeGreaterThan(0);
    expect(maxInFlight).toBeLessThanOrEqual(2_000);
    // 20,000 records of ~300 bytes would be ~6 MB if buffered; stalled, far less than that is held.
    expect(heapStalled - heapBefore).toBeLessThan(64 * 1024 * 1024);
    expect(await countWhere('log_id', ids)).toBe(20_000);
  });
});
