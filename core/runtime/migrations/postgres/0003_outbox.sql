-- The outbox (A3, A9): external effects, enqueued in the transaction of the command that
-- asked for them, claimed by dispatchers, and closed by a receipt.
CREATE TABLE core_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command_id TEXT COLLATE "C" NOT NULL UNIQUE,
    command_type TEXT NOT NULL,
    destination TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    request TEXT NOT NULL,
    actor TEXT NOT NULL,
    capability_id TEXT NOT NULL,
    -- The approval (JSON), once an actor or a policy gave it.
    approval TEXT,
    -- pending, executed or refused.
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    claimed_by TEXT,
    claimed_until_us BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
CREATE INDEX core_outbox_pending ON core_outbox (state, id);
CREATE INDEX core_outbox_destination ON core_outbox (destination, state, updated_at_us);
