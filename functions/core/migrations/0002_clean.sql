-- What process stores: the clean listings and each batch's cleaning report.

CREATE SCHEMA IF NOT EXISTS clean;

-- One row per processed batch. `dropped` maps each cleaning rule to the rows it dropped (a row
-- is counted under the first rule it breaks); `stats` summarises the kept rows.
CREATE TABLE ops.clean_batches (
    batch_number integer PRIMARY KEY REFERENCES ops.batches (batch_number),
    rows_in      integer NOT NULL CHECK (rows_in >= 0),
    rows_kept    integer NOT NULL CHECK (rows_kept >= 0),
    dropped      jsonb   NOT NULL,
    stats        jsonb   NOT NULL,
    rules        jsonb   NOT NULL,
    manifest_key text    NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- The clean listings: every required field present and plausible. `row_hash` identifies a
-- listing's content, so an exact duplicate is kept once across all batches.
CREATE TABLE clean.listings (
    batch_number   integer NOT NULL REFERENCES ops.clean_batches (batch_number),
    row_index      integer NOT NULL,
    brokered_by    bigint,
    status         text    NOT NULL CHECK (status IN ('for_sale', 'sold', 'ready_to_build')),
    price          double precision NOT NULL CHECK (price > 0),
    bed            smallint NOT NULL CHECK (bed >= 0),
    bath           smallint NOT NULL CHECK (bath >= 0),
    acre_lot       double precision NOT NULL CHECK (acre_lot >= 0),
    street         bigint,
    city           text,
    state          text    NOT NULL,
    zip_code       text    NOT NULL,
    house_size     double precision NOT NULL CHECK (house_size > 0),
    prev_sold_date date,
    row_hash       bigint  NOT NULL UNIQUE,
    PRIMARY KEY (batch_number, row_index)
);
