-- Stage runs: one row per batch and stage, the operator's view of the pipeline (GET /runs on
-- the predictor, the page's Runs grid). See core's runs module.
--
-- A stage writes its row in the same transaction as its result (state done or skipped); a
-- failed attempt, whose transaction rolled back, writes it in a short transaction of its own
-- afterwards (state failed, with the error), which never overwrites a done or skipped row.
-- `attempts` counts the attempts that did the work or failed trying; a duplicate event that
-- finds the work done changes nothing. A stage with no row is waiting. A training's id is its
-- batch's number, so train and promote rows are keyed by the batch too.
CREATE TABLE ops.stage_runs (
    batch_number     integer NOT NULL CHECK (batch_number >= 0),
    stage            text    NOT NULL CHECK (stage IN ('ingest', 'process', 'train', 'promote')),
    state            text    NOT NULL CHECK (state IN ('done', 'skipped', 'failed')),
    -- Why it skipped, or what it decided (train's reason to train, promote's verdict).
    note             text,
    -- The last failed attempt's error; kept once a later attempt succeeds.
    error            text,
    -- The last attempt's start and how long it took (unknown for rows from before this table).
    started_at       timestamptz NOT NULL,
    duration_seconds double precision CHECK (duration_seconds >= 0),
    rows_in          bigint CHECK (rows_in >= 0),
    rows_out         bigint CHECK (rows_out >= 0),
    attempts         integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (batch_number, stage)
);

-- The work done before this table existed, from the stages' own records (no durations).
INSERT INTO ops.stage_runs (batch_number, stage, state, started_at, rows_in, rows_out)
SELECT batch_number, 'ingest', 'done', ingested_at, rows_received, rows_sampled
FROM ops.batches;
INSERT INTO ops.stage_runs (batch_number, stage, state, started_at, rows_in, rows_out)
SELECT batch_number, 'process', 'done', processed_at, rows_in, rows_kept
FROM ops.clean_batches;
INSERT INTO ops.stage_runs (batch_number, stage, state, note, started_at, rows_in)
SELECT batch_number, 'train', CASE decision WHEN 'train' THEN 'done' ELSE 'skipped' END, reason,
       created_at, CASE decision WHEN 'train' THEN rows_train + rows_validation + rows_test END
FROM ops.trainings;
INSERT INTO ops.stage_runs (batch_number, stage, state, note, started_at, rows_in)
SELECT training_id::integer, 'promote', 'done', decision || ': ' || reason, created_at, evaluation_rows
FROM ops.promotions
-- A rollback (migration 0007) shares its training's id; it is no run of the promote stage.
WHERE kind = 'decision';
