/**
 * Batched inserts into ClickHouse (a server or chdb: the same client), exactly
 * once (README, Guarantees: delivery per sink), as the ClickHouse Kafka Connect sink does it:
 *
 * - batches are cut per partition and each batch's offset range is recorded
 *   in a ledger (PostgreSQL) BEFORE it is inserted;
 * - the insert carries insert_deduplication_token = table-topic-partition-min-max;
 * - after a crash, replayed records are re-cut into exactly the recorded
 *   ranges, so the retried insert carries the same token and ClickHouse drops
 *   it (the dependent views too, with
 *   deduplicate_blocks_in_dependent_materialized_views=1);
 * - records are acked only after their insert succeeded;
 * - a batch rejected for its data is bisected, deterministically, so only the
 *   bad rows go to the dead-letter sink and a replay bisects the same way.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import {
  asyncScheduler,
  groupBy,
  mergeMap,
  Observable,
  type OperatorFunction,
  type SchedulerLike,
  type Subscription,
} from 'rxjs';
import type { Envelope } from '../core/envelope.ts';
import { classify, ErrorCodes, LogflowError, type ClassificationRule } from '../core/errors.ts';
import { retry, RETRY_UNTIL_STOPPED, type RetryOptions } from '../core/retry.ts';
import type { Failure } from './dead-letter.ts';
import { encodeRows, rowInserterFor, type EncodedRow, type RowInserter } from '../clients/row-inserter.ts';

export interface OffsetRange {
  readonly topic: string;
  readonly partition: number;
  readonly minOffset: number;
  readonly maxOffset: number;
}

/** Where batch ranges are recorded before their insert (PostgreSQL's sink_batches). */
export interface BatchLedger {
  /** Recorded ranges of a partition that end at or after `offset`, ascending. */
  rangesFrom(sink: string, topic: string, partition: number, offset: number): Promise<OffsetRange[]>;
  /** Records a range; returns the range recorded for that start (an earlier recording wins). */
  recordPending(sink: string, range: OffsetRange, rowCount: number): Promise<OffsetRange>;
  markInserted(sink: string, range: OffsetRange): Promise<void>;
}

export interface ClickHouseSinkOptions<T> {
  /** Names this sink in the ledger; two sinks into different tables need different names. */
  readonly sink: string;
  readonly table: string;
  readonly columns: readonly string[];
  /**
   * The row's values in column order, or that array's JSON text (or its UTF-8 bytes) already
   * encoded (a pipeline that encodes early lets the value it came from die
   * young instead of waiting out the batch).
   */
  readonly toRow: (value: T) => unknown[] | EncodedRow;
  /** What a rejected row's dead letter carries; the value itself by default. */
  readonly deadLetterPayload?: (value: T) => unknown;
  readonly ledger: BatchLedger;
  readonly deadLetter: (failures: readonly Failure[]) => Promise<void>;
  readonly maxRecords?: number;
  readonly maxBytes?: number;
  readonly maxWaitMs?: number;
  /** Partitions written concurrently. */
  readonly concurrency?: number;
  readonly retry?: Partial<RetryOptions>;
  readonly scheduler?: SchedulerLike;
  readonly onInserted?: (info: InsertedBatch) => void;
}

export interface InsertedBatch {
  readonly range: OffsetRange;
  readonly rows: number;
  readonly deadLettered: number;
  readonly token: string;
}

/**
 * ClickHouse error codes, sorted by what they are about. A code in none of
 * these lists is treated as possibly caused by the data (see insertBisecting):
 * ClickHouse has hundreds of codes, and a row it cannot take must never stop
 * ingest because its code was not foreseen here (a lone surrogate's code 25
 * once did).
 */
/** Rows the server cannot take: retrying the same data cannot help. Listed so their errors read SINK_REJECTED. */
const DATA_ERROR_CODES = new Set([
  '6',
  '26',
  '27',
  '38',
  '41',
  '53',
  '69',
  '70',
  '72',
  '117',
  '131',
  '321',
  '376',
  '395',
  '407',
  '1001',
]);
/** A server that is busy, restarting or out of resources: worth retrying. */
const TRANSIENT_CODES = new Set([
  '159',
  '164',
  '202',
  '203',
  '209',
  '210',
  '241',
  '242',
  '243',
  '252',
  '319',
  '425',
  '999',
]);
/**
 * The table, the statement or the credentials are wrong (a missing migration,
 * a wrong database or user): no row is to blame, so the pipeline stops and says so.
 * 10 NOT_FOUND_COLUMN_IN_BLOCK, 16 NO_SUCH_COLUMN_IN_TABLE, 47 UNKNOWN_IDENTIFIER, 60 UNKNOWN_TABLE,
 * 62 SYNTAX_ERROR, 73 UNKNOWN_FORMAT, 81 UNKNOWN_DATABASE, 115 UNKNOWN_SETTING, 192 UNKNOWN_USER,
 * 193 WRONG_PASSWORD, 194 REQUIRED_PASSWORD, 195 IP_ADDRESS_NOT_ALLOWED, 497 ACCESS_DENIED, 516 AUTHENTICATION_FAILED.
 */
