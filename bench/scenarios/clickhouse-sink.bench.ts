/**
 * The exactly-once ClickHouse sink (src/sinks/clickhouse.ts) against plain
 * `@clickhouse/client` inserts of the same batches into the same `logs` table
 * (chdb; a ClickHouse server too when LOGFLOW_CLICKHOUSE_URL is set).
 *
 * The rows: generated logs, parsed and normalized once up front, spread
 * over 4 partitions. Baseline: the batches the sink would cut (per
 * partition, `--batch` rows), already converted to rows, inserted with one
 * insert in flight per partition, each with a deduplication token of its
 * own (needed: chdb's session keeps the last insert's token, see below).
 * Sink: the same records as
 * envelopes through clickHouseSink with the PostgreSQL ledger (record
 * pending, insert with a deduplication token, mark inserted, ack), and once
 * more with an in-memory ledger, which separates the ledger's cost from the
 * rest. The table is truncated before each measurement; rounds alternate and
 * the best of `--rounds` is kept, since other work only slows a run down.
 *
 * Found while building this: with chdb, per-query clickhouse_settings stay
 * set on the session, so an insert without a token after one with a token
 * reuses it and is silently dropped as a duplicate.
 *
 * Args: --rows N (200,000), --batch N (20,000, ingest's default), --rounds N (3), --pglite.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { from, lastValueFrom, toArray } from 'rxjs';
import { createChunk, type Chunk } from '../../src/core/chunk.ts';
import { acknowledge } from '../../src/operators/acknowledge.ts';
import { parseLogEvent } from '../../src/domain/log-event.ts';
import { normalizeMessage } from '../../src/domain/normalizer.ts';
import { clickHouseSink, type BatchLedger, type OffsetRange } from '../../src/sinks/clickhouse.ts';
import { sinkBatchLedger } from '../../src/sinks/clickhouse-ledger.ts';
import { LOGS_COLUMNS, toLogsRow, type StoredLog } from '../../src/stores/logs-table.ts';
import { createRepositories } from '../../src/stores/postgres/index.ts';
import { numberArg } from '../support/args.ts';
import { sampleRecords } from '../support/load.ts';
import { benchStack, uniqueName, type EngineKind } from '../support/stack.ts';
import type { Benchmark, BenchContext, BenchRow } from '../support/types.ts';

const PARTITIONS = 4;

function memoryLedger(): BatchLedger {
  const ranges = new Map<string, OffsetRange[]>();
  const key = (sink: string, topic: string, partition: number) => `${sink}\u0000${topic}\u0000${partition}`;
  return {
    rangesFrom: async (sink, topic, partition, offset) =>
      (ranges.get(key(sink, topic, partition)) ?? []).filter((r) => r.maxOffset >= offset),
    recordPending: async (sink, range) => {
      const list = ranges.get(key(sink, range.topic, range.partition)) ?? [];
      const existing = list.find((r) => r.minOffset === range.minOffset);
      if (existing !== undefined) return existing;
      list.push(range);
      ranges.set(key(sink, range.topic, range.partition), list);
      return range;
    },
    markInserted: async () => undefined,
  };
}

interface Prepared {
  readonly logs: readonly StoredLog[];
}

async function prepare(rows: number): Promise<Prepared> {
  const records = await sampleRecords(rows, 5, 'compact');
  const now = Date.now();
  const logs = records.map((record, i): StoredLog => {
    const origin = { topic: 'bench', partition: i % PARTITIONS, offset: Math.floor(i / PARTITIONS) };
    const event = parseLogEvent(Buffer.from(record.value), origin, now);
    const { template, errorHash } = normalizeMessage(event.message);
    return {
      ...event,
      template,
      error_hash: errorHash,
      ingested_at: now,
      kafka_topic: 'bench',
      kafka_partition: origin.partition,
      kafka_offset: origin.offset,
    };
  });
  return { logs };
}

/** The batches the sink cuts: per partition, consecutive offsets, `batch` at a time. */
function cutBatches(logs: readonly StoredLog[], topic: string, batch: number): unknown[][][][] {
  const perPartition: unknown[][][][] = Array.from({ length: PARTITIONS }, () => []);
  const current: unknown[][][] = Array.from({ length: PARTITIONS }, () => []);
  for (const log of logs) {
    const p = log.kafka_partition;
    current[p]!.push(toLogsRow({ ...log, kafka_topic: topic }));
    if (current[p]!.length >= batch) {
      perPartition[p]!.push(current[p]!);
      current[p] = [];
    }
  }
  for (let p = 0; p < PARTITIONS; p++) if (current[p]!.length > 0) perPartition[p]!.push(current[p]!);
  return perPartition;
}

