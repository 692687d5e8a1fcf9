/**
 * A Kafka -> ClickHouse sink pipeline run as a child process, so a test can
 * SIGKILL it at a chosen moment: CRASH_AFTER_INSERTS=N kills it right after
 * its N-th ClickHouse insert succeeded and before any offset commit (the
 * commit interval is longer than the run). Without it, it runs until the
 * table holds EXPECTED_ROWS, then stops gracefully.
 */
import { Subject, map, ignoreElements, tap } from 'rxjs';
import { loadConfig } from '../../src/core/config.ts';
import { withRecords } from '../../src/core/chunk.ts';
import { openEngines } from '../../src/clients/engines.ts';
import { clickHouseSink } from '../../src/sinks/clickhouse.ts';
import { sinkBatchLedger } from '../../src/sinks/clickhouse-ledger.ts';
import { LOGS_COLUMNS, toLogsRow } from '../../src/stores/logs-table.ts';
import { createSinkBatchRepository } from '../../src/stores/postgres/sink-batches.ts';
import { KafkaTopics } from '../../src/sources/kafka-topics.ts';
import { storedFrom } from './log-fixtures.ts';

const env = process.env;
const topic = env.TOPIC!;
const crashAfter = env.CRASH_AFTER_INSERTS === undefined ? undefined : Number(env.CRASH_AFTER_INSERTS);
const expected = Number(env.EXPECTED_ROWS);

const config = loadConfig({
  LOGFLOW_DATA_DIR: env.DATA_DIR!,
  LOGFLOW_POSTGRES_URL: env.PG_URL!,
  LOGFLOW_CLICKHOUSE_DATABASE: env.CH_DATABASE!,
});
const engines = await openEngines(config);
const topics = new KafkaTopics({ brokers: (env.BROKERS ?? '127.0.0.1:9092').split(','), clientId: 'sink-child' });
const stop = new Subject<void>();
const subscription = topics.subscribe({
  groupId: env.GROUP!,
  topics: [topic],
  stop$: stop,
  commitIntervalMs: crashAfter === undefined ? 500 : 600_000,
});
let inserts = 0;

const graph = subscription.chunks$.pipe(
  map((chunk) =>
    withRecords(
      chunk,
      chunk.records.map((r) => storedFrom(JSON.parse(r.value.toString()) as Record<string, unknown>, r)),
    ),
  ),
  clickHouseSink(engines.clickhouse, {
    sink: 'clickhouse-logs',
    table: 'logs',
    columns: LOGS_COLUMNS,
    toRow: toLogsRow,
    offsetOf: (log) => log.kafka_offset,
    ledger: sinkBatchLedger(createSinkBatchRepository(engines.postgres)),
    deadLetter: async () => {
      throw new Error('no dead letters expected');
    },
    maxRecords: 1_000,
    maxWaitMs: 200,
    // Counted as each insert (and its ledger entry) completes, before any chunk is acked.
    onInserted: () => {
      inserts += 1;
      if (crashAfter !== undefined && inserts >= crashAfter) process.kill(process.pid, 'SIGKILL');
    },
  }),
  tap((chunk) => chunk.ack()),
  ignoreElements(),
);

const poll = setInterval(() => {
  void engines.clickhouse
    .query({ query: 'SELECT count() AS n FROM logs', format: 'JSONEachRow' })
    .then((r) => r.json<{ n: string }>())
    .then(([row]) => {
      if (Number(row?.n) >= expected) stop.next();
    });
}, 300);

await new Promise<void>((resolve, reject) => graph.subscribe({ complete: resolve, error: reject }));
clearInterval(poll);
await subscription.close();
await topics.close();
await engines.close();
process.stdout.write(`inserts=${inserts}\n`);
