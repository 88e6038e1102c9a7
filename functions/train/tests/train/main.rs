//! The train stage's tests, one binary: the stage (`stage`), its recovery from crashes and lost
//! events (`recovery`), Python's xgboost reading its models (`xgboost_python`), the models'
//! explanations, checked against xgboost's own (`explain`), and the learners' test RMSE against
//! xgboost's and scikit-learn's on the same feature matrix (`quality`).

mod explain;
mod quality;
mod recovery;
mod stage;
mod support;
mod xgboost_python;
