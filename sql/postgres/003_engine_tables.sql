-- What the engine itself needs (ARCHITECTURE.md).

-- Exactly-once ClickHouse sink: a batch's offset range is recorded before its
-- insert, so a replay after a crash is re-cut into exactly the same range and
-- the retried insert carries the same deduplication token.
CREATE TABLE IF NOT EXISTS sink_batches (
    sink        TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL CHECK (partition >= 0),
    min_offset  BIGINT NOT NULL CHECK (min_offset >= 0),
    max_offset  BIGINT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'inserted')),
    row_count   INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    inserted_at TIMESTAMPTZ,
    PRIMARY KEY (sink, topic, partition, min_offset),
    CHECK (max_offset >= min_offset)
);

-- Detector state per input partition, written in the same transaction as its alerts.
CREATE TABLE IF NOT EXISTS detector_checkpoints (
    pipeline    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL CHECK (partition >= 0),
    next_offset BIGINT NOT NULL,
    state       JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, topic, partition)
);

CREATE TABLE IF NOT EXISTS alert_silences (
    id          BIGSERIAL PRIMARY KEY,
    -- NULL matches anything, so a silence can cover a whole service or one rule.
    rule        TEXT,
    service     TEXT,
    environment TEXT,
    level       TEXT,
    dedup_key   TEXT,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    starts_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (expires_at > starts_at)
);
CREATE INDEX IF NOT EXISTS alert_silences_active_idx ON alert_silences (expires_at);

-- Only a hash of each key is stored; the key itself is shown once, at creation.
CREATE TABLE IF NOT EXISTS api_keys (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL,
    key_prefix   TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
