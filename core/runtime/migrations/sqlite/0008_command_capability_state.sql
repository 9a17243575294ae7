-- The capability state a command's check relied on: the last event of its capability when
-- it was allowed (`''` for commands recorded before this column).
ALTER TABLE core_commands ADD COLUMN capability_state_ref TEXT NOT NULL DEFAULT '';
