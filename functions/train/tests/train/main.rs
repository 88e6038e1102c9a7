//! The train stage's tests, one binary: the stage (`stage`), its recovery from crashes and lost
//! events (`recovery`), and Python's xgboost reading its models (`xgboost_python`).

mod recovery;
mod stage;
mod support;
mod xgboost_python;
