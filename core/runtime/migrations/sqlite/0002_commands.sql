-- Commands (A2, A3): each command once, with its explicit outcome and the events it caused.
CREATE TABLE core_commands (
    command_id TEXT PRIMARY KEY,
    command_type TEXT NOT NULL,
    target_ref TEXT NOT NULL,
    -- The typed dedupe scope, as JSON.
    dedupe_scope TEXT NOT NULL,
    envelope TEXT NOT NULL,
    capability_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    -- The ids of the events it caused, as a JSON array.
    event_ids TEXT NOT NULL,
    recorded_at_us INTEGER NOT NULL
);
CREATE INDEX core_commands_target ON core_commands (target_ref, recorded_at_us);
