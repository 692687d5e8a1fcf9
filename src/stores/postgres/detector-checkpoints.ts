/**
 * detector_checkpoints: the anomaly detector's state per input partition
 * (open windows, watermarks) and the offset to resume from. The detector
 * writes its alerts and its checkpoint in one transaction — `saveIn` with the
 * transaction's client, or `save` on repositories bound to it — so a restart
 * neither loses an alert nor raises it twice.
 */
import { z } from 'zod';
import { parseInput, queryRows, jsonParam, toSafeInteger, type JsonValue, type Queryable } from './db.ts';

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

export interface DetectorCheckpointRepository {
  save(checkpoint: CheckpointInput): Promise<DetectorCheckpoint>;
  /** `save` on a caller's client, typically inside withTransaction next to the alert writes. */
  saveIn(client: Queryable, checkpoint: CheckpointInput): Promise<DetectorCheckpoint>;
  load(pipeline: string, topic: string, partition: number): Promise<DetectorCheckpoint | null>;
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

export function createDetectorCheckpointRepository(db: Queryable): DetectorCheckpointRepository {
  return {
    save: (checkpoint) => saveWith(db, checkpoint),
    saveIn: (client, checkpoint) => saveWith(client, checkpoint),
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
