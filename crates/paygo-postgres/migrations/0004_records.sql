-- paygo-postgres schema version 4: what the HTTP layer shares between replicas (PgRecords).
-- `{s}` is the store's schema.

-- Ordered streams of records every replica reads in full and keeps in memory (the account
-- directory: accounts, API key hashes, revocations). A record is appended at the sequence
-- number after the last one its writer has read, or not at all (the primary key): so the
-- numbers of a stream are dense, and a record is never appended on a stale view.
CREATE TABLE {s}.streams (
    stream text NOT NULL,
    seq    bigint NOT NULL CHECK (seq >= 1),
    body   text NOT NULL,
    PRIMARY KEY (stream, seq)
);

-- One record per charged call, by its request id, with its account and time.
CREATE TABLE {s}.usage_records (
    key     text PRIMARY KEY,
    account uuid NOT NULL,
    at_ns   bigint NOT NULL,
    body    text NOT NULL
);
CREATE INDEX usage_records_account ON {s}.usage_records (account, at_ns);

-- The same calls rolled up by account, UTC hour and model, written in the transaction of
-- the record: what usage pages read for whole hours. USD as exact numeric.
CREATE TABLE {s}.usage_hourly (
    account           uuid NOT NULL,
    hour_ns           bigint NOT NULL,
    model             text NOT NULL,
    calls             bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    credits           bigint NOT NULL,
    usd               numeric NOT NULL,
    PRIMARY KEY (account, hour_ns, model)
);
