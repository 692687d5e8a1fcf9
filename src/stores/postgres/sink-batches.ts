/**
 * sink_batches: the offset ranges an exactly-once sink has cut (README, Guarantees).
 * A batch's range is recorded before its insert; after a crash the replayed
 * records are re-cut into exactly the recorded ranges (`findCovering`), so
 * the retried insert carries the same deduplication token and ClickHouse
 * drops it. Recorded ranges of one partition therefore never overlap.
 */
import { z } from 'zod';
import { execute, notFound, parseInput, queryRows, RepositoryError, toSafeInteger, type Queryable } from './db.ts';

export type SinkBatchStatus = 'pending' | 'inserted';

export interface SinkBatchKey {
  readonly sink: string;
  readonly topic: string;
  readonly partition: number;
  readonly minOffset: number;
}

export interface SinkBatchRange extends SinkBatchKey {
  /** Inclusive. */
  readonly maxOffset: number;
  readonly rowCount: number;
}

export interface SinkBatch extends SinkBatchRange {
  readonly status: SinkBatchStatus;
  readonly createdAt: Date;
  readonly insertedAt: Date | null;
}

export interface SinkBatchRepository {
  /**
   * Records a batch as pending and returns the recorded batch. Recording the
   * same range again is a no-op; if a batch starting at the same offset was
   * recorded with a different range, that recorded batch is returned and the
   * caller must re-cut to it. A range overlapping another batch's is a conflict.
   */
  recordPending(range: SinkBatchRange): Promise<SinkBatch>;
  /** The insert succeeded; idempotent. not_found when never recorded. */
  markInserted(key: SinkBatchKey): Promise<SinkBatch>;
  /** The recorded batch whose [min, max] contains `offset`, if any. */
  findCovering(sink: string, topic: string, partition: number, offset: number): Promise<SinkBatch | null>;
  /**
   * Recorded batches (pending or inserted) of a partition that end at or after
   * `offset`, ascending: the ranges a replay starting at `offset` is re-cut into.
   */
  listFrom(sink: string, topic: string, partition: number, offset: number): Promise<SinkBatch[]>;
  /** Pending batches of a partition in offset order: what a restarted sink must re-cut. */
  listPending(sink: string, topic: string, partition: number): Promise<SinkBatch[]>;
  /**
   * Deletes inserted batches inserted before `olderThan` and returns how
   * many. Pending ones are kept whatever their age: a replay may still need them.
   */
  prune(olderThan: Date): Promise<number>;
}

interface SinkBatchRow {
  sink: string;
  topic: string;
  partition: number;
  min_offset: string;
  max_offset: string;
  status: SinkBatchStatus;
  row_count: number;
  created_at: Date;
  inserted_at: Date | null;
}

const COLUMNS = 'sink, topic, partition, min_offset, max_offset, status, row_count, created_at, inserted_at';

function toBatch(row: SinkBatchRow): SinkBatch {
  return {
    sink: row.sink,
    topic: row.topic,
    partition: row.partition,
    minOffset: toSafeInteger(row.min_offset, 'sink_batches.min_offset'),
    maxOffset: toSafeInteger(row.max_offset, 'sink_batches.max_offset'),
    status: row.status,
    rowCount: row.row_count,
    createdAt: row.created_at,
    insertedAt: row.inserted_at,
  };
}

const name = z.string().min(1);
const partition = z.int().min(0).max(2_147_483_647);
const offset = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
const keySchema = z.object({ sink: name, topic: name, partition, minOffset: offset });
const rangeSchema = keySchema
  .extend({ maxOffset: offset, rowCount: z.int().min(0).max(2_147_483_647) })
  .refine((r) => r.maxOffset >= r.minOffset, { message: 'must not be below minOffset', path: ['maxOffset'] });
const coveringSchema = z.object({ sink: name, topic: name, partition, offset });

