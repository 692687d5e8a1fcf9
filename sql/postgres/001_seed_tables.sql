-- The seed's relational tables (database log_analysis).

CREATE TABLE IF NOT EXISTS analysis_jobs (
    id                 BIGSERIAL PRIMARY KEY,
    job_type           TEXT NOT NULL CHECK (job_type IN ('nightly', 'on_demand')),
    status             TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    target_date        DATE NOT NULL,
    requested_by       TEXT,
    model_used         TEXT,
    tokens_used        INTEGER NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    processing_time_ms INTEGER CHECK (processing_time_ms >= 0),
    result             JSONB,
    error              TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at         TIMESTAMPTZ,
    completed_at       TIMESTAMPTZ
);
-- The nightly graph polls for pending jobs in creation order.
CREATE INDEX IF NOT EXISTS analysis_jobs_pending_idx ON analysis_jobs (created_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS nightly_reports (
    id                 BIGSERIAL PRIMARY KEY,
    report_date        DATE NOT NULL UNIQUE,
    job_id             BIGINT REFERENCES analysis_jobs (id) ON DELETE SET NULL,
    produced_by        TEXT NOT NULL CHECK (produced_by IN ('llm', 'statistical')),
    model_used         TEXT,
    summary            TEXT NOT NULL,
    key_issues         JSONB NOT NULL DEFAULT '[]',
    probable_causes    JSONB NOT NULL DEFAULT '[]',
    recommendations    JSONB NOT NULL DEFAULT '[]',
    pattern_severity   JSONB NOT NULL DEFAULT '[]',
    statistics         JSONB NOT NULL DEFAULT '{}',
    total_logs         BIGINT NOT NULL DEFAULT 0,
    total_errors       BIGINT NOT NULL DEFAULT 0,
    error_rate         DOUBLE PRECISION NOT NULL DEFAULT 0,
    unique_patterns    INTEGER NOT NULL DEFAULT 0,
    anomalies_detected INTEGER NOT NULL DEFAULT 0,
    tokens_used        INTEGER NOT NULL DEFAULT 0,
    generated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- error_hash is ClickHouse's UInt64, which PostgreSQL has no type for: NUMERIC(20) holds it exactly.
CREATE TABLE IF NOT EXISTS error_catalog (
    id                BIGSERIAL PRIMARY KEY,
    error_hash        NUMERIC(20, 0) NOT NULL UNIQUE CHECK (error_hash >= 0),
    template          TEXT NOT NULL,
    title             TEXT NOT NULL,
    description       TEXT,
    category          TEXT,
    severity          TEXT NOT NULL DEFAULT 'medium' CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    solution          TEXT,
    documentation_url TEXT,
    tags              TEXT[] NOT NULL DEFAULT '{}',
    services          TEXT[] NOT NULL DEFAULT '{}',
    auto_created      BOOLEAN NOT NULL DEFAULT false,
    -- Set when an engineer edits the entry: automatic updates never overwrite such rows.
    edited_by_human   BOOLEAN NOT NULL DEFAULT false,
    occurrence_count  BIGINT NOT NULL DEFAULT 0,
    first_seen        TIMESTAMPTZ,
    last_seen         TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS anomaly_alerts (
    id                BIGSERIAL PRIMARY KEY,
    -- rule + service + environment + level (or pattern): at most one active alert per key.
    dedup_key         TEXT NOT NULL,
    rule              TEXT NOT NULL,
    alert_type        TEXT NOT NULL CHECK (alert_type IN ('spike', 'silence', 'novel_pattern', 'statistical')),
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'open', 'acknowledged', 'resolved')),
    severity          TEXT NOT NULL DEFAULT 'medium' CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    service           TEXT,
    environment       TEXT,
    level             TEXT,
    error_hash        NUMERIC(20, 0),
    score             DOUBLE PRECISION,
    observed          DOUBLE PRECISION,
    expected          DOUBLE PRECISION,
    window_start      TIMESTAMPTZ,
    window_end        TIMESTAMPTZ,
    anomalous_windows INTEGER NOT NULL DEFAULT 0,
    normal_windows    INTEGER NOT NULL DEFAULT 0,
    description       TEXT,
    llm_analysis      TEXT,
    suggested_actions JSONB NOT NULL DEFAULT '[]',
    details           JSONB NOT NULL DEFAULT '{}',
    opened_at         TIMESTAMPTZ,
    acknowledged_at   TIMESTAMPTZ,
    acknowledged_by   TEXT,
    resolved_at       TIMESTAMPTZ,
    last_notified_at  TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS anomaly_alerts_one_active_idx ON anomaly_alerts (dedup_key) WHERE status <> 'resolved';
CREATE INDEX IF NOT EXISTS anomaly_alerts_status_idx ON anomaly_alerts (status, created_at DESC);

CREATE TABLE IF NOT EXISTS services (
    id                 SERIAL PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    display_name       TEXT NOT NULL,
    description        TEXT,
    owner_team         TEXT,
    tier               TEXT NOT NULL DEFAULT 'standard' CHECK (tier IN ('critical', 'standard', 'best_effort')),
    monitoring_enabled BOOLEAN NOT NULL DEFAULT true,
    alerting_enabled   BOOLEAN NOT NULL DEFAULT true,
    -- z-score above which a window is anomalous for this service.
    sensitivity        DOUBLE PRECISION NOT NULL DEFAULT 3.0 CHECK (sensitivity > 0),
    min_count          INTEGER NOT NULL DEFAULT 10 CHECK (min_count >= 0),
    silence_detection  BOOLEAN NOT NULL DEFAULT true,
    retention_days     INTEGER NOT NULL DEFAULT 30 CHECK (retention_days > 0),
    tags               TEXT[] NOT NULL DEFAULT '{}',
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS user_preferences (
    user_id         TEXT PRIMARY KEY,
    timezone        TEXT NOT NULL DEFAULT 'UTC',
    theme           TEXT NOT NULL DEFAULT 'system' CHECK (theme IN ('light', 'dark', 'system')),
    default_filters JSONB NOT NULL DEFAULT '{}',
    notifications   JSONB NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS app_config (
    key         TEXT PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_.]*$'),
    value       JSONB NOT NULL,
    description TEXT,
    updated_by  TEXT,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
