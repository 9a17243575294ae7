-- The events of a type in commit order: what a follower that folds a few types reads (one
-- index range a type, already in the order it folds them), and what a count of one type
-- reads. It replaces the index by type and `seq`, whose order no reader used.
CREATE INDEX core_events_type_follow ON core_events (event_type, tx_order, seq);
DROP INDEX core_events_type;
