/**
 * ingest (the seed's kafka-consumer): raw-logs -> parse and validate (invalid
 * -> raw-logs-dlq with the reason) -> normalize -> ClickHouse logs, exactly
 * once, and WARN/ERROR/FATAL -> vectorization-queue (keyed by error_hash, so
 * one pattern's records meet on one vectorize instance). A problem record is
 * queued only after its row is stored, so vectorize can flag it; its offset is
 * committed only when both writes are acknowledged.
 */
import { concatMap, defer, filter, ignoreElements, map, merge, mergeMap, Subject, tap } from 'rxjs';
import { z } from 'zod';
import { createEnvelope, withValue, type Envelope } from '../core/envelope.ts';
import { InputError } from '../core/errors.ts';
import { parseLogEvent, PROBLEM_LEVELS } from '../domain/log-event.ts';
import { normalizeMessage } from '../domain/normalizer.ts';
import { batch } from '../operators/batch.ts';
import { definePipeline } from '../core/pipeline.ts';
import { RecentIds } from '../domain/recent-ids.ts';
import { retry, RETRY_UNTIL_STOPPED } from '../core/retry.ts';
import { clickHouseSink } from '../sinks/clickhouse.ts';
import { sinkBatchLedger } from '../sinks/clickhouse-ledger.ts';
import type { Failure } from '../sinks/dead-letter.ts';
import { encodeLogsRow, LOGS_COLUMNS } from '../stores/logs-table.ts';
import type { ConsumedRecord, OutgoingMessage } from '../sources/topics.ts';
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

/**
 * What a routed record carries to the sinks: its row and (for problem levels)
 * its vectorization request, encoded as soon as it is parsed. The parsed
 * event and its strings then die young, before the garbage collector's next
 * scavenge, instead of surviving into the old generation while the batch
 * fills and its insert runs.
 */
interface RoutedLog {
  /**
   * JSON array of the logs columns (encodeLogsRow's values), as UTF-8: it waits off the JS heap until its batch is
   * inserted.
   */
  readonly row: Buffer;
  readonly queue: OutgoingMessage | undefined;
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
        });
        const deadLetters = deadLetterSink(ctx, producer, config.topics.rawLogsDlq);
        const sendDeadLetters = (failures: readonly Failure[]) =>
          retry(() => deadLetters.send(failures), RETRY_UNTIL_STOPPED);

        const invalid = new Subject<{ envelope: Envelope<ConsumedRecord>; failure: Failure }>();
        const toClickHouse = new Subject<Envelope<RoutedLog>>();
        const toQueue = new Subject<Envelope<RoutedLog>>();
        const recordsIn = metrics.recordsIn.labels({ pipeline: name, stage: 'source' });
        const recentIds = new RecentIds();
        const stored = metrics.recordsOut.labels({ pipeline: name, stage: 'clickhouse' });

        const deadLettering$ = invalid.pipe(
          batch({
            maxRecords: 1_000,
            maxBytes: 8 * 1024 * 1024,
            maxWaitMs: 200,
            scheduler: ctx.scheduler,
            sizeOf: (i) => i.envelope.sizeBytes,
          }),
          concatMap(async (items) => {
            await sendDeadLetters(items.map((i) => i.failure));
            for (const i of items) i.envelope.ack();
          }),
        );

        const clickHouse$ = toClickHouse.pipe(
          clickHouseSink<RoutedLog>(engines.clickhouse, {
            sink: 'ingest-logs',
            table: 'logs',
            columns: LOGS_COLUMNS,
            toRow: (log) => log.row,
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
          tap({ complete: () => toQueue.complete(), error: (error: unknown) => toQueue.error(error) }),
        );

        const queue$ = toQueue.pipe(
          batch({ maxRecords: 2_000, maxBytes: 4 * 1024 * 1024, maxWaitMs: 100, scheduler: ctx.scheduler }),
          concatMap(async (items) => {
            const messages = items.map(({ value: log }) => log.queue!);
            await retry(() => producer.send(config.topics.vectorizationQueue, messages), RETRY_UNTIL_STOPPED);
            for (const i of items) i.ack();
            metrics.recordsOut.inc({ pipeline: name, stage: 'vectorization-queue' }, items.length);
          }),
        );

        const routing$ = subscription.records$.pipe(
          map((envelope): Envelope<RoutedLog> | undefined => {
            recordsIn.inc();
            const now = ctx.scheduler.now();
            try {
              const event = parseLogEvent(envelope.value.value, envelope.origin, now);
              const firstSeen = recentIds.firstSeenElsewhere(event.log_id, envelope.origin);
              if (firstSeen !== undefined)
                throw new InputError(`duplicate log_id ${event.log_id}: already ingested from ${firstSeen}`);
              const { template, errorHash } = normalizeMessage(event.message);
              const row = encodeLogsRow(event, {
                template,
                error_hash: errorHash,
                ingested_at: now,
                kafka_topic: envelope.origin.topic,
                kafka_partition: envelope.origin.partition,
                kafka_offset: envelope.origin.offset,
              });
              let queue: OutgoingMessage | undefined;
              if (PROBLEM_LEVELS.has(event.level)) {
                const request: VectorizationRequest = {
                  log_id: event.log_id,
                  error_hash: errorHash,
                  template,
                  message: truncateText(event.message, 4_096),
                  service: event.service,
                  environment: event.environment,
                  level: event.level,
                  timestamp: event.timestamp,
                };
                queue = { key: errorHash, value: JSON.stringify(request) };
              }
              const routed: RoutedLog = { row: Buffer.from(JSON.stringify(row)), queue };
              return withValue(envelope, routed);
            } catch (error) {
              invalid.next({
                envelope,
                failure: {
                  payload: envelope.value.value,
                  error,
                  stage: 'parse',
                  origin: envelope.origin,
                  key: envelope.key,
                },
              });
              return undefined;
            }
          }),
          filter((e): e is Envelope<RoutedLog> => e !== undefined),
          tap({
            next: (envelope) => {
              if (envelope.value.queue === undefined) {
                toClickHouse.next(envelope);
                return;
              }
              // Queued only once stored: vectorize flags the row, which must exist by then.
              toClickHouse.next(
                createEnvelope(envelope, {
                  onAck: () => toQueue.next(envelope),
                  onFail: (error) => envelope.fail(error),
                }),
              );
            },
            complete: () => {
              invalid.complete();
              // toQueue completes after the ClickHouse sink: its last acks still feed the queue.
              toClickHouse.complete();
            },
            error: (error: unknown) => {
              invalid.error(error);
              toClickHouse.error(error);
              toQueue.error(error);
            },
          }),
          ignoreElements(),
        );

        // Consumers first, so nothing routed is emitted before its branch listens.
        const graph$ = merge(deadLettering$, clickHouse$, queue$, routing$).pipe(ignoreElements());
        return thenClose(graph$, subscription);
      }),
    );
  },
});
