-- Detector state as a changelog (src/domain/window-state.ts, "Changelog"): the
-- row in detector_checkpoints keeps the offset, the watermarks and the alert
-- lifecycle; each window key's entry lives here and is rewritten only when that
-- key changed, so a checkpoint costs what changed, not all the state held.
CREATE TABLE IF NOT EXISTS detector_checkpoint_entries (
    pipeline    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL CHECK (partition >= 0),
    key         TEXT NOT NULL,
    entry       JSONB NOT NULL,
    PRIMARY KEY (pipeline, topic, partition, key)
);