const SCHEMA_ERROR_CODES = new Set([
  '10',
  '16',
  '47',
  '60',
  '62',
  '73',
  '81',
  '115',
  '192',
  '193',
  '194',
  '195',
  '497',
  '516',
]);

export const clickhouseErrorRules: readonly ClassificationRule[] = [
  { match: (e) => DATA_ERROR_CODES.has(String(e.code)), code: ErrorCodes.SINK_REJECTED, retriable: false },
  { match: (e) => TRANSIENT_CODES.has(String(e.code)), code: ErrorCodes.SINK_UNAVAILABLE, retriable: true },
  { match: (e) => SCHEMA_ERROR_CODES.has(String(e.code)), code: ErrorCodes.CONFIG_INVALID, retriable: false },
  {
    match: (e) =>
      /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|socket hang up|Timeout error|network/i.test(
        `${String(e.code)} ${e.message}`,
      ),
    code: ErrorCodes.SINK_UNAVAILABLE,
    retriable: true,
  },
];

/** Failures that are about the connection, the server, the schema or the process, never about one row. */
const NOT_ABOUT_A_ROW: ReadonlySet<string> = new Set([
  ErrorCodes.SINK_UNAVAILABLE,
  ErrorCodes.CONFIG_INVALID,
  ErrorCodes.SHUTDOWN,
  ErrorCodes.TIMEOUT,
]);

interface CutBatch<T> {
  readonly records: Envelope<T>[];
  /** Set when replayed records were re-cut into a range recorded before a crash. */
  readonly recorded: OffsetRange | undefined;
}

const DEFAULTS = { maxRecords: 10_000, maxBytes: 16 * 1024 * 1024, maxWaitMs: 1_000, concurrency: 4 };

const DEFAULT_RETRY: RetryOptions = RETRY_UNTIL_STOPPED;

export function clickHouseSink<T>(
  client: ClickHouseClient,
  options: ClickHouseSinkOptions<T>,
): OperatorFunction<Envelope<T>, InsertedBatch> {
  const maxRecords = options.maxRecords ?? DEFAULTS.maxRecords;
  const maxBytes = options.maxBytes ?? DEFAULTS.maxBytes;
  const maxWaitMs = options.maxWaitMs ?? DEFAULTS.maxWaitMs;
  if (!(maxRecords >= 1) || !(maxBytes >= 1) || !(maxWaitMs >= 0))
    throw new RangeError('clickHouseSink: batch bounds must be positive');
  const retryOptions: RetryOptions = { ...DEFAULT_RETRY, ...options.retry };
  const scheduler = options.scheduler ?? asyncScheduler;
  const writer = new BatchWriter(client, options, retryOptions);

  return (source) =>
    source.pipe(
      groupBy((e) => `${e.origin.topic}\u0000${e.origin.partition}`),
      mergeMap(
        (partition$) =>
          partition$.pipe(
            writePartition<T>(
              { maxRecords, maxBytes, maxWaitMs, scheduler, ledger: options.ledger, sink: options.sink },
              writer,
            ),
          ),
        options.concurrency ?? DEFAULTS.concurrency,
      ),
    );
}

/**
 * Cuts one partition's records into batches and writes them one at a time.
 * Replayed records that fall in a recorded range are held until the range is
 * complete and written as exactly that range; everything after is cut by
 * count, bytes or time. When the partition rewinds (after a rebalance kafkajs
 * re-reads uncommitted records), the unwritten batch is dropped (its records
 * come again), the writes under way finish, and the recorded ranges are read
 * again before the replay is cut, so no batch overlaps a recorded one.
 */
