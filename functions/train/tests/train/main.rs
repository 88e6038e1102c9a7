//! The train stage's tests, one binary: the stage (`stage`), its recovery from crashes and lost
//! events (`recovery`), Python's xgboost reading its models (`xgboost_python`), and the models'
//! explanations, checked against xgboost's own (`explain`).

mod explain;
mod recovery;
mod stage;
mod support;
mod xgboost_python;
