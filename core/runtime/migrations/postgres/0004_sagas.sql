-- Sagas and holds (A5, A9): an effect belongs to the saga of its command's correlation, may
-- compensate another effect, is held before dispatch when it cannot be undone, and an
-- actor's approval of it may expire.
ALTER TABLE core_outbox ADD COLUMN correlation_id TEXT NOT NULL DEFAULT '';
-- The effect this one undoes, for a compensation.
ALTER TABLE core_outbox ADD COLUMN compensates TEXT;
-- 1 when the command declares a compensation, 0 when its effect cannot be undone.
ALTER TABLE core_outbox ADD COLUMN reversible BIGINT NOT NULL DEFAULT 1;
ALTER TABLE core_outbox ADD COLUMN approval_expires_us BIGINT;
CREATE INDEX core_outbox_actor ON core_outbox (actor, state, updated_at_us);