function writePartition<T>(
  options: {
    maxRecords: number;
    maxBytes: number;
    maxWaitMs: number;
    scheduler: SchedulerLike;
    ledger: BatchLedger;
    sink: string;
  },
  writer: BatchWriter<T>,
): OperatorFunction<Envelope<T>, InsertedBatch> {
  return (source) =>
    new Observable<InsertedBatch>((subscriber) => {
      let ranges: OffsetRange[] | undefined;
      let loading = false;
      const waiting: Envelope<T>[] = [];
      let current: Envelope<T>[] = [];
      let currentBytes = 0;
      let currentRange: OffsetRange | undefined;
      let lastOffset = -1;
      let timer: Subscription | undefined;
      let sourceDone = false;
      let writes: Promise<void> = Promise.resolve();

      const fail = (error: unknown) => subscriber.error(error);

      const emit = () => {
        timer?.unsubscribe();
        timer = undefined;
        if (current.length === 0) return;
        const batch: CutBatch<T> = { records: current, recorded: currentRange };
        current = [];
        currentBytes = 0;
        currentRange = undefined;
        writes = writes.then(async () => {
          const result = await writer.write(batch);
          if (!subscriber.closed) subscriber.next(result);
        });
        writes.catch(fail);
      };

      const reload = (offset: number, topic: string, partition: number) => {
        loading = true;
        ranges = undefined;
        writes
          .then(() => options.ledger.rangesFrom(options.sink, topic, partition, offset))
          .then((loaded) => {
            ranges = loaded;
            loading = false;
            const replay = waiting.splice(0);
            for (const w of replay) add(w);
            if (sourceDone && !loading) finish();
          })
          .catch(fail);
      };

      const add = (e: Envelope<T>) => {
        const offset = e.origin.offset;
        // While the ledger is read, records queue in order; a rewind among them is handled on replay.
        if (loading) {
          waiting.push(e);
          return;
        }
        if (offset <= lastOffset) {
          // A rewind: what is unwritten comes again; start over from the ledger.
          timer?.unsubscribe();
          timer = undefined;
          current = [];
          currentBytes = 0;
          currentRange = undefined;
          lastOffset = offset - 1;
          waiting.push(e);
          reload(offset, e.origin.topic, e.origin.partition);
          return;
        }
        lastOffset = offset;
        if (currentRange !== undefined && offset > currentRange.maxOffset) emit();
        if (current.length === 0) {
          while (ranges !== undefined && ranges.length > 0 && ranges[0]!.maxOffset < offset) ranges.shift();
          const next = ranges?.[0];
          currentRange = next !== undefined && next.minOffset <= offset ? next : undefined;
          if (currentRange !== undefined) ranges!.shift();
        }
        if (currentRange === undefined && current.length > 0 && currentBytes + e.sizeBytes > options.maxBytes) emit();
        current.push(e);
        currentBytes += e.sizeBytes;
        if (currentRange !== undefined) {
          if (offset >= currentRange.maxOffset) emit();
          return;
        }
        // A fresh batch must not run into a recorded range: it ends where that range begins.
        const nextRecorded = ranges?.[0];
        if (
          current.length >= options.maxRecords ||
          currentBytes >= options.maxBytes ||
          (nextRecorded !== undefined && offset + 1 >= nextRecorded.minOffset)
        ) {
          emit();
        } else if (current.length === 1 && timer === undefined) {
          timer = options.scheduler.schedule(() => {
            timer = undefined;
            if (currentRange === undefined) emit();
          }, options.maxWaitMs);
        }
      };

      const finish = () => {
        // A replayed range that never completed is left unacked: it is replayed again next time.
        if (currentRange === undefined) emit();
        writes.then(() => subscriber.complete(), fail);
      };

      const subscription = source.subscribe({
        next: (e) => {
          if (ranges === undefined && !loading) {
            lastOffset = e.origin.offset - 1;
            waiting.push(e);
            reload(e.origin.offset, e.origin.topic, e.origin.partition);
            return;
          }
          add(e);
        },
        error: fail,
        complete: () => {
          sourceDone = true;
          if (!loading) finish();
        },
      });
      return () => {
        timer?.unsubscribe();
        subscription.unsubscribe();
      };
    });
}

class BatchWriter<T> {
  private readonly insertRows: RowInserter;

  constructor(
    client: ClickHouseClient,
    private readonly options: ClickHouseSinkOptions<T>,
    private readonly retryOptions: RetryOptions,
  ) {
    this.insertRows = rowInserterFor(client);
  }

  async write(batch: CutBatch<T>): Promise<InsertedBatch> {
    const first = batch.records[0]!;
    const last = batch.records[batch.records.length - 1]!;
    let range: OffsetRange = batch.recorded ?? {
      topic: first.origin.topic,
      partition: first.origin.partition,
      minOffset: first.origin.offset,
      maxOffset: last.origin.offset,
    };
    let records = batch.records;
    if (batch.recorded === undefined) {
      const recorded = await this.withRetry(() =>
        this.options.ledger.recordPending(this.options.sink, range, records.length),
      );
      if (recorded.maxOffset !== range.maxOffset) {
        // Another member recorded this start first (a rebalance race): follow its range.
        if (recorded.maxOffset > range.maxOffset) {
          throw new LogflowError(
            ErrorCodes.INTERNAL,
            `batch ${describeRange(range)} conflicts with recorded ${describeRange(recorded)}; restart to re-read the partition`,
            { stage: 'sink' },
          );
        }
        const rest = records.filter((r) => r.origin.offset > recorded.maxOffset);
        records = records.filter((r) => r.origin.offset <= recorded.maxOffset);
        range = recorded;
        const head = await this.insertRange(range, records);
        const tail = await this.write({ records: rest, recorded: undefined });
        return {
          range: head.range,
          rows: head.rows + tail.rows,
          deadLettered: head.deadLettered + tail.deadLettered,
          token: head.token,
        };
      }
    }
    return this.insertRange(range, records);
  }

