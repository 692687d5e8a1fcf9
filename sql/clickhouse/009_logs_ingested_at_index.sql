-- The live tail (src/api/tail.ts) reads the rows stored in the last minutes
-- by ingested_at; the table is ordered by (service, level, timestamp), so
-- without this index every poll would read the whole ingested_at column.
-- Parts written before this migration get the index when they are merged.
ALTER TABLE logs ADD INDEX IF NOT EXISTS idx_ingested_at ingested_at TYPE minmax GRANULARITY 1;
