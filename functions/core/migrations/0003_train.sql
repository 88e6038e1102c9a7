-- What train records: drift reports, every retrain decision, trainings, model versions.

-- Drift of a clean batch's new rows against the rows the production model was trained on.
CREATE TABLE ops.drift_reports (
    id                 bigserial PRIMARY KEY,
    batch_number       integer NOT NULL REFERENCES ops.clean_batches (batch_number),
    reference_training bigint,
    report             jsonb   NOT NULL,
    drifted            boolean NOT NULL,
    worst_feature      text,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- One decision per clean batch event, whether it trained or not, and why.
CREATE TABLE ops.trainings (
    id              bigserial PRIMARY KEY,
    batch_number    integer NOT NULL UNIQUE REFERENCES ops.clean_batches (batch_number),
    decision        text    NOT NULL CHECK (decision IN ('train', 'skip')),
    reason          text    NOT NULL,
    new_rows        bigint  NOT NULL,
    drift_report_id bigint REFERENCES ops.drift_reports (id),
    -- A training uses the clean rows of batches first_batch..=last_batch.
    first_batch     integer NOT NULL,
    last_batch      integer NOT NULL,
    rows_train      bigint,
    rows_validation bigint,
    rows_test       bigint,
    feature_spec    jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per trained model, with its lineage.
CREATE TABLE ops.model_versions (
    version       text PRIMARY KEY,
    training_id   bigint NOT NULL REFERENCES ops.trainings (id),
    algorithm     text   NOT NULL,
    params        jsonb  NOT NULL,
    validation    jsonb  NOT NULL,
    test          jsonb  NOT NULL,
    fit_seconds   double precision NOT NULL,
    artifact_key  text   NOT NULL,
    code_version  text   NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The production pointer (one row at most); promote moves it.
CREATE TABLE ops.production (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version     text NOT NULL REFERENCES ops.model_versions (version),
    promoted_at timestamptz NOT NULL DEFAULT now()
);
