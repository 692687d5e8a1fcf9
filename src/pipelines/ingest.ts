/**
 * ingest (the seed's kafka-consumer): raw-logs -> parse and validate (invalid
 * -> raw-logs-dlq with the reason) -> normalize -> dedupe -> ClickHouse logs,
 * exactly once, and WARN/ERROR/FATAL -> vectorization-queue (keyed by
 * error_hash, so one pattern's records meet on one vectorize instance).
 *
 * What flows is chunks (src/core/chunk.ts): one partition's records with one
 * acknowledgement. A record that fails a stage moves to the chunk's rejected
 * list and its dead letter is written before the chunk goes on. The queue
 * comes after the store, not beside it: vectorize flags the stored row, so a
 * problem record is queued only once its row exists, and the chunk is acked
 * (its offsets committable) only when both are written.
 */
import { defer, map, mergeMap, tap } from 'rxjs';
import { z } from 'zod';
import { withRecords, type Chunk } from '../core/chunk.ts';
import { parseLogEvent, PROBLEM_LEVELS, type LogEvent } from '../domain/log-event.ts';
import { definePipeline } from '../core/pipeline.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import { acknowledge } from '../operators/acknowledge.ts';
import { reportInFlight } from '../operators/reportInFlight.ts';
import { deadLetterRejected } from '../operators/deadLetterRejected.ts';
import { normalize, type Normalized } from '../operators/normalize.ts';
import { parseRecords } from '../operators/parseRecords.ts';
import { rejectDuplicates } from '../operators/rejectDuplicates.ts';
import { clickHouseSink } from '../sinks/clickhouse.ts';
import { sinkBatchLedger } from '../sinks/clickhouse-ledger.ts';
import type { Failure } from '../sinks/dead-letter.ts';
import { topicSink } from '../sinks/topic-sink.ts';
import { encodeLogsRow, LOGS_COLUMNS } from '../stores/logs-table.ts';
import { packRows } from '../clients/row-inserter.ts';
import type { ConsumedRecord, OutgoingMessage } from '../sources/topics.ts';
import { DEFAULT_FETCH_MAX_BYTES } from '../sources/kafka-topics.ts';
import { consume, deadLetterSink, thenClose } from '../sources/consume.ts';
import { parseOptions } from '../core/options.ts';
import type { Resources } from './resources.ts';
import { truncateText } from '../core/text.ts';

/** What ingest puts on vectorization-queue: enough to embed and to flag the row, not the whole log. */
export interface VectorizationRequest {
  readonly log_id: string;
  readonly error_hash: string;
  readonly template: string;
  readonly message: string;
  readonly service: string;
  readonly environment: string;
  readonly level: string;
  readonly timestamp: number;
}

/** A parsed log and the record it came from. */
interface ParsedLog {
  readonly event: LogEvent;
  readonly record: ConsumedRecord;
}

/**
 * What a stored record carries to the sinks: its row and (for problem levels)
 * its vectorization request, encoded as soon as it is parsed. The parsed
 * event and its strings then die young, before the garbage collector's next
 * scavenge, instead of surviving into the old generation while the batch
 * fills and its insert runs.
 */
interface RoutedLog {
  /** JSON array of the logs columns (encodeLogsRow's values) as UTF-8, packed with its chunk's rows (packRows). */
  readonly row: Buffer;
  readonly queue: OutgoingMessage | undefined;
  readonly offset: number;
  readonly key: string | null;
}

/** A rejected row's dead letter: the stored columns by name, as the row said them. */
function rowPayload(log: RoutedLog): unknown {
  const values = JSON.parse(log.row.toString('utf8')) as unknown[];
  return Object.fromEntries(LOGS_COLUMNS.map((column, i) => [column, values[i]]));
}

const optionsSchema = z
  .object({
    'batch-size': z.coerce.number().int().min(1).max(1_000_000).default(20_000),
    'batch-wait-ms': z.coerce.number().int().min(1).max(60_000).default(500),
    'max-in-flight': z.coerce.number().int().min(1).max(10_000_000).default(100_000),
    'chunk-records': z.coerce.number().int().min(1).max(1_000_000).default(500),
    partitions: z.coerce.number().int().min(1).max(1_000).default(4),
  })
  .strict();

