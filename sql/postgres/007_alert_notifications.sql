-- Alert notifications (README.md, "Notifications"): a per-service webhook that
-- wins over LOGFLOW_ALERT_WEBHOOK_URL, and the transactional outbox the
-- detector writes in the same transaction as the alert transition it reports
-- (src/sinks/alert-events.ts); the sender (src/sinks/alert-notifier.ts)
-- delivers the rows and marks them sent.
ALTER TABLE services ADD COLUMN IF NOT EXISTS alert_webhook_url TEXT
    CHECK (alert_webhook_url IS NULL OR (alert_webhook_url ~ '^https?://' AND length(alert_webhook_url) <= 2000));

CREATE TABLE IF NOT EXISTS alert_notifications (
    id              BIGSERIAL PRIMARY KEY,
    -- Sent as the Idempotency-Key header and in the payload: a receiver drops a delivery it has seen.
    delivery_id     UUID NOT NULL UNIQUE,
    alert_id        BIGINT NOT NULL REFERENCES anomaly_alerts (id) ON DELETE CASCADE,
    event           TEXT NOT NULL CHECK (event IN ('opened', 'renotified', 'resolved')),
    -- The window that caused the event: renotified happens more than once per alert, each for its own window.
    window_end      TIMESTAMPTZ NOT NULL,
    url             TEXT NOT NULL,
    payload         JSONB NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set while one sender is posting the row; a sender that died leaves it to expire.
    lease_until     TIMESTAMPTZ,
    last_error      TEXT,
    sent_at         TIMESTAMPTZ,
    -- Refused by the receiver (a 4xx other than 429) or out of attempts: never sent again.
    failed_at       TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One row per transition, whatever writes it twice.
CREATE UNIQUE INDEX IF NOT EXISTS alert_notifications_transition_idx ON alert_notifications (alert_id, event, window_end);
CREATE INDEX IF NOT EXISTS alert_notifications_due_idx ON alert_notifications (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
