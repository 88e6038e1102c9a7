//! The whole system's tests, one binary: the main job (`main_job`), the chain in Lambda mode
//! (`lambda`), the source's big batches streamed through a function URL (`lambda_streaming`), the deployments' offline checks (`deploy_checks`, the kustomization as kubectl
//! builds it in `kustomize`, the SAM template as a deploy transforms it in `sam_template`),
//! Knative's adapters (`bridge`, and the bridge's dead-letter sink in `dead_letters`, both
//! checked against the CloudEvents SDK in `cloud_events_sdk`), and the fault suite (`faults`).

mod bridge;
mod cloud_events_sdk;
mod dead_letters;
mod deploy_checks;
mod faults;
mod kustomize;
mod lambda;
mod lambda_streaming;
mod main_job;
mod sam_template;
