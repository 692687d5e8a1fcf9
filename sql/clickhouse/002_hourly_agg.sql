-- Hourly rollup maintained by ClickHouse itself on every insert into logs.
-- The target carries its own deduplication window: a deduplicated retry of a
-- logs insert must not be counted twice here either (the sink also sets
-- deduplicate_blocks_in_dependent_materialized_views = 1).
CREATE TABLE IF NOT EXISTS logs_hourly_agg
(
    hour               DateTime('UTC'),
    service            LowCardinality(String),
    environment        LowCardinality(String),
    level              LowCardinality(String),
    log_count          SimpleAggregateFunction(sum, UInt64),
    error_count        SimpleAggregateFunction(sum, UInt64),
    unique_patterns    AggregateFunction(uniq, UInt64),
    duration_quantiles AggregateFunction(quantiles(0.5, 0.95, 0.99), Nullable(Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (service, environment, level, hour)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS logs_hourly_agg_mv TO logs_hourly_agg AS
SELECT
    toStartOfHour(timestamp)                      AS hour,
    service,
    environment,
    level,
    count()                                       AS log_count,
    countIf(level IN ('ERROR', 'FATAL'))          AS error_count,
    uniqState(error_hash)                         AS unique_patterns,
    quantilesState(0.5, 0.95, 0.99)(duration_ms)  AS duration_quantiles
FROM logs
GROUP BY hour, service, environment, level;

-- Per-minute counts: the unit the detector and the baselines compare in
-- (a 1-minute window's count against the mean 1-minute count of that slot).
CREATE TABLE IF NOT EXISTS logs_minute_agg
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    environment LowCardinality(String),
    level       LowCardinality(String),
    log_count   UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (service, environment, level, minute)
TTL minute + INTERVAL 70 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS logs_minute_agg_mv TO logs_minute_agg AS
SELECT toStartOfMinute(timestamp) AS minute, service, environment, level, count() AS log_count
FROM logs
GROUP BY minute, service, environment, level;
