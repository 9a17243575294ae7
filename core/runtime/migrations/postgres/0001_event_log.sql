-- The event log (A1, A6): append-only, one row per event.
CREATE TABLE core_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction's id (pg_current_xact_id): followers read only rows of finished transactions.
    tx_order BIGINT NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL UNIQUE,
    stream_id TEXT COLLATE "C" NOT NULL,
    stream_version BIGINT NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    payload_schema_version BIGINT NOT NULL,
    occurred_at_us BIGINT NOT NULL,
    source_ref TEXT COLLATE "C" NOT NULL,
    -- source_sequence, or -1 when absent, so the canonical order needs no NULL rules.
    source_sequence_key BIGINT NOT NULL,
    correlation_id TEXT COLLATE "C" NOT NULL,
    recorded_at_us BIGINT NOT NULL,
    envelope TEXT NOT NULL,
    UNIQUE (stream_id, stream_version)
);
-- Serves replay(): (occurred_at, source_ref, source_sequence?, event_id).
CREATE INDEX core_events_canonical ON core_events (occurred_at_us, source_ref, source_sequence_key, event_id);
CREATE INDEX core_events_follow ON core_events (tx_order, seq);
CREATE INDEX core_events_type ON core_events (event_type, seq);
CREATE INDEX core_events_correlation ON core_events (correlation_id, seq);

-- Projections: the active version, its checkpoint and its freshness objective.
CREATE TABLE core_projections (
    owner TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    state_table TEXT NOT NULL,
    follow_tx_order BIGINT NOT NULL,
    follow_seq BIGINT NOT NULL,
    -- The last event applied in canonical order, as its sort key (JSON), or NULL.
    canonical_mark TEXT,
    applied_events BIGINT NOT NULL,
    late_events BIGINT NOT NULL,
    rebuilds BIGINT NOT NULL,
    max_lag_ms BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (owner, name)
);

-- What could not be read or applied, kept with the reason; never dropped.
CREATE TABLE core_quarantine (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin TEXT NOT NULL,
    reference TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    recorded_at_us BIGINT NOT NULL,
    UNIQUE (origin, reference, reason)
);

-- Ingress connectors (A8): cursor and watermark, stored with the batch they led to.
CREATE TABLE core_connector_cursors (
    connector_id TEXT COLLATE "C" NOT NULL,
    stream TEXT COLLATE "C" NOT NULL,
    cursor TEXT NOT NULL,
    watermark_us BIGINT,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (connector_id, stream)
);
