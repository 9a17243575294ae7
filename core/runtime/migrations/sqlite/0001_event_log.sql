-- The event log (A1, A6): append-only, one row per event.
CREATE TABLE core_events (
    seq INTEGER PRIMARY KEY,
    -- What orders commits; 0 on SQLite, where one writer at a time makes row order commit order.
    tx_order INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    stream_id TEXT NOT NULL,
    stream_version INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    payload_schema_version INTEGER NOT NULL,
    occurred_at_us INTEGER NOT NULL,
    source_ref TEXT NOT NULL,
    -- source_sequence, or -1 when absent, so the canonical order needs no NULL rules.
    source_sequence_key INTEGER NOT NULL,
    correlation_id TEXT NOT NULL,
    recorded_at_us INTEGER NOT NULL,
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
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    state_table TEXT NOT NULL,
    follow_tx_order INTEGER NOT NULL,
    follow_seq INTEGER NOT NULL,
    -- The last event applied in canonical order, as its sort key (JSON), or NULL.
    canonical_mark TEXT,
    applied_events INTEGER NOT NULL,
    late_events INTEGER NOT NULL,
    rebuilds INTEGER NOT NULL,
    max_lag_ms INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    PRIMARY KEY (owner, name)
);

-- What could not be read or applied, kept with the reason; never dropped.
CREATE TABLE core_quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    reference TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    recorded_at_us INTEGER NOT NULL,
    UNIQUE (origin, reference, reason)
);

-- Ingress connectors (A8): cursor and watermark, stored with the batch they led to.
CREATE TABLE core_connector_cursors (
    connector_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    cursor TEXT NOT NULL,
    watermark_us INTEGER,
    updated_at_us INTEGER NOT NULL,
    PRIMARY KEY (connector_id, stream)
);
