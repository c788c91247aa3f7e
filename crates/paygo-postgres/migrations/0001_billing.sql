-- paygo-postgres schema version 1: the billing store.
-- `{s}` is the store's schema. Ids are u128 stored as uuid (16 bytes, ordered as the numbers
-- are); credits are bigint; times are nanoseconds since the Unix epoch as bigint (until 2262).

-- One row per customer: the customer's shard (open state only: balances, lots, open holds,
-- the auto top-up rule) and its balance as of its last command. A batch locks the rows of the
-- customers it touches, in ascending order, for the length of its transaction.
CREATE SEQUENCE {s}.shard_no START 1 MAXVALUE 549755813888;
CREATE TABLE {s}.customers (
    customer    uuid PRIMARY KEY,
    shard       bigint NOT NULL UNIQUE CHECK (shard >= 1),
    state       bytea NOT NULL,
    available   bigint NOT NULL,
    paid        bigint NOT NULL,
    bonus       bigint NOT NULL,
    uncollected bigint NOT NULL CHECK (uncollected >= 0),
    arrears     bigint NOT NULL CHECK (arrears >= 0),
    updated_ns  bigint NOT NULL
);

-- The first reply to every command with an id, by (id space, id): the primary key is the
-- idempotency. A hold's row also routes its capture (customer) and keeps its closing;
-- held is true for a hold that was granted (and so is open until closing is set).
-- space: 1 top-up, 2 hold, 3 bonus grant, 4 payment report, 5 reversal.
CREATE TABLE {s}.replies (
    space       smallint NOT NULL CHECK (space BETWEEN 1 AND 5),
    id          uuid NOT NULL,
    customer    uuid,
    reply       bytea NOT NULL,
    held        boolean NOT NULL,
    at_ns       bigint NOT NULL,
    hold_amount bigint,
    closing     bytea,
    closed_ns   bigint,
    PRIMARY KEY (space, id)
);
CREATE INDEX replies_at ON {s}.replies (at_ns);

-- Every movement of a customer's balance (purchases, charges, bonus grants and expiries,
-- reversals): the history, newest first by at_ns (the shard's ledger time, unique per customer).
-- kind: 1 purchase, 2 charge, 3 bonus grant, 4 bonus expiry, 5 reversal of a top-up,
-- 6 reversal of an auto top-up. ref: the payment, hold or lot.
CREATE TABLE {s}.entries (
    customer uuid NOT NULL,
    at_ns    bigint NOT NULL,
    transfer uuid NOT NULL,
    kind     smallint NOT NULL CHECK (kind BETWEEN 1 AND 6),
    ref      uuid NOT NULL,
    credits  bigint NOT NULL,
    PRIMARY KEY (customer, at_ns)
);

-- Charges rolled up by customer and UTC hour, written in the transaction of the capture:
-- what usage pages read instead of scanning entries.
CREATE TABLE {s}.charges_hourly (
    customer uuid NOT NULL,
    hour_ns  bigint NOT NULL,
    charges  bigint NOT NULL,
    credits  bigint NOT NULL,
    PRIMARY KEY (customer, hour_ns)
);

-- Auto top-up requests: emitted once, outstanding until their payment's outcome is recorded.
CREATE TABLE {s}.requests (
    request     uuid PRIMARY KEY,
    customer    uuid NOT NULL,
    at_ns       bigint NOT NULL,
    body        bytea NOT NULL,
    outstanding boolean NOT NULL
);
CREATE INDEX requests_outstanding ON {s}.requests (request) WHERE outstanding;
