-- Running totals per pattern of the levels patterns are kept for (WARN, ERROR, FATAL: the vectorization queue's and
-- error_patterns'), maintained by ClickHouse on every insert into logs, so an occurrence count read
-- between nightly runs is the count so far (error_patterns.occurrence_count is written only by vectorize, when a
-- pattern is first embedded, and by the nightly analysis). Like logs_hourly_agg (002_hourly_agg.sql) the target
-- carries its own deduplication window, so a deduplicated retry of a logs insert is not counted twice.
CREATE TABLE IF NOT EXISTS error_pattern_counts
(
    error_hash  UInt64,
    occurrences SimpleAggregateFunction(sum, UInt64),
    first_seen  SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen   SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY error_hash
SETTINGS non_replicated_deduplication_window = 10000;

-- Logs stored before this migration, counted once. Migrations run before the pipelines start (`npm run migrate`;
-- `npm start` migrates first): an insert between this backfill and the view's creation would not be counted.
INSERT INTO error_pattern_counts
SELECT error_hash, count(), min(timestamp), max(timestamp)
FROM logs
WHERE level IN ('WARN', 'ERROR', 'FATAL')
GROUP BY error_hash;

CREATE MATERIALIZED VIEW IF NOT EXISTS error_pattern_counts_mv TO error_pattern_counts AS
SELECT error_hash, count() AS occurrences, min(timestamp) AS first_seen, max(timestamp) AS last_seen
FROM logs
-- INFO and DEBUG are most rows and have no pattern row to count for: left out, they cost every logs insert nothing.
WHERE level IN ('WARN', 'ERROR', 'FATAL')
GROUP BY error_hash;
