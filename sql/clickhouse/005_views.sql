-- The seed's read-only query interfaces, all over the last 24 hours.
CREATE VIEW IF NOT EXISTS recent_errors AS
SELECT log_id, timestamp, service, environment, level, message, template, error_hash,
       host, trace_id, error_type, error_code, http_path, http_status
FROM logs
WHERE level IN ('ERROR', 'FATAL') AND timestamp >= now64(3) - INTERVAL 24 HOUR
ORDER BY timestamp DESC;

CREATE VIEW IF NOT EXISTS error_rate_by_service AS
SELECT service,
       sum(log_count)                                  AS total_logs,
       sum(error_count)                                AS error_logs,
       if(total_logs = 0, 0, error_logs / total_logs)  AS error_rate
FROM logs_hourly_agg
WHERE hour >= toStartOfHour(now() - INTERVAL 24 HOUR)
GROUP BY service
ORDER BY error_rate DESC;

CREATE VIEW IF NOT EXISTS top_errors AS
SELECT error_hash,
       any(template)             AS template,
       any(message)              AS sample_message,
       groupUniqArray(service)   AS services,
       count()                   AS occurrences,
       min(timestamp)            AS first_seen,
       max(timestamp)            AS last_seen
FROM logs
WHERE level IN ('ERROR', 'FATAL') AND timestamp >= now64(3) - INTERVAL 24 HOUR
GROUP BY error_hash
ORDER BY occurrences DESC
LIMIT 100;

CREATE VIEW IF NOT EXISTS logs_hourly_stats AS
SELECT hour, service, environment, level,
       sum(log_count)                                AS log_count,
       sum(error_count)                              AS error_count,
       uniqMerge(unique_patterns)                    AS unique_patterns,
       quantilesMerge(0.5, 0.95, 0.99)(duration_quantiles) AS duration_quantiles
FROM logs_hourly_agg
GROUP BY hour, service, environment, level
ORDER BY hour DESC, service, environment, level;
