-- The main table. Ordered for the questions users ask most (one service, one
-- level, a time range); partitioned by day so TTL drops whole parts.
-- non_replicated_deduplication_window lets a retried insert carrying the same
-- insert_deduplication_token be dropped (exactly-once sink, ARCHITECTURE.md);
-- the block number/offset columns enable lightweight UPDATE of the flags.
CREATE TABLE IF NOT EXISTS logs
(
    log_id          UUID,
    timestamp       DateTime64(3, 'UTC'),
    service         LowCardinality(String),
    environment     LowCardinality(String),
    level           LowCardinality(String),
    message         String,
    template        String,
    error_hash      UInt64,
    host            LowCardinality(String) DEFAULT '',
    region          LowCardinality(String) DEFAULT '',
    version         LowCardinality(String) DEFAULT '',
    logger          LowCardinality(String) DEFAULT '',
    trace_id        String DEFAULT '',
    span_id         String DEFAULT '',
    request_id      String DEFAULT '',
    user_id         String DEFAULT '',
    session_id      String DEFAULT '',
    http_method     LowCardinality(String) DEFAULT '',
    http_path       String DEFAULT '',
    http_status     Nullable(UInt16),
    duration_ms     Nullable(Float64),
    error_type      LowCardinality(String) DEFAULT '',
    error_code      LowCardinality(String) DEFAULT '',
    stack_trace     String DEFAULT '',
    attributes      Map(String, String),
    ingested_at     DateTime64(3, 'UTC'),
    kafka_topic     LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset    UInt64 DEFAULT 0,
    is_vectorized   UInt8 DEFAULT 0,
    is_anomaly      UInt8 DEFAULT 0,
    anomaly_score   Float32 DEFAULT 0,
    INDEX idx_log_id log_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_error_hash error_hash TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_message message TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (service, level, timestamp)
TTL toDateTime(timestamp) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000,
         enable_block_number_column = 1,
         enable_block_offset_column = 1;