export const ingest = definePipeline<Resources>({
  name: 'ingest',
  description:
    'raw-logs -> validate -> normalize -> ClickHouse logs (exactly once) + vectorization-queue; invalid -> raw-logs-dlq',
  build(ctx) {
    const options = parseOptions(optionsSchema, ctx.options, 'ingest');
    return defer(async () => {
      const { config, resources } = ctx;
      const topics = resources.topics();
      await topics.ensureTopic(config.topics.rawLogs, options.partitions);
      await topics.ensureTopic(config.topics.vectorizationQueue, options.partitions);
      await topics.ensureTopic(config.topics.rawLogsDlq, 1);
      const engines = await resources.engines();
      const repositories = await resources.repositories();
      return { topics, engines, repositories };
    }).pipe(
      mergeMap(({ topics, engines, repositories }) => {
        const { config, metrics, name } = ctx;
        const producer = topics.producer();
        const subscription = consume(ctx, topics, config.topics.rawLogs, {
          maxInFlightRecords: options['max-in-flight'],
          // Each chunk runs through parse, normalize and encode in one go; a small one keeps few of its records'
          // intermediate objects alive when a scavenge comes (README, Performance).
          maxChunkRecords: options['chunk-records'],
          // At least one full fetch: kafkajs hands out a fetch at a time (src/sources/kafka-topics.ts).
          maxInFlightBytes: 4 * DEFAULT_FETCH_MAX_BYTES,
        });
        const deadLetters = deadLetterSink(ctx, producer, config.topics.rawLogsDlq);
        const sendDeadLetters = (failures: readonly Failure[]) =>
          retry(() => deadLetters.send(failures), RETRY_UNTIL_STOPPED);
        const recordsIn = metrics.recordsIn.labels({ pipeline: name, stage: 'source' });
        const stored = metrics.recordsOut.labels({ pipeline: name, stage: 'clickhouse' });
        const queued = metrics.recordsOut.labels({ pipeline: name, stage: 'vectorization-queue' });

        const graph$ = subscription.chunks$.pipe(
          tap((chunk) => recordsIn.inc(chunk.records.length)),
          parseRecords(
            (record: ConsumedRecord): ParsedLog => ({
              event: parseLogEvent(record.value, record, ctx.scheduler.now()),
              record,
            }),
          ),
          normalize((log: ParsedLog) => log.event.message),
          rejectDuplicates<Normalized<ParsedLog>>({
            idOf: (log) => log.event.log_id,
            originOf: (log) => log.record,
            payloadOf: (log) => log.record.value,
            keyOf: (log) => log.record.key,
          }),
          deadLetterRejected(sendDeadLetters),
          map((chunk) => encode(chunk, ctx.scheduler.now())),
          clickHouseSink<RoutedLog>(engines.clickhouse, {
            sink: 'ingest-logs',
            table: 'logs',
            columns: LOGS_COLUMNS,
            toRow: (log) => log.row,
            offsetOf: (log) => log.offset,
            keyOf: (log) => log.key,
            deadLetterPayload: rowPayload,
            ledger: sinkBatchLedger(repositories.sinkBatches),
            deadLetter: sendDeadLetters,
            maxRecords: options['batch-size'],
            maxWaitMs: options['batch-wait-ms'],
            scheduler: ctx.scheduler,
            onInserted: (b) => {
              stored.inc(b.rows);
              metrics.batchSize.observe({ pipeline: name, stage: 'clickhouse' }, b.rows);
            },
          }),
          // Queued only once stored: vectorize flags the row, which must exist by then.
          topicSink<RoutedLog>({
            producer,
            topic: config.topics.vectorizationQueue,
            messageOf: (log) => log.queue,
            onSent: (count) => queued.inc(count),
            scheduler: ctx.scheduler,
          }),
          acknowledge(),
          reportInFlight(
            () => subscription.inFlight.records,
            (records) => metrics.inFlight.set({ pipeline: name }, records),
            { scheduler: ctx.scheduler },
          ),
        );
        return thenClose(graph$, subscription);
      }),
    );
  },
});

/** Each log's row and queue message, encoded now so the parsed event dies young (see RoutedLog). */
function encode(chunk: Chunk<Normalized<ParsedLog>>, now: number): Chunk<RoutedLog> {
  const rows = new Array<string>(chunk.records.length);
  const queues = new Array<OutgoingMessage | undefined>(chunk.records.length);
  for (let i = 0; i < chunk.records.length; i++) {
    const { event, record, template, error_hash } = chunk.records[i]!;
    let queue: OutgoingMessage | undefined;
    if (PROBLEM_LEVELS.has(event.level)) {
      const request: VectorizationRequest = {
        log_id: event.log_id,
        error_hash,
        template,
        message: truncateText(event.message, 4_096),
        service: event.service,
        environment: event.environment,
        level: event.level,
        timestamp: event.timestamp,
      };
      queue = { key: error_hash, value: JSON.stringify(request) };
    }
    const row = encodeLogsRow(event, {
      template,
      error_hash,
      ingested_at: now,
      kafka_topic: record.topic,
      kafka_partition: record.partition,
      kafka_offset: record.offset,
    });
    rows[i] = JSON.stringify(row);
    queues[i] = queue;
  }
  // The row strings die young; their bytes wait for the batch (one buffer per chunk).
  const packed = packRows(rows);
  const out = new Array<RoutedLog>(chunk.records.length);
  for (let i = 0; i < chunk.records.length; i++) {
    const { record } = chunk.records[i]!;
    out[i] = { row: packed[i]!, queue: queues[i], offset: record.offset, key: record.key };
  }
  return withRecords(chunk, out);
}
