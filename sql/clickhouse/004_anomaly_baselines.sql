-- Statistics of per-minute counts for each weekly slot; the newest computation wins.
CREATE TABLE IF NOT EXISTS anomaly_baselines
(
    service         LowCardinality(String),
    environment     LowCardinality(String),
    level           LowCardinality(String),
    hour_of_day     UInt8,
    day_of_week     UInt8,
    mean            Float64,
    stddev          Float64,
    median          Float64,
    p95             Float64,
    p99             Float64,
    upper_threshold Float64,
    lower_threshold Float64,
    sample_count    UInt32,
    computed_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (service, environment, level, day_of_week, hour_of_day);
