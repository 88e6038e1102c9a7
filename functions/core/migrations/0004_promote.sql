-- What promote and predict record: every promotion decision, the production pointer's
-- provenance, the split a training used, and the predictions served.

-- The seed of the train / validation / test split, so promote scores on the same test rows.
ALTER TABLE ops.trainings ADD COLUMN split_seed bigint NOT NULL DEFAULT 42;

-- One decision per training (candidates/ event), promoted or rejected, with both scores.
CREATE TABLE ops.promotions (
    id                 bigserial PRIMARY KEY,
    training_id        bigint NOT NULL UNIQUE REFERENCES ops.trainings (id),
    candidate_version  text   NOT NULL REFERENCES ops.model_versions (version),
    -- The model in production when the decision was taken (none before the first promotion).
    production_version text REFERENCES ops.model_versions (version),
    decision           text   NOT NULL CHECK (decision IN ('promoted', 'rejected')),
    reason             text   NOT NULL,
    -- Both models scored on the same held-out rows: the candidate training's test rows.
    candidate_metrics  jsonb  NOT NULL,
    production_metrics jsonb,
    evaluation_rows    bigint NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE ops.production ADD COLUMN promotion_id bigint REFERENCES ops.promotions (id);

-- Every prediction served, written in batches off the request path (binary COPY). Typed
-- columns rather than a JSON document: cheaper to write at thousands of rows a second, and
-- queryable as they are. A BRIN index on time costs next to nothing to maintain.
CREATE TABLE ops.inference_log (
    predicted_at    timestamptz NOT NULL,
    model_version   text NOT NULL,
    brokered_by     bigint,
    status          text,
    bed             double precision NOT NULL,
    bath            double precision NOT NULL,
    acre_lot        double precision NOT NULL,
    house_size      double precision NOT NULL,
    city            text,
    state           text,
    zip_code        text,
    prev_sold_date  date,
    predicted_price double precision NOT NULL,
    latency_us      integer NOT NULL
);
CREATE INDEX inference_log_predicted_at ON ops.inference_log USING brin (predicted_at);
