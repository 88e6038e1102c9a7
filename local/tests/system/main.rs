//! The whole system's tests, one binary: the main job (`main_job`), the chain in Lambda mode (`lambda`), the deployments' offline checks (`deploy_checks`), Knative's adapters (`bridge`), and the fault suite (`faults`).

mod bridge;
mod deploy_checks;
mod faults;
mod lambda;
mod main_job;
mod sam_template;
