-- Explanations and lineage.

-- Each model version's global importance, computed at training as the mean absolute
-- contribution of each input field to the prices of (at most 200 of) its test rows,
-- {"rows": n, "fields": [{"field", "mean_abs_contribution"}, ...]} largest first. NULL for
-- versions trained before it was recorded.
ALTER TABLE ops.model_versions ADD COLUMN importance jsonb;

-- Every prediction's id (a version 7 UUID, time first, as the answer gave it), so that
-- GET /lineage/prediction/{id} finds it. NULL for predictions logged before ids existed.
ALTER TABLE ops.inference_log ADD COLUMN prediction_id uuid;
CREATE INDEX inference_log_prediction_id ON ops.inference_log (prediction_id);
