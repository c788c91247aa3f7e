-- paygo-postgres schema version 2: the invoice numbering (PgSequenceStore).
-- `{s}` is the store's schema.

-- The last number of every series. A commit locks its series' row (SELECT ... FOR UPDATE)
-- for the length of its transaction: commits to one series are serialized across every
-- replica, commits to different series do not wait for each other.
CREATE TABLE {s}.invoice_series (
    series text PRIMARY KEY,
    last   bigint NOT NULL CHECK (last >= 0)
);

-- Every number with the record (the sealed document) that carries it, written in the
-- transaction that raises its series' last number. `position` orders the records as they
-- were committed; `key` is the document's id, which identifies one document: unique, so
-- that two replicas can never issue one id twice.
CREATE TABLE {s}.invoice_records (
    series   text NOT NULL,
    number   bigint NOT NULL CHECK (number >= 1),
    key      text NOT NULL UNIQUE,
    record   text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    position bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    PRIMARY KEY (series, number)
);
