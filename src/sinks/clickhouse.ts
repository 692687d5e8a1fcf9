/**
 * Batched inserts into ClickHouse (a server or chdb: the same client), exactly
 * once (README, Guarantees: delivery per sink), as the ClickHouse Kafka Connect sink does it:
 *
 * - chunks are cut per partition (at the recorded ranges, see cutToLedger) and
 *   batched by the shared `batch` operator (src/operators/batch.ts); each
 *   batch's offset range is recorded in a ledger (PostgreSQL) BEFORE it is inserted;
 * - the insert carries insert_deduplication_token = table-topic-partition-min-max;
 * - after a crash, replayed records are re-cut into exactly the recorded
 *   ranges, so the retried insert carries the same token and ClickHouse drops
 *   it (the dependent views too, with
 *   deduplicate_blocks_in_dependent_materialized_views=1);
 * - a chunk is emitted (for the next sink or its ack) only after every one
 *   of its records is inserted or dead-lettered;
 * - a batch rejected for its data is bisected, deterministically, so only the
 *   bad rows go to the dead-letter sink and a replay bisects the same way.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import {
  asyncScheduler,
  concatMap,
  defer,
  from,
  groupBy,
  mergeMap,
  type ObservableInput,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';
import type { Chunk } from '../core/chunk.ts';
import { classify, ErrorCodes, LogflowError, type ClassificationRule } from '../core/errors.ts';
import { retry, RETRY_UNTIL_STOPPED, type RetryOptions } from '../core/retry.ts';
import { batch } from '../operators/batch.ts';
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
  /** The record's offset in its partition: batches and their ledger ranges are cut by it. */
  readonly offsetOf: (value: T) => number;
  /** The record's key, for its dead letter; null by default. */
  readonly keyOf?: (value: T) => string | null;
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

/** Progress of one chunk through the sink: emitted once every piece holding its records is written. */
interface ChunkProgress<T> {
  readonly chunk: Chunk<T>;
  pending: number;
}

/** A run of one partition's records to be written together (part of a chunk, or a recorded range's records). */
interface Piece<T> {
  readonly records: readonly T[];
  readonly bytes: number;
  /** Set when replayed records were re-cut into a range recorded before a crash: written alone, as exactly it. */
  readonly recorded: OffsetRange | undefined;
  readonly chunks: ChunkProgress<T>[];
  /** The partition's epoch it was cut in; a rewind starts a new one and drops what the old one left unwritten. */
  readonly epoch: number;
}

const DEFAULTS = { maxRecords: 10_000, maxBytes: 16 * 1024 * 1024, maxWaitMs: 1_000, concurrency: 4 };

const DEFAULT_RETRY: RetryOptions = RETRY_UNTIL_STOPPED;

/**
 * Writes chunks into ClickHouse and emits each chunk once all its records are
 * stored (rows ClickHouse refuses are dead-lettered first). It does not ack:
 * the chunk may have further sinks to reach, and whoever ends the graph acks.
 */
export function clickHouseSink<T>(
  client: ClickHouseClient,
  options: ClickHouseSinkOptions<T>,
): OperatorFunction<Chunk<T>, Chunk<T>> {
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
      groupBy((chunk) => `${chunk.topic}\u0000${chunk.partition}`),
      mergeMap(
        (partition$) =>
          defer(() => {
            const cutter = new LedgerCutter<T>(options, maxRecords);
            return partition$.pipe(
              concatMap((chunk) => cutter.cut(chunk)),
              // A recorded range weighs more than any batch may, so the batch before it is emitted and it travels
              // alone: a fresh batch never runs into a recorded range, and a replayed one is written as recorded.
              batch<Piece<T>>({
                maxRecords,
                maxBytes,
                maxWaitMs,
                scheduler,
                countOf: (piece) => piece.records.length,
                sizeOf: (piece) => (piece.recorded === undefined ? piece.bytes : Number.POSITIVE_INFINITY),
              }),
              concatMap((pieces) => cutter.write(pieces, writer)),
            );
          }),
        options.concurrency ?? DEFAULTS.concurrency,
      ),
    );
}

