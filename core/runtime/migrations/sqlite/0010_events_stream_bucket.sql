-- Each event's stream as a number (a hash of its id, see `store::stream_bucket`), so a
-- reader of one partition of a projection split by stream passes over the other
-- partitions' rows in the database, not after reading them. Events stored before this have
-- none: readers decide those by the stream id itself.
ALTER TABLE core_events ADD COLUMN stream_bucket INTEGER;