  private async insertRange(range: OffsetRange, records: Envelope<T>[]): Promise<InsertedBatch> {
    const token = `${this.options.table}-${range.topic}-${range.partition}-${range.minOffset}-${range.maxOffset}`;
    const bad: Array<{ record: Envelope<T>; error: unknown }> = [];
    const rows: EncodedRow[] = [];
    const convertible: Envelope<T>[] = [];
    for (const record of records) {
      try {
        const row = this.options.toRow(record.value);
        rows.push(Array.isArray(row) ? JSON.stringify(row) : row);
        convertible.push(record);
      } catch (error) {
        bad.push({ record, error });
      }
    }
    await this.insertBisecting(convertible, rows, token, bad);
    if (bad.length > 0) {
      const payloadOf = this.options.deadLetterPayload ?? ((value: T) => value);
      await this.withRetry(() =>
        this.options.deadLetter(
          bad.map(({ record, error }) => ({
            payload: payloadOf(record.value),
            error,
            stage: 'sink',
            origin: record.origin,
            key: record.key,
          })),
        ),
      );
    }
    await this.withRetry(() => this.options.ledger.markInserted(this.options.sink, range));
    for (const r of records) r.ack();
    const result = { range, rows: records.length - bad.length, deadLettered: bad.length, token };
    this.options.onInserted?.(result);
    return result;
  }

  /**
   * Halves a rejected batch until each bad row stands alone; sub-batch tokens derive from the path, so a replay bisects
   * identically.
   */
  private async insertBisecting(
    records: Envelope<T>[],
    rows: EncodedRow[],
    token: string,
    bad: Array<{ record: Envelope<T>; error: unknown }>,
  ): Promise<void> {
    if (rows.length === 0) return;
    const body = encodeRows(rows);
    try {
      await this.withRetry(() =>
        this.insertRows({
          table: this.options.table,
          columns: this.options.columns,
          body,
          settings: { insert_deduplication_token: token, deduplicate_blocks_in_dependent_materialized_views: 1 },
        }),
      );
    } catch (error) {
      const classified = classify(error, clickhouseErrorRules, 'sink');
      if (classified.retriable || NOT_ABOUT_A_ROW.has(classified.code)) throw this.notAboutARow(classified);
      // Anything else may be the data's fault, whatever its code: halve until the row to blame stands alone.
      if (rows.length === 1) {
        bad.push({
          record: records[0]!,
          error: classified.code === ErrorCodes.SINK_REJECTED ? classified : rejected(classified),
        });
        return;
      }
      const half = Math.ceil(rows.length / 2);
      await this.insertBisecting(records.slice(0, half), rows.slice(0, half), `${token}-a`, bad);
      await this.insertBisecting(records.slice(half), rows.slice(half), `${token}-b`, bad);
    }
  }

  /** The error that stops the pipeline, saying that no row was to blame and what was. */
  private notAboutARow(error: LogflowError): LogflowError {
    if (error.code === ErrorCodes.SHUTDOWN) return error;
    const what =
      error.code === ErrorCodes.CONFIG_INVALID
        ? 'the table, the statement or the credentials'
        : 'the connection or the server';
    return new LogflowError(
      error.code,
      `insert into ${this.options.table} failed because of ${what}, not of a row: ${error.message}`,
      {
        retriable: error.retriable,
        stage: 'sink',
        cause: error,
      },
    );
  }

  private withRetry<R>(fn: () => Promise<R>): Promise<R> {
    return retry(async () => {
      try {
        return await fn();
      } catch (error) {
        throw classify(error, clickhouseErrorRules, 'sink');
      }
    }, this.retryOptions);
  }
}

/** A row's failure under an unforeseen code, as the dead letter reports it: rejected, with the engine's own message. */
function rejected(error: LogflowError): LogflowError {
  return new LogflowError(ErrorCodes.SINK_REJECTED, error.message, { stage: 'sink', cause: error.cause ?? error });
}

function describeRange(r: OffsetRange): string {
  return `${r.topic}/${r.partition}[${r.minOffset}..${r.maxOffset}]`;
}
