-- paygo-postgres schema version 5: the raw usage records are kept for a retention period
-- (PgRecords::prune_usage); the hourly roll-ups are kept for good.
-- `{s}` is the store's schema.

-- Prune deletes by time across accounts: an index on the time alone.
CREATE INDEX usage_records_at ON {s}.usage_records (at_ns);

-- The horizon: records admitted before it may have been deleted. One row, raised (never
-- lowered) before any record below it is deleted, so that a reader that finds it above
-- the start of its range knows its records may be incomplete, and a record older than it
-- is never written again (which would count its call twice in the roll-up).
CREATE TABLE {s}.usage_pruned (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),
    before_ns bigint NOT NULL CHECK (before_ns >= 0)
);
INSERT INTO {s}.usage_pruned (before_ns) VALUES (0);
