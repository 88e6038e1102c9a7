-- Explanations: each model version's global importance, computed at training as the mean
-- absolute contribution of each input field to the prices of (at most 200 of) its test rows,
-- {"rows": n, "fields": [{"field", "mean_abs_contribution"}, ...]} largest first. NULL for
-- versions trained before it was recorded.
ALTER TABLE ops.model_versions ADD COLUMN importance jsonb;
