-- The rows a dispatcher may claim, in the order it claims them: a claim walks these from the
-- oldest and stops at its batch. Through `core_outbox_pending` the planner walked the
-- primary key past every row closed before, or read every pending row and sorted them:
-- each claim cost as much as the rows the outbox had held.
CREATE INDEX core_outbox_claimable ON core_outbox (id) WHERE state = 'pending';
