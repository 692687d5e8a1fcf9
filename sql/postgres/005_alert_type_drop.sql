-- The detector's drop rule (src/domain/anomaly.ts): a count well below its
-- baseline band. 001 enumerates the alert types in a CHECK, so the constraint
-- is replaced rather than 001 edited.
ALTER TABLE anomaly_alerts DROP CONSTRAINT IF EXISTS anomaly_alerts_alert_type_check;
ALTER TABLE anomaly_alerts ADD CONSTRAINT anomaly_alerts_alert_type_check
    CHECK (alert_type IN ('spike', 'drop', 'silence', 'novel_pattern', 'statistical'));
