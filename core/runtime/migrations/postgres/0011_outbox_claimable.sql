-- The rows a dispatcher may claim, in the order it claims them: a claim walks these from the
-- oldest and stops at its batch. Through `core_outbox_pending` the planner walked the
-- primary key past every row closed before, or read every pending row and sorted them:
-- each claim cost as much as the rows the outbox had held.
CREATE INDEX core_outbox_claimable ON core_outbox (id) WHERE state = 'pending';
-- Room on each page for a row's next version: a claim or a renewal changes no indexed
-- column, so its new version can stay on the page (a heap-only update) and no index grows
-- by it; with full pages every claim added an entry to each of the outbox's indexes.
ALTER TABLE core_outbox SET (fillfactor = 70);