export function createSinkBatchRepository(db: Queryable): SinkBatchRepository {
  return {
    async recordPending(range) {
      const r = parseInput(rangeSchema, range, 'sink batch');
      // One statement: insert unless another batch of the partition overlaps the
      // range, then return whatever is recorded at this min offset.
      const [row] = await queryRows<SinkBatchRow>(
        db,
        `WITH candidate AS (
           INSERT INTO sink_batches (sink, topic, partition, min_offset, max_offset, row_count, status)
           SELECT $1::text, $2::text, $3::integer, $4::bigint, $5::bigint, $6::integer, 'pending'
           WHERE NOT EXISTS (SELECT 1 FROM sink_batches
                             WHERE sink = $1 AND topic = $2 AND partition = $3
                               AND min_offset <> $4 AND min_offset <= $5 AND max_offset >= $4)
           ON CONFLICT (sink, topic, partition, min_offset) DO NOTHING
           RETURNING ${COLUMNS})
         SELECT * FROM candidate
         UNION ALL
         SELECT ${COLUMNS} FROM sink_batches
         WHERE sink = $1 AND topic = $2 AND partition = $3 AND min_offset = $4 AND NOT EXISTS (SELECT 1 FROM candidate)`,
        [r.sink, r.topic, r.partition, r.minOffset, r.maxOffset, r.rowCount],
      );
      if (row !== undefined) return toBatch(row);
      // Nothing came back: an overlapping batch blocked the insert, or (with two
      // writers, which one consumer per partition rules out) a batch at this
      // min committed after the statement's snapshot. A fresh read tells which.
      const [other] = await queryRows<SinkBatchRow>(
        db,
        `SELECT ${COLUMNS} FROM sink_batches WHERE sink = $1 AND topic = $2 AND partition = $3
           AND min_offset <= $5 AND max_offset >= $4 ORDER BY (min_offset = $4) DESC, min_offset LIMIT 1`,
        [r.sink, r.topic, r.partition, r.minOffset, r.maxOffset],
      );
      if (other !== undefined && toSafeInteger(other.min_offset, 'sink_batches.min_offset') === r.minOffset)
        return toBatch(other);
      const where = other === undefined ? '' : ` [${other.min_offset}, ${other.max_offset}]`;
      throw new RepositoryError(
        'conflict',
        `batch [${r.minOffset}, ${r.maxOffset}] of ${r.sink} ${r.topic}/${r.partition} overlaps the recorded batch${where}; replays must be re-cut to the recorded ranges (listFrom)`,
        { sink: r.sink, topic: r.topic, partition: r.partition, minOffset: r.minOffset, maxOffset: r.maxOffset },
      );
    },

    async markInserted(key) {
      const k = parseInput(keySchema, key, 'sink batch key');
      const [row] = await queryRows<SinkBatchRow>(
        db,
        `UPDATE sink_batches SET status = 'inserted', inserted_at = COALESCE(inserted_at, now())
         WHERE sink = $1 AND topic = $2 AND partition = $3 AND min_offset = $4 RETURNING ${COLUMNS}`,
        [k.sink, k.topic, k.partition, k.minOffset],
      );
      if (row === undefined) throw notFound('sink batch', `${k.sink} ${k.topic}/${k.partition}@${k.minOffset}`);
      return toBatch(row);
    },

    async findCovering(sink, topic, partitionNumber, offsetNumber) {
      const c = parseInput(
        coveringSchema,
        { sink, topic, partition: partitionNumber, offset: offsetNumber },
        'covering lookup',
      );
      // The greatest min_offset at or below the offset is the only candidate, since ranges never overlap.
      const [row] = await queryRows<SinkBatchRow>(
        db,
        `SELECT ${COLUMNS} FROM sink_batches WHERE sink = $1 AND topic = $2 AND partition = $3 AND min_offset <= $4
         ORDER BY min_offset DESC LIMIT 1`,
        [c.sink, c.topic, c.partition, c.offset],
      );
      return row !== undefined && toSafeInteger(row.max_offset, 'sink_batches.max_offset') >= c.offset
        ? toBatch(row)
        : null;
    },

    async listFrom(sink, topic, partitionNumber, offsetNumber) {
      const c = parseInput(
        coveringSchema,
        { sink, topic, partition: partitionNumber, offset: offsetNumber },
        'replay lookup',
      );
      const rows = await queryRows<SinkBatchRow>(
        db,
        `SELECT ${COLUMNS} FROM sink_batches WHERE sink = $1 AND topic = $2 AND partition = $3 AND max_offset >= $4
         ORDER BY min_offset`,
        [c.sink, c.topic, c.partition, c.offset],
      );
      return rows.map(toBatch);
    },

    async listPending(sink, topic, partitionNumber) {
      const c = parseInput(
        z.object({ sink: name, topic: name, partition }),
        { sink, topic, partition: partitionNumber },
        'pending lookup',
      );
      const rows = await queryRows<SinkBatchRow>(
        db,
        `SELECT ${COLUMNS} FROM sink_batches WHERE sink = $1 AND topic = $2 AND partition = $3 AND status = 'pending'
         ORDER BY min_offset`,
        [c.sink, c.topic, c.partition],
      );
      return rows.map(toBatch);
    },

    async prune(olderThan) {
      const before = parseInput(z.date(), olderThan, 'prune time');
      return execute(db, `DELETE FROM sink_batches WHERE status = 'inserted' AND inserted_at < $1`, [before]);
    },
  };
}
