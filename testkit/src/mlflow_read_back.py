"""Reads back, with MLflow's own Python client, what appraise mirrored to the tracking server
at $MLFLOW_TRACKING_URI (experiment and registered model named by the two arguments), and
prints it as one JSON document for the Rust tests to compare with PostgreSQL
(`MlflowServer::read_back`). Artifacts are downloaded; each model.json is parsed and each xgboost.json is loaded
into xgboost and made to predict."""

import json
import os
import sys
import tempfile

import numpy as np
import xgboost as xgb
from mlflow import MlflowClient

experiment_name, model_name = sys.argv[1], sys.argv[2]
client = MlflowClient()
experiment = client.get_experiment_by_name(experiment_name)
out = {"experiment": None, "trainings": [], "models": [], "versions": [], "aliases": {},
       "champion": None}
if experiment is None:
    print(json.dumps(out))
    sys.exit(0)
out["experiment"] = experiment.experiment_id
runs = client.search_runs([experiment.experiment_id], max_results=1000)
scratch = tempfile.mkdtemp()
for run in runs:
    tags = run.data.tags
    if tags.get("appraise.kind") == "training":
        out["trainings"].append(
            {"key": tags["appraise.key"], "run_id": run.info.run_id,
             "status": run.info.status, "tags": tags, "params": run.data.params}
        )
        continue
    artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    loaded = {}
    for path in artifacts:
        local = client.download_artifacts(run.info.run_id, path, os.path.join(scratch, run.info.run_id))
        if path == "model.json":
            with open(local) as f:
                loaded["model.json"] = json.load(f)["version"]
        elif path == "xgboost.json":
            booster = xgb.Booster()
            booster.load_model(local)
            rows = np.zeros((3, booster.num_features()))
            loaded["xgboost.json"] = {
                "rounds": booster.num_boosted_rounds(),
                "predictions": [float(p) for p in booster.predict(xgb.DMatrix(rows))],
            }
    out["models"].append(
        {"version": tags["appraise.version"], "run_id": run.info.run_id,
         "parent": tags.get("mlflow.parentRunId"), "status": run.info.status,
         "metrics": run.data.metrics, "params": run.data.params, "tags": tags,
         "artifacts": artifacts, "loaded": loaded}
    )
for version in client.search_model_versions(f"name = '{model_name}'"):
    out["versions"].append(
        {"version": version.version, "run_id": version.run_id, "source": version.source,
         "tags": version.tags}
    )
# Every alias of the registered model, and the version it points at.
out["aliases"] = dict(client.get_registered_model(model_name).aliases)
try:
    champion = client.get_model_version_by_alias(model_name, "champion")
    out["champion"] = champion.tags.get("appraise.version")
except Exception:  # no alias yet
    pass
print(json.dumps(out))
