-- The foundation: what ingest stores.

CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS ops;

-- Objects to write once the transaction that queued them commits (see core's outbox module):
-- the manifests whose object-created events wake the next stage.
CREATE TABLE ops.outbox (
    key        text PRIMARY KEY,
    body       text NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    written_at timestamptz
);
CREATE INDEX outbox_unwritten ON ops.outbox (queued_at) WHERE written_at IS NULL;

-- One row per batch taken from the batch API, written in the same transaction as the batch's
-- listings and the outbox entry of its raw/ manifest.
CREATE TABLE ops.batches (
    batch_number   integer PRIMARY KEY CHECK (batch_number >= 0),
    group_number   integer NOT NULL,
    day            text,
    rows_received  integer NOT NULL CHECK (rows_received >= 0),
    rows_sampled   integer NOT NULL CHECK (rows_sampled >= 0),
    rows_flagged   integer NOT NULL CHECK (rows_flagged >= 0),
    sample_seed    bigint  NOT NULL,
    response_key   text    NOT NULL,
    response_bytes bigint  NOT NULL,
    manifest_key   text    NOT NULL,
    ingested_at    timestamptz NOT NULL DEFAULT now()
);

-- Every schedule firing ingest acted on, so a redelivery of the same firing does nothing.
CREATE TABLE ops.schedule_ticks (
    trigger_id   text PRIMARY KEY,
    outcome      text NOT NULL CHECK (outcome IN ('stored', 'exhausted')),
    batch_number integer REFERENCES ops.batches (batch_number),
    handled_at   timestamptz NOT NULL DEFAULT now()
);

-- The ingest cursor's bookkeeping (one row). `fetch_in_flight_for` is the batch number a fetch
-- was started for and not stored yet: if the batch API then says it has nothing left, that batch
-- may have been lost in flight, and ingest rewinds the API to look for it.
CREATE TABLE ops.ingest_cursor (
    singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fetch_in_flight_for integer,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ops.ingest_cursor DEFAULT VALUES;

-- The sampled listings, typed, in the batch's order. A record with missing or wrong-typed
-- fields is kept: what could be read is in the columns, `problems` says what could not, and
-- `original` holds the record as received.
CREATE TABLE raw.listings (
    batch_number   integer NOT NULL REFERENCES ops.batches (batch_number),
    row_index      integer NOT NULL CHECK (row_index >= 0),
    brokered_by    bigint,
    status         text,
    price          double precision,
    bed            double precision,
    bath           double precision,
    acre_lot       double precision,
    street         bigint,
    city           text,
    state          text,
    zip_code       text,
    house_size     double precision,
    prev_sold_date date,
    problems       text[] NOT NULL DEFAULT '{}',
    original       jsonb,
    PRIMARY KEY (batch_number, row_index)
);

CREATE INDEX listings_flagged ON raw.listings (batch_number) WHERE cardinality(problems) > 0;
