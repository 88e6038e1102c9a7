//! The train stage's tests, one binary: the stage (`stage`) and Python's xgboost reading its models (`xgboost_python`).

mod stage;
mod xgboost_python;
