-- One row per normalized pattern. ReplacingMergeTree keyed by error_hash so an
-- upsert is an insert of a newer version; readers use FINAL.
CREATE TABLE IF NOT EXISTS error_patterns
(
    error_hash       UInt64,
    template         String,
    sample_message   String,
    services         Array(LowCardinality(String)),
    level            LowCardinality(String),
    first_seen       DateTime64(3, 'UTC'),
    last_seen        DateTime64(3, 'UTC'),
    occurrence_count UInt64,
    has_embedding    UInt8 DEFAULT 0,
    qdrant_point_id  String DEFAULT '',
    updated_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY error_hash
SETTINGS enable_block_number_column = 1,
         enable_block_offset_column = 1;
