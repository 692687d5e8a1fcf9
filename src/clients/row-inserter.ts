/**
 * How a batch of encoded rows reaches a ClickHouse engine. Rows are JSON
 * arrays, one a line (JSONCompactEachRow's text). A server gets them through
 * @clickhouse/client; chdb through its raw insert, which hands the bytes to
 * the engine as they are: the client's path through chdb made a batch's body
 * one string (an insert of 20,000 rows is ~14 MB), copied it twice more, had
 * chdb parse it as part of the statement, and put the insert's settings on
 * chdb's shared session.
 */
import { Readable } from 'node:stream';
import { parseError, type ClickHouseClient } from '@clickhouse/client';

export interface RowInsert {
  readonly table: string;
  readonly columns: readonly string[];
  /** Rows, each a JSON array followed by "\n". */
  readonly body: Buffer;
  readonly settings: Readonly<Record<string, string | number>>;
}

export type RowInserter = (insert: RowInsert) => Promise<void>;

/**
 * CustomSeparated with the JSON escaping rule reads the same text as
 * JSONCompactEachRow, but is a raw format to the client: it sends the body as
 * given instead of expecting value arrays to serialize again.
 */
const CLIENT_ROW_FORMAT = {
  format_custom_escaping_rule: 'JSON',
  format_custom_field_delimiter: ',',
  format_custom_row_before_delimiter: '[',
  format_custom_row_after_delimiter: ']\n',
} as const;

const engineInserters = new WeakMap<ClickHouseClient, RowInserter>();

/** Registers an engine's own insert path for a client (engines.ts does, for chdb). */
export function useRowInserter(client: ClickHouseClient, inserter: RowInserter): void {
  engineInserters.set(client, inserter);
}

export function rowInserterFor(client: ClickHouseClient): RowInserter {
  return engineInserters.get(client) ?? clientRowInserter(client);
}

/** Through @clickhouse/client: what a server gets. */
export function clientRowInserter(client: ClickHouseClient): RowInserter {
  return async ({ table, columns, body, settings }) => {
    await client.insert({
      table,
      columns: columns as [string, ...string[]],
      // A fresh stream per call: a retry must send the body again.
      values: Readable.from([body], { objectMode: false }),
      format: 'CustomSeparated',
      clickhouse_settings: { ...CLIENT_ROW_FORMAT, ...settings },
    });
  };
}

/**
 * chdb's raw insert, with its errors reshaped as the client shapes a server's (code and type), so they classify alike.
 */
export function chdbRowInserter(
  rawInsert: (params: {
    table: string;
    columns: readonly string[];
    values: Buffer;
    format: 'JSONCompactEachRow';
    settings: Record<string, string | number>;
  }) => Promise<unknown>,
): RowInserter {
  return async ({ table, columns, body, settings }) => {
    try {
      await rawInsert({ table, columns, values: body, format: 'JSONCompactEachRow', settings: { ...settings } });
    } catch (error) {
      const mapped = parseError(error instanceof Error ? error.message : String(error));
      if (mapped !== error) mapped.cause = error;
      throw mapped;
    }
  };
}

/**
 * A row as JSON array text: a string, or its UTF-8 bytes. Bytes suit rows
 * that wait in a batch: they live outside the JS heap, so the garbage
 * collector neither copies nor marks them while they wait.
 */
export type EncodedRow = string | Buffer;

const NEWLINE = Buffer.from('\n');
/**
 * Rows given as strings are encoded this many at a time: pieces stay small strings, not one large-object string per
 * batch.
 */
const ROWS_PER_PIECE = 64;

/**
 * The body of an insert: each row followed by a newline. Rows packed by packRows lie in one buffer with their
 * newlines between them: a run of them in order is copied as one piece, not row by row.
 */
export function encodeRows(rows: readonly EncodedRow[]): Buffer {
  const pieces: Buffer[] = [];
  let length = 0;
  let strings: string[] = [];
  /** Byte rows back to back in one buffer, newline-separated: from run's first byte to runEnd (in that buffer). */
  let run: Buffer | null = null;
  let runEnd = 0;
  /** The whole buffer under the run, to read the byte after it; made once a row might continue the run. */
  let runBuffer: Uint8Array | null = null;
  const flushStrings = (): void => {
    if (strings.length === 0) return;
    const piece = Buffer.from(`${strings.join('\n')}\n`);
    pieces.push(piece);
    length += piece.length;
    strings = [];
  };
  const flushRun = (): void => {
    if (run === null) return;
    const piece = Buffer.from(run.buffer, run.byteOffset, runEnd - run.byteOffset);
    pieces.push(piece, NEWLINE);
    length += piece.length + 1;
    run = null;
    runBuffer = null;
  };
  for (const row of rows) {
    if (typeof row === 'string') {
      flushRun();
      strings.push(row);
      if (strings.length === ROWS_PER_PIECE) flushStrings();
      continue;
    }
    flushStrings();
    if (run !== null && row.buffer === run.buffer && row.byteOffset === runEnd + 1) {
      runBuffer ??= new Uint8Array(run.buffer);
      if (runBuffer[runEnd] === 10) {
        runEnd = row.byteOffset + row.length;
        continue;
      }
    }
    flushRun();
    run = row;
    runEnd = row.byteOffset + row.length;
  }
  flushStrings();
  flushRun();
  return Buffer.concat(pieces, length);
}

/**
 * Rows as UTF-8 bytes, one view each into a single buffer that holds them newline-separated, so that encodeRows
 * copies a run of them at once. Rows that wait for a batch are better as bytes than as strings: they lie outside
 * the JS heap, where the garbage collector neither copies nor marks them, and one buffer costs one allocation.
 */
export function packRows(rows: readonly string[]): Buffer[] {
  let size = 0;
  for (const row of rows) size += row.length + 1;
  // A UTF-16 unit takes 1 to 3 UTF-8 bytes: sized for ASCII, grown (rarely) when a row needs more.
  let packed = Buffer.allocUnsafeSlow(size);
  const ends = new Int32Array(rows.length);
  let at = 0;
  /** Bytes the rows after this one take if they are ASCII. */
  let rest = size;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as string;
    rest -= row.length + 1;
    // Only a row that might not fit is measured (near the end, or after wider characters used up the room).
    if (at + 3 * row.length + 1 > packed.length) {
      const needed = at + Buffer.byteLength(row) + 1 + rest;
      if (needed > packed.length) {
        const larger = Buffer.allocUnsafeSlow(Math.max(2 * packed.length, needed));
        packed.copy(larger, 0, 0, at);
        packed = larger;
      }
    }
    at += packed.write(row, at);
    ends[i] = at;
    packed[at++] = 10;
  }
  const views = new Array<Buffer>(rows.length);
  let start = 0;
  for (let i = 0; i < rows.length; i++) {
    const end = ends[i] as number;
    views[i] = packed.subarray(start, end);
    start = end + 1;
  }
  return views;
}
