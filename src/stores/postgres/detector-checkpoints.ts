/**
 * detector_checkpoints: the anomaly detector's state per input partition
 * (open windows, watermarks) and the offset to resume from. The detector
 * writes its alerts and its checkpoint in one transaction — `saveIn` with the
 * transaction's client, or `save` on repositories bound to it — so a restart
 * neither loses an alert nor raises it twice.
 *
 * State kept as a changelog (`saveChanges`) puts the small part in the
 * checkpoint row and one entry per key in detector_checkpoint_entries
 * (sql/postgres/004_detector_checkpoint_entries.sql); a save rewrites only the
 * entries that changed, in the same transaction as the row.
 */
import { z } from 'zod';
import { execute, parseInput, queryRows, jsonParam, toSafeInteger, type JsonValue, type Queryable } from './db.ts';

export interface CheckpointKey {
  readonly pipeline: string;
  readonly topic: string;
  readonly partition: number;
}

export interface CheckpointInput extends CheckpointKey {
  /** The next offset to read (Kafka's committed-offset convention). */
  readonly nextOffset: number;
  readonly state: JsonValue;
}

export interface DetectorCheckpoint extends CheckpointInput {
  readonly updatedAt: Date;
}

/** The entries a changelog checkpoint changes; removals apply before upserts. */
export interface CheckpointEntryChanges {
  /** Drop every entry of the partition first: the state starts a new changelog. */
  readonly replaceAll: boolean;
  readonly removed: readonly string[];
  readonly upserts: ReadonlyMap<string, JsonValue>;
}

export interface DetectorCheckpointRepository {
  save(checkpoint: CheckpointInput): Promise<DetectorCheckpoint>;
  /** `save` on a caller's client, typically inside withTransaction next to the alert writes. */
  saveIn(client: Queryable, checkpoint: CheckpointInput): Promise<DetectorCheckpoint>;
  load(pipeline: string, topic: string, partition: number): Promise<DetectorCheckpoint | null>;
  /**
   * Saves the checkpoint row and applies `changes` to the partition's entries;
   * run it inside a transaction (repositories bound to one) so both land
   * together. Returns the bytes of state written.
   */
  saveChanges(checkpoint: CheckpointInput, changes: CheckpointEntryChanges): Promise<number>;
  /** The partition's entries, by key. */
  loadEntries(pipeline: string, topic: string, partition: number): Promise<Map<string, JsonValue>>;
}

interface CheckpointRow {
  pipeline: string;
  topic: string;
  partition: number;
  next_offset: string;
  state: JsonValue;
  updated_at: Date;
}

const COLUMNS = 'pipeline, topic, partition, next_offset, state, updated_at';

const toCheckpoint = (row: CheckpointRow): DetectorCheckpoint => ({
  pipeline: row.pipeline,
  topic: row.topic,
  partition: row.partition,
  nextOffset: toSafeInteger(row.next_offset, 'detector_checkpoints.next_offset'),
  state: row.state,
  updatedAt: row.updated_at,
});

const keyShape = {
  pipeline: z.string().min(1),
  topic: z.string().min(1),
  partition: z.int().min(0).max(2_147_483_647),
};
const checkpointSchema = z.object({
  ...keyShape,
  nextOffset: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  state: z.json(),
});

async function saveWith(db: Queryable, checkpoint: CheckpointInput): Promise<DetectorCheckpoint> {
  const c = parseInput(checkpointSchema, checkpoint, 'detector checkpoint');
  const [row] = await queryRows<CheckpointRow>(
    db,
    `INSERT INTO detector_checkpoints (pipeline, topic, partition, next_offset, state) VALUES ($1, $2, $3, $4, $5::jsonb)
     ON CONFLICT (pipeline, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, state = EXCLUDED.state, updated_at = now()
     RETURNING ${COLUMNS}`,
    [c.pipeline, c.topic, c.partition, c.nextOffset, jsonParam(c.state)],
  );
  return toCheckpoint(row!);
}

async function saveChangesWith(
  db: Queryable,
  checkpoint: CheckpointInput,
  changes: CheckpointEntryChanges,
): Promise<number> {
  const c = parseInput(checkpointSchema, checkpoint, 'detector checkpoint');
  const key = [c.pipeline, c.topic, c.partition];
  const header = jsonParam(c.state);
  await execute(
    db,
    `INSERT INTO detector_checkpoints (pipeline, topic, partition, next_offset, state) VALUES ($1, $2, $3, $4, $5::jsonb)
     ON CONFLICT (pipeline, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, state = EXCLUDED.state, updated_at = now()`,
    [...key, c.nextOffset, header],
  );
  let bytes = Buffer.byteLength(header);
  if (changes.replaceAll) {
    await execute(
      db,
      'DELETE FROM detector_checkpoint_entries WHERE pipeline = $1 AND topic = $2 AND partition = $3',
      key,
    );
  } else if (changes.removed.length > 0) {
    await execute(
      db,
      'DELETE FROM detector_checkpoint_entries WHERE pipeline = $1 AND topic = $2 AND partition = $3 AND key = ANY($4::text[])',
      [...key, changes.removed],
    );
  }
  if (changes.upserts.size > 0) {
    // One statement for all of them: the entries travel as one JSON object, key -> entry.
    const entries = jsonParam(Object.fromEntries(changes.upserts));
    bytes += Buffer.byteLength(entries);
    await execute(
      db,
      `INSERT INTO detector_checkpoint_entries (pipeline, topic, partition, key, entry)
       SELECT $1, $2, $3, e.key, e.value FROM jsonb_each($4::jsonb) AS e
       ON CONFLICT (pipeline, topic, partition, key) DO UPDATE SET entry = EXCLUDED.entry`,
      [...key, entries],
    );
  }
  return bytes;
}

export function createDetectorCheckpointRepository(db: Queryable): DetectorCheckpointRepository {
  return {
    save: (checkpoint) => saveWith(db, checkpoint),
    saveIn: (client, checkpoint) => saveWith(client, checkpoint),
    saveChanges: (checkpoint, changes) => saveChangesWith(db, checkpoint, changes),
    async loadEntries(pipeline, topic, partition) {
      const k = parseInput(z.object(keyShape), { pipeline, topic, partition }, 'checkpoint key');
      const rows = await queryRows<{ key: string; entry: JsonValue }>(
        db,
        'SELECT key, entry FROM detector_checkpoint_entries WHERE pipeline = $1 AND topic = $2 AND partition = $3',
        [k.pipeline, k.topic, k.partition],
      );
      return new Map(rows.map((row) => [row.key, row.entry]));
    },
    async load(pipeline, topic, partition) {
      const k = parseInput(z.object(keyShape), { pipeline, topic, partition }, 'checkpoint key');
      const [row] = await queryRows<CheckpointRow>(
        db,
        `SELECT ${COLUMNS} FROM detector_checkpoints WHERE pipeline = $1 AND topic = $2 AND partition = $3`,
        [k.pipeline, k.topic, k.partition],
      );
      return row === undefined ? null : toCheckpoint(row);
    },
  };
}
