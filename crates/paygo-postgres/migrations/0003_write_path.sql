-- paygo-postgres schema version 3: storage settings for the write path (docs/postgres.md,
-- "What a batch costs"). `{s}` is the store's schema.

-- A customer's row is rewritten by every batch that touches the customer. Room left on each
-- page lets PostgreSQL write the new version beside the old one without touching the
-- indexes (a heap-only update; neither indexed column ever changes), and the shard is kept
-- inline and uncompressed up to a page (compressing a few kilobytes on every rewrite costs
-- more CPU than the bytes it saves).
ALTER TABLE {s}.customers SET (fillfactor = 50, toast_tuple_target = 8160);

-- A hold's reply row is updated once, when the hold closes: room on its page for the same
-- heap-only update.
ALTER TABLE {s}.replies SET (fillfactor = 85);

-- Nothing reads replies by time (pruning goes by id, which is time-ordered): the index cost
-- one insertion per command and one per closed hold.
DROP INDEX {s}.replies_at;

-- A customer's row is no longer locked while a batch runs: the batch reads each row's
-- version and updates the row only if the version is still the one it read (then raises
-- it); a batch that finds a row changed by another replica is rolled back and run again.
ALTER TABLE {s}.customers ADD COLUMN version bigint NOT NULL DEFAULT 0;