async function rawInserts(client: ClickHouseClient, perPartition: unknown[][][][], topic: string): Promise<number> {
  const started = performance.now();
  await Promise.all(
    perPartition.map(async (batches, partition) => {
      for (const [i, values] of batches.entries()) {
        // A token of its own: chdb's session keeps the last insert's settings, so without one a raw insert would reuse
        // the sink's last token and be dropped as a duplicate (logs has non_replicated_deduplication_window).
        const token = `raw-${topic}-${partition}-${i}`;
        await client.insert({
          table: 'logs',
          columns: [...LOGS_COLUMNS],
          values,
          format: 'JSONCompactEachRow',
          clickhouse_settings: { insert_deduplication_token: token },
        });
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

async function sinkInserts(
  client: ClickHouseClient,
  logs: readonly StoredLog[],
  topic: string,
  batch: number,
  ledger: BatchLedger,
): Promise<number> {
  let acked = 0;
  // Chunks of up to 1,000 records of one partition, in offset order, as a source hands them out.
  const byPartition = new Map<number, StoredLog[]>();
  for (const log of logs) {
    const list = byPartition.get(log.kafka_partition) ?? [];
    list.push({ ...log, kafka_topic: topic });
    byPartition.set(log.kafka_partition, list);
  }
  const chunks: Chunk<StoredLog>[] = [];
  for (const [partition, list] of byPartition) {
    list.sort((x, y) => x.kafka_offset - y.kafka_offset);
    for (let i = 0; i < list.length; i += 1_000) {
      const records = list.slice(i, i + 1_000);
      chunks.push(
        createChunk(
          {
            topic,
            partition,
            firstOffset: records[0]!.kafka_offset,
            lastOffset: records[records.length - 1]!.kafka_offset,
            records,
            sizeBytes: 400 * records.length,
          },
          {
            onAck: () => void (acked += records.length),
            onFail: (error) => {
              throw error;
            },
          },
        ),
      );
    }
  }
  const started = performance.now();
  await lastValueFrom(
    from(chunks).pipe(
      clickHouseSink<StoredLog>(client, {
        sink: 'bench-logs',
        table: 'logs',
        columns: LOGS_COLUMNS,
        toRow: toLogsRow,
        offsetOf: (log) => log.kafka_offset,
        ledger,
        deadLetter: async (failures) => {
          throw new Error(`the benchmark's rows were dead-lettered: ${failures.length}`);
        },
        maxRecords: batch,
        maxBytes: 1024 * 1024 * 1024,
        maxWaitMs: 60_000,
      }),
      acknowledge(),
      toArray(),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  if (acked !== logs.length) throw new Error(`the sink acked ${acked} of ${logs.length}`);
  return seconds;
}

async function countRows(client: ClickHouseClient): Promise<number> {
  const rows = await (await client.query({ query: 'SELECT count() AS n FROM logs', format: 'JSONEachRow' })).json<{
    n: string;
  }>();
  return Number(rows[0]?.n ?? 0);
}

const benchmark: Benchmark = {
  name: 'clickhouse-sink',
  description:
    'rows/s of the exactly-once ClickHouse sink (ledger + dedup token) vs raw @clickhouse/client inserts of the same batches',
  async run(ctx: BenchContext): Promise<readonly BenchRow[]> {
    const rowCount = Math.floor(numberArg(ctx.args, 'rows', 200_000));
    const batch = Math.floor(numberArg(ctx.args, 'batch', 20_000));
    const rounds = Math.floor(numberArg(ctx.args, 'rounds', 3));
    const stack = await benchStack(ctx.args);
    const preparing = ctx.phase(`generate, parse and normalize ${rowCount.toLocaleString('en-US')} logs`, 1);
    const { logs } = await prepare(rowCount);
    preparing.done();
    const rows: BenchRow[] = [];
    for (const kind of stack.engineKinds as EngineKind[]) {
      const engines = await stack.engines(kind);
      const client = engines.clickhouse;
      const ledger = sinkBatchLedger(createRepositories(engines.postgres).sinkBatches);
      let bestRaw = Infinity;
      let bestSink = Infinity;
      let bestMemory = Infinity;
      const progress = ctx.phase(`${kind}: ${rounds} round(s) of raw, sink, sink with in-memory ledger`, rounds * 3);
      for (let round = 0; round < rounds; round++) {
        const check = async (what: string) => {
          const n = await countRows(client);
          if (n !== rowCount) throw new Error(`round ${round + 1}, ${what}: ${n} rows in logs, expected ${rowCount}`);
        };
        await client.command({ query: 'TRUNCATE TABLE logs' });
        const rawTopic = uniqueName('raw');
        bestRaw = Math.min(bestRaw, await rawInserts(client, cutBatches(logs, rawTopic, batch), rawTopic));
        await check('raw');
        progress.tick(round * 3 + 1);
        await client.command({ query: 'TRUNCATE TABLE logs' });
        bestSink = Math.min(bestSink, await sinkInserts(client, logs, uniqueName('sink'), batch, ledger));
        await check('sink');
        progress.tick(round * 3 + 2);
        await client.command({ query: 'TRUNCATE TABLE logs' });
        bestMemory = Math.min(
          bestMemory,
          await sinkInserts(client, logs, uniqueName('sink-mem'), batch, memoryLedger()),
        );
        await check('sink with in-memory ledger');
        progress.tick(round * 3 + 3);
      }
      progress.done();
      await client.command({ query: 'TRUNCATE TABLE logs' });
      const raw = rowCount / bestRaw;
      const engine = kind === 'chdb' ? 'chdb' : 'ClickHouse server';
      rows.push(
        {
          scenario: `raw @clickhouse/client insert -> ${engine} (baseline)`,
          metric: 'throughput',
          value: raw,
          unit: 'rows/s',
        },
        {
          scenario: `clickHouseSink, PostgreSQL ${stack.postgresMode} ledger -> ${engine}`,
          metric: 'throughput',
          value: rowCount / bestSink,
          unit: 'rows/s',
          baseline: raw,
        },
        {
          scenario: `clickHouseSink, in-memory ledger -> ${engine}`,
          metric: 'throughput',
          value: rowCount / bestMemory,
          unit: 'rows/s',
          baseline: raw,
        },
      );
    }
    ctx.log(`${rowCount} rows in batches of ${batch} over ${PARTITIONS} partitions, best of ${rounds}`);
    return rows;
  },
};

export default benchmark;
