-- Which worker runs each stream of work (a projection, a reaction, a connector stream) now.
-- A row is never deleted: its generation only grows, so it can fence a worker that lost it.
CREATE TABLE core_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    generation BIGINT NOT NULL,
    acquired_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL
);
