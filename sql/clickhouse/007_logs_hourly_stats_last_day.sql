-- logs_hourly_stats is one of the seed's views "over the last 24 hours" (005_views.sql) but read every hour ever
-- stored; it now keeps the filter the other views have.
CREATE OR REPLACE VIEW logs_hourly_stats AS
SELECT hour, service, environment, level,
       sum(log_count)                                AS log_count,
       sum(error_count)                              AS error_count,
       uniqMerge(unique_patterns)                    AS unique_patterns,
       quantilesMerge(0.5, 0.95, 0.99)(duration_quantiles) AS duration_quantiles
FROM logs_hourly_agg
WHERE hour >= toStartOfHour(now() - INTERVAL 24 HOUR)
GROUP BY hour, service, environment, level
ORDER BY hour DESC, service, environment, level;