/**
 * Cuts one partition's chunks into pieces the ledger allows. Replayed records
 * that fall in a recorded range are held until the range is complete and
 * become one piece of exactly that range; everything else is cut by count
 * (and batched downstream by count, bytes or time). When the partition
 * rewinds (after a rebalance kafkajs re-reads uncommitted records), what is
 * cut but unwritten is dropped (its records come again), the write under way
 * finishes, and the recorded ranges are read again before the replay is cut,
 * so no batch overlaps a recorded one.
 */
class LedgerCutter<T> {
  private ranges: OffsetRange[] | undefined;
  private lastOffset = -1;
  private epoch = 0;
  /** The recorded range being completed, and its records so far. */
  private held: { range: OffsetRange; records: T[]; bytes: number; chunks: ChunkProgress<T>[] } | undefined;
  private writing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly options: ClickHouseSinkOptions<T>,
    private readonly maxRecords: number,
  ) {}

  cut(chunk: Chunk<T>): ObservableInput<Piece<T>> {
    const rewound = chunk.records.length > 0 && this.options.offsetOf(chunk.records[0]!) <= this.lastOffset;
    if (this.ranges === undefined || rewound) {
      if (rewound) {
        this.epoch += 1;
        this.held = undefined;
      }
      if (chunk.records.length === 0) return [this.piece(chunk, chunk.records, 0)];
      const offset = this.options.offsetOf(chunk.records[0]!);
      const loaded = this.writing
        .catch(() => undefined)
        .then(() => this.options.ledger.rangesFrom(this.options.sink, chunk.topic, chunk.partition, offset))
        .then((ranges) => {
          this.ranges = ranges;
          return this.cutLoaded(chunk);
        });
      return from(loaded).pipe(mergeMap((pieces) => pieces));
    }
    return this.cutLoaded(chunk);
  }

  private cutLoaded(chunk: Chunk<T>): Piece<T>[] {
    const { records } = chunk;
    const progress: ChunkProgress<T> = { chunk, pending: 0 };
    const pieces: Piece<T>[] = [];
    if (records.length === 0) return [this.piece(chunk, records, 0)];
    const offsetOf = this.options.offsetOf;
    const bytesPer = chunk.sizeBytes / records.length;
    this.lastOffset = offsetOf(records[records.length - 1]!);
    const ranges = this.ranges!;
    // The common case, nothing recorded ahead: the chunk as is (cut by count only when larger than a batch).
    if (ranges.length === 0 && this.held === undefined) {
      for (let i = 0; i < records.length; i += this.maxRecords) {
        const part = records.length <= this.maxRecords ? records : records.slice(i, i + this.maxRecords);
        progress.pending += 1;
        pieces.push(this.freshPiece(part, part.length * bytesPer, progress));
      }
      return pieces;
    }
    let run: T[] = [];
    const endRun = () => {
      if (run.length === 0) return;
      progress.pending += 1;
      pieces.push(this.freshPiece(run, run.length * bytesPer, progress));
      run = [];
    };
    const release = () => {
      const held = this.held!;
      this.held = undefined;
      pieces.push({
        records: held.records,
        bytes: held.bytes,
        recorded: held.range,
        chunks: held.chunks,
        epoch: this.epoch,
      });
    };
    for (const record of records) {
      const offset = offsetOf(record);
      // A recorded range whose end never came (compaction) is written as far as it got.
      if (this.held !== undefined && offset > this.held.range.maxOffset) release();
      if (this.held === undefined) {
        while (ranges.length > 0 && ranges[0]!.maxOffset < offset) ranges.shift();
        const next = ranges[0];
        if (next !== undefined && next.minOffset <= offset) {
          endRun();
          ranges.shift();
          this.held = { range: next, records: [], bytes: 0, chunks: [] };
        }
      }
      const held = this.held;
      if (held === undefined) {
        run.push(record);
        if (run.length >= this.maxRecords) endRun();
        continue;
      }
      held.records.push(record);
      held.bytes += bytesPer;
      // Counted as soon as the chunk joins the range, not when the range completes: a piece of this chunk written
      // meanwhile must not complete the chunk while some of its records wait for the range's end.
      if (held.chunks[held.chunks.length - 1] !== progress) {
        held.chunks.push(progress);
        progress.pending += 1;
      }
      if (offset >= held.range.maxOffset) release();
    }
    endRun();
    return pieces;
  }

  private freshPiece(records: readonly T[], bytes: number, progress: ChunkProgress<T>): Piece<T> {
    return { records, bytes, recorded: undefined, chunks: [progress], epoch: this.epoch };
  }

  /** A chunk with no records left to store: it passes once what was cut before it is written. */
  private piece(chunk: Chunk<T>, records: readonly T[], bytes: number): Piece<T> {
    return { records, bytes, recorded: undefined, chunks: [{ chunk, pending: 1 }], epoch: this.epoch };
  }

  /** Writes one batch of pieces; emits the chunks it completes. */
  write(pieces: readonly Piece<T>[], writer: BatchWriter<T>): ObservableInput<Chunk<T>> {
    const current = pieces.filter((p) => p.epoch === this.epoch);
    const records: T[] = [];
    for (const piece of current) for (const r of piece.records) records.push(r);
    const recorded = current.length === 1 ? current[0]!.recorded : undefined;
    const done = (): Chunk<T>[] => {
      const completed: Chunk<T>[] = [];
      for (const piece of current) {
        for (const progress of piece.chunks) {
          progress.pending -= 1;
          if (progress.pending === 0) completed.push(progress.chunk);
        }
      }
      return completed;
    };
    if (records.length === 0) return done();
    const first = current[0]!.chunks[0]!.chunk;
    const writing = writer.write({ topic: first.topic, partition: first.partition, records, recorded }).then(done);
    this.writing = writing;
    return from(writing).pipe(mergeMap((chunks) => chunks));
  }
}

