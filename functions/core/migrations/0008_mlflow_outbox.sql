-- What train, promote and the predictor's rollbacks still have to mirror to MLflow: one row per
-- piece of work (a training's runs and model versions, a promotion's or a rollback's alias and
-- tags), written in the same transaction as the stage's result and marked once MLflow holds it.
-- Drained in id order, so a promotion is mirrored after the training it judges.
CREATE TABLE ops.mlflow_outbox (
    id              bigserial PRIMARY KEY,
    -- `training-NNNNNN`, `promotion-NNNNNN` or `rollback-NNNNNN` (by the rollback's promotion
    -- id): queued once, however often a stage retries.
    work_key        text        NOT NULL UNIQUE,
    work            jsonb       NOT NULL,
    queued_at       timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    last_error      text,
    mirrored_at     timestamptz
);
CREATE INDEX mlflow_outbox_pending ON ops.mlflow_outbox (id) WHERE mirrored_at IS NULL;
