-- Dead letters: CloudEvents Knative gave up delivering (the Broker's and every Trigger's
-- deadLetterSink is the bridge's POST /dead-letters). One row per event and address it could
-- not be delivered to: keyed as CloudEvents identify an event (source and id) plus
-- knativeerrordest, so a dead letter Knative sends twice is stored once, while the same event
-- given up by the Broker and by a Trigger (or by two Triggers) is stored once for each.
CREATE TABLE ops.dead_letters (
    source           text NOT NULL,
    id               text NOT NULL,
    type             text NOT NULL,
    subject          text,
    time             timestamptz,
    -- The stage the event was for, from knativeerrordest: ingest, process, train, promote,
    -- predict, or other (the label of the dead_letters_total metric).
    destination      text NOT NULL
        CHECK (destination IN ('ingest', 'process', 'train', 'promote', 'predict', 'other')),
    -- Knative's error extensions: the URL it could not deliver to, the HTTP status it got
    -- (absent when it got none), and the start of the answer's body, base64 as Knative sent it
    -- (cut at 1024 characters, so possibly without its end).
    knativeerrordest text,
    knativeerrorcode integer,
    -- knativeerrordest with absent as '', for the key (a key column cannot be NULL).
    knativeerrordest_key text NOT NULL GENERATED ALWAYS AS (coalesce(knativeerrordest, '')) STORED,
    knativeerrordata text,
    -- Every other extension attribute (traceparent, knativearrivaltime, ...), as strings; also
    -- the raw time or knativeerrorcode when they do not parse (the columns are then NULL).
    extensions       jsonb NOT NULL DEFAULT '{}',
    datacontenttype  text,
    -- The event's data: JSON as JSON; anything else, base64 in data_base64.
    data             jsonb,
    data_base64      text,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id, knativeerrordest_key)
);
CREATE INDEX dead_letters_received ON ops.dead_letters (received_at);
