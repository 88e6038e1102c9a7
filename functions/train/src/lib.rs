//! The train stage (in progress): for now, drift detection between the rows a production model
//! was trained on and newly cleaned rows. Retraining and the models follow.

pub mod drift;
