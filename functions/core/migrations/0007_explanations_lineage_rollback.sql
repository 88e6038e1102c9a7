-- Explanations, lineage and rollbacks.

-- Each model version's global importance, computed at training as the mean absolute
-- contribution of each input field to the prices of (at most 200 of) its test rows,
-- {"rows": n, "fields": [{"field", "mean_abs_contribution"}, ...]} largest first. NULL for
-- versions trained before it was recorded.
ALTER TABLE ops.model_versions ADD COLUMN importance jsonb;

-- Every prediction's id (a version 7 UUID, time first, as the answer gave it), so that
-- GET /lineage/prediction/{id} finds it. NULL for predictions logged before ids existed.
ALTER TABLE ops.inference_log ADD COLUMN prediction_id uuid;
CREATE INDEX inference_log_prediction_id ON ops.inference_log (prediction_id);

-- Rollbacks: a promotion row is either promote's decision on a training ('decision', one per
-- training, as before) or a model put back in production by hand ('rollback': the predictor's
-- POST /models/{version}/promote; decision 'promoted', production_version the model it
-- replaced, candidate_metrics the model's recorded test metrics, not a new evaluation).
ALTER TABLE ops.promotions ADD COLUMN kind text NOT NULL DEFAULT 'decision'
    CHECK (kind IN ('decision', 'rollback'));
ALTER TABLE ops.promotions DROP CONSTRAINT promotions_training_id_key;
CREATE UNIQUE INDEX promotions_one_decision_per_training ON ops.promotions (training_id)
    WHERE kind = 'decision';
