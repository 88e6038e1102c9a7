"""Fits one model of a real Python library on an exported feature matrix and scores it.

The matrices are CSVs written by appraise's `fit::export::write_feature_matrix` (a header of
the feature names and `price`; an empty field is a missing value). The models take the
parameters appraise's own learners default to, so the two can be compared on identical rows:

  xgboost  xgboost.train, tree_method="hist", 100 rounds, max_depth 6, eta 0.1, lambda 1,
           min_child_weight 1, max_bin 256, squared error, base_score left to XGBoost's
           estimate;
  forest   sklearn.ensemble.RandomForestRegressor(n_estimators=TREES, max_depth=10,
           max_features=1.0, min_samples_leaf=1, bootstrap, random_state=42).

Usage: fit_matrix.py {xgboost|forest} TRAIN.csv TEST.csv [--threads N] [--trees N]

Prints one JSON line: model, library, version, train_rows, test_rows, fit_seconds (the fit
alone, after loading; for xgboost including the DMatrix), test_rmse.
"""

import argparse
import json
import time

import numpy as np


def load(path):
    """The feature matrix and the prices of a CSV (the last column is `price`). pandas reads
    a million rows in seconds where numpy's genfromtxt takes a minute; either gives NaN for an
    empty field."""
    try:
        import pandas
    except ImportError:
        table = np.atleast_2d(np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64))
    else:
        table = pandas.read_csv(path, dtype=np.float64).to_numpy()
    return table[:, :-1], table[:, -1]


def fit_xgboost(train_x, train_y, threads, _trees):
    import xgboost

    started = time.perf_counter()
    train = xgboost.DMatrix(train_x, label=train_y, missing=np.nan, nthread=threads)
    params = {
        "objective": "reg:squarederror",
        "tree_method": "hist",
        "max_depth": 6,
        "eta": 0.1,
        "lambda": 1.0,
        "min_child_weight": 1.0,
        "max_bin": 256,
        "nthread": threads,
        "seed": 42,
    }
    booster = xgboost.train(params, train, num_boost_round=100)
    fit_seconds = time.perf_counter() - started

    def predict(x):
        return booster.predict(xgboost.DMatrix(x, missing=np.nan, nthread=threads))

    return "xgboost", xgboost.__version__, fit_seconds, predict


def fit_forest(train_x, train_y, threads, trees):
    import sklearn
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(
        n_estimators=trees,
        max_depth=10,
        max_features=1.0,
        min_samples_leaf=1,
        bootstrap=True,
        n_jobs=threads,
        random_state=42,
    )
    started = time.perf_counter()
    model.fit(train_x, train_y)
    fit_seconds = time.perf_counter() - started
    return "scikit-learn", sklearn.__version__, fit_seconds, model.predict


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["xgboost", "forest"])
    parser.add_argument("train_csv")
    parser.add_argument("test_csv")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trees", type=int, default=100, help="forest only")
    args = parser.parse_args()

    train_x, train_y = load(args.train_csv)
    test_x, test_y = load(args.test_csv)
    fit = {"xgboost": fit_xgboost, "forest": fit_forest}[args.model]
    library, version, fit_seconds, predict = fit(train_x, train_y, args.threads, args.trees)
    predicted = predict(test_x)
    rmse = float(np.sqrt(np.mean((predicted - test_y) ** 2)))
    print(
        json.dumps(
            {
                "model": args.model,
                "library": library,
                "version": version,
                "train_rows": int(train_x.shape[0]),
                "test_rows": int(test_x.shape[0]),
                "fit_seconds": fit_seconds,
                "test_rmse": rmse,
            }
        )
    )


if __name__ == "__main__":
    main()