interface CutBatch<T> {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly T[];
  /** Set when replayed records were re-cut into a range recorded before a crash. */
  readonly recorded: OffsetRange | undefined;
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
    const { offsetOf } = this.options;
    const first = batch.records[0]!;
    const last = batch.records[batch.records.length - 1]!;
    let range: OffsetRange = batch.recorded ?? {
      topic: batch.topic,
      partition: batch.partition,
      minOffset: offsetOf(first),
      maxOffset: offsetOf(last),
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
        const rest = records.filter((r) => offsetOf(r) > recorded.maxOffset);
        records = records.filter((r) => offsetOf(r) <= recorded.maxOffset);
        range = recorded;
        const head = await this.insertRange(range, records);
        const tail = await this.write({ ...batch, records: rest, recorded: undefined });
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

  private async insertRange(range: OffsetRange, records: readonly T[]): Promise<InsertedBatch> {
    const token = `${this.options.table}-${range.topic}-${range.partition}-${range.minOffset}-${range.maxOffset}`;
    const bad: Array<{ record: T; error: unknown }> = [];
    const rows: EncodedRow[] = [];
    const convertible: T[] = [];
    for (const record of records) {
      try {
        const row = this.options.toRow(record);
        rows.push(Array.isArray(row) ? JSON.stringify(row) : row);
        convertible.push(record);
      } catch (error) {
        bad.push({ record, error });
      }
    }
    await this.insertBisecting(convertible, rows, token, bad);
    if (bad.length > 0) {
      const payloadOf = this.options.deadLetterPayload ?? ((value: T) => value);
      const { offsetOf, keyOf } = this.options;
      await this.withRetry(() =>
        this.options.deadLetter(
          bad.map(({ record, error }) => ({
            payload: payloadOf(record),
            error,
            stage: 'sink',
            origin: { topic: range.topic, partition: range.partition, offset: offsetOf(record) },
            key: keyOf === undefined ? null : keyOf(record),
          })),
        ),
      );
    }
    await this.withRetry(() => this.options.ledger.markInserted(this.options.sink, range));
    const result = { range, rows: records.length - bad.length, deadLettered: bad.length, token };
    this.options.onInserted?.(result);
    return result;
  }

  /**
   * Halves a rejected batch until each bad row stands alone; sub-batch tokens derive from the path, so a replay bisects
   * identically.
   */
  private async insertBisecting(
    records: T[],
    rows: EncodedRow[],
    token: string,
    bad: Array<{ record: T; error: unknown }>,
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
