//! The SAM template as CloudFormation sees it: `infra/checks/check_sam_transform.py` transforms
//! it with aws-sam-translator (offline, pinned in the tools venv by scripts/setup-tools.sh) and
//! checks what a first deployment needs: a public predictor URL that answers, least privilege
//! on the bucket, reserved concurrency, an EventBridge Scheduler schedule with retries and a
//! dead-letter queue, alarms on the dead-letter queues, log retention, a retained bucket; and
//! the functions on the `Architecture` parameter from build.sh's zips, secrets read from Secrets
//! Manager with exactly their grants, the source's URL streaming, JSON logs at a parameter's
//! level, an alarm on rejected events over the EMF metric the code writes, the VPC parameters.
//! Deliberately broken copies must fail with a message naming the problem. The schedule's
//! input, once Scheduler fills it in, must be an event ingest accepts as a firing.
//!
//! Without the tools venv the tests are skipped with a note, except in CI (`CI=true`), where
//! that is a failure, as for cfn-lint in `lambda`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use appraise_core::events::{self, Trigger};
use serde_json::Value;

use appraise_testkit::fixtures;

use super::deploy_checks::{text, workspace};

fn template() -> PathBuf {
    workspace().join("infra/sam/template.yaml")
}

/// The tools venv's Python, or `None` (the test is skipped) when it is missing outside CI.
fn python_or_skip() -> Option<PathBuf> {
    let python = fixtures::tools_venv().join("bin/python");
    if python.exists() {
        return Some(python);
    }
    fixtures::skip_without_tool(&format!(
        "{} is missing: `bash scripts/setup-tools.sh` installs aws-sam-translator there",
        python.display()
    ));
    None
}

fn check(python: &Path, template: &Path) -> Output {
    let mut command = Command::new(python);
    command
        .arg(workspace().join("infra/checks/check_sam_transform.py"))
        .arg(template);
    command
        .output()
        .unwrap_or_else(|error| panic!("running {command:?}: {error}"))
}

/// A copy of the template with `edit` applied, in `dir`; `edit` must change it.
fn broken_copy(dir: &Path, name: &str, edit: impl FnOnce(&str) -> String) -> PathBuf {
    let original = std::fs::read_to_string(template()).unwrap();
    let broken = edit(&original);
    assert_ne!(broken, original, "{name}: the edit changed nothing");
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, broken).unwrap();
    path
}

/// `text` with the one occurrence of `from` replaced; panics naming `from` when the template no
/// longer has it (update the test with the template).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the template should contain this exactly once:\n{from}"
    );
    text.replacen(from, to, 1)
}

#[test]
fn the_sam_template_transforms_into_what_a_first_deployment_needs() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let output = check(&python, &template());
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for assertion in [
        "ok: SAM transforms the template",
        "ok: with PredictUrlAuthType=NONE the predictor's function URL is publicly invokable",
        "ok: with PredictUrlAuthType=AWS_IAM the URL takes signed requests only",
        "ok: IngestFunction may touch only its own keys in the bucket",
        "ok: ProcessFunction may touch only its own keys in the bucket",
        "ok: TrainFunction may touch only its own keys in the bucket",
        "ok: PromoteFunction may touch only its own keys in the bucket",
        "ok: PredictFunction may touch only its own keys in the bucket",
        "ok: TrainFunction has reserved concurrency 1",
        "ok: PromoteFunction has reserved concurrency 1",
        "ok: PredictFunction's reserved concurrency is the PredictReservedConcurrency parameter",
        "ok: ingest runs on an EventBridge Scheduler schedule",
        "has a retry policy",
        "has a dead-letter queue (ScheduleFailures)",
        "ok: dead-letter queue FailedEvents",
        "ok: dead-letter queue ScheduleFailures",
        "ok: IngestFunction logs to a log group /aws/lambda/IngestFunction with a retention",
        "ok: PredictFunction logs to a log group /aws/lambda/PredictFunction with a retention",
        "ok: DataBucket has DeletionPolicy and UpdateReplacePolicy Retain",
        "ok: the Architecture parameter is arm64 by default, or x86_64",
        "ok: every function runs on the Architecture parameter (Architecture=arm64)",
        "ok: every function runs on the Architecture parameter (Architecture=x86_64)",
        "ok: every function's code is the zip infra/sam/build.sh builds for it",
        "ok: ProcessFunction reads its secrets from Secrets Manager, and only those (without a reload token secret)",
        "ok: PredictFunction reads its secrets from Secrets Manager, and only those (with a reload token secret)",
        "ok: SourceFunction reads its secrets from Secrets Manager, and only those",
        "ok: the stand-in source's function URL streams (InvokeMode RESPONSE_STREAM)",
        "ok: the predictor's function URL is BUFFERED",
        "ok: TrainFunction logs JSON at the ApplicationLogLevel parameter",
        "ok: an alarm (StageRejectionsAlarm) goes off when a stage rejects an event",
        "ok: with SubnetIds and SecurityGroupIds every function that uses the database runs in them",
        "ok: without SubnetIds no function is in a VPC",
        "ok: the stand-in source stays out of the VPC",
        "all checks passed",
    ] {
        assert!(
            stdout.contains(assertion),
            "missing {assertion:?}:\n{stdout}"
        );
    }

    // The input Scheduler hands ingest, its context attributes filled in as Scheduler does: a
    // schedule firing whose id is the scheduled time, the same for every attempt.
    let input = stdout
        .lines()
        .find_map(|line| line.strip_prefix("schedule input: "))
        .unwrap_or_else(|| panic!("the check printed no schedule input:\n{stdout}"));
    let filled = input
        .replace("<aws.scheduler.scheduled-time>", "2026-11-27T12:00:00Z")
        .replace(
            "<aws.scheduler.schedule-arn>",
            "arn:aws:scheduler:us-east-1:123456789012:schedule/default/IngestFunctionSchedule",
        )
        .replace("<aws.scheduler.execution-id>", "d32c5kddcf5bb8c3")
        .replace("<aws.scheduler.attempt-number>", "2");
    let event: Value = serde_json::from_str(&filled).unwrap();
    let triggers = events::from_json(event).unwrap();
    match triggers.as_slice() {
        [Trigger::Schedule(tick)] => {
            assert_eq!(tick.id.as_deref(), Some("2026-11-27T12:00:00Z"), "{tick:?}");
            assert_eq!(
                tick.time.as_deref(),
                Some("2026-11-27T12:00:00Z"),
                "{tick:?}"
            );
        }
        other => panic!("ingest does not take the schedule's input as a firing: {other:?}"),
    }
}

#[test]
fn broken_copies_of_the_sam_template_fail_the_transform_check_naming_the_problem() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        // The bug this check exists for: the URL configured through SAM with the auth type a
        // parameter, so SAM adds no public permission and the URL answers 403 to everyone.
        (
            broken_copy(dir.path(), "auth-type-ref", |template| {
                let start = template
                    .find("  # The predictor's function URL, written out")
                    .expect("the predictor URL's comment");
                let end = template
                    .find("  # The stand-in batch API")
                    .expect("the source's comment");
                format!(
                    "{}      FunctionUrlConfig:\n        AuthType: !Ref PredictUrlAuthType\n        \
                     InvokeMode: BUFFERED\n\n{}",
                    &template[..start],
                    &template[end..]
                )
            }),
            "the predictor's function URL would answer 403 to everyone: PredictFunction lacks \
             the public AWS::Lambda::Permission",
        ),
        // S3CrudPolicy back on process: the whole bucket, deletes included.
        (
            broken_copy(dir.path(), "crud-policy", |template| {
                replace_once(
                    template,
                    "        - Statement:\n            - Sid: ReadRaw\n",
                    "        - S3CrudPolicy:\n            BucketName: !Ref BucketName\n        \
                     - Statement:\n            - Sid: ReadRaw\n",
                )
            }),
            "ProcessFunction may touch only its own keys in the bucket: role ProcessFunctionRole: \
             s3:GetObject on the bucket itself is more than it needs",
        ),
        // The predictor without its cap.
        (
            broken_copy(dir.path(), "no-predict-cap", |template| {
                replace_once(
                    template,
                    "      ReservedConcurrentExecutions: !Ref PredictReservedConcurrency\n",
                    "",
                )
            }),
            "the public predictor could scale to the account's limit",
        ),
        // Back to an EventBridge rule.
        (
            broken_copy(dir.path(), "schedule-rule", |template| {
                let start = template
                    .find("          Type: ScheduleV2\n")
                    .expect("the ScheduleV2 event");
                let end = template
                    .find("  ProcessFunction:\n")
                    .expect("the process function");
                format!(
                    "{}          Type: Schedule\n          Properties:\n            \
                     Schedule: !Ref IngestSchedule\n            State: !Ref IngestScheduleState\n\n{}",
                    &template[..start],
                    &template[end..]
                )
            }),
            "ingest runs on an EventBridge Scheduler schedule (AWS::Scheduler::Schedule, \
             ScheduleV2): schedules [], EventBridge rules ['IngestFunctionSchedule']",
        ),
        // A dead-letter queue nobody watches.
        (
            broken_copy(dir.path(), "no-alarm", |template| {
                replace_once(
                    template,
                    "          Value: !GetAtt ScheduleFailures.QueueName\n",
                    "          Value: !GetAtt FailedEvents.QueueName\n",
                )
            }),
            "dead-letter queue ScheduleFailures (IngestFunctionSchedule DeadLetterConfig) has an \
             alarm on ApproximateNumberOfMessagesVisible > 0: no AWS::CloudWatch::Alarm watches it",
        ),
        // Logs kept forever.
        (
            broken_copy(dir.path(), "no-retention", |template| {
                replace_once(
                    template,
                    "      LogGroupName: !Sub /aws/lambda/${TrainFunction}\n      \
                     RetentionInDays: !Ref LogRetentionDays\n",
                    "      LogGroupName: !Sub /aws/lambda/${TrainFunction}\n",
                )
            }),
            "no AWS::Logs::LogGroup named !Sub /aws/lambda/${TrainFunction} with RetentionInDays",
        ),
        // A bucket `sam delete` would take with it.
        (
            broken_copy(dir.path(), "bucket-deleted", |template| {
                replace_once(template, "    DeletionPolicy: Retain\n", "")
            }),
            "DataBucket has DeletionPolicy and UpdateReplacePolicy Retain: DeletionPolicy None",
        ),
        // The functions pinned to one processor, whatever zips were built.
        (
            broken_copy(dir.path(), "architecture-pinned", |template| {
                replace_once(
                    template,
                    "    Architectures: [!Ref Architecture]\n",
                    "    Architectures: [x86_64]\n",
                )
            }),
            "every function runs on the Architecture parameter (Architecture=arm64): these do not \
             follow it",
        ),
        // A function deployed from a zip build.sh does not make.
        (
            broken_copy(dir.path(), "code-uri", |template| {
                replace_once(
                    template,
                    "      CodeUri: ../../target/lambda/predict/bootstrap.zip\n",
                    "      CodeUri: ../../target/lambda/predictor/bootstrap.zip\n",
                )
            }),
            "PredictFunction's CodeUri is '../../target/lambda/predictor/bootstrap.zip'",
        ),
        // The database URL back in the environment, in plain text.
        (
            broken_copy(dir.path(), "plaintext-database-url", |template| {
                replace_once(
                    template,
                    "        DATABASE_POOL_SIZE: \"2\"\n",
                    "        DATABASE_POOL_SIZE: \"2\"\n        DATABASE_URL: postgres://u:p@db/appraise\n",
                )
            }),
            "DATABASE_URL is in its environment in plain text",
        ),
        // A function that reads the secret without the right to.
        (
            broken_copy(dir.path(), "no-secret-grant", |template| {
                replace_once(
                    template,
                    "        - AWSSecretsManagerGetSecretValuePolicy:\n            SecretArn: !Ref \
                     DatabaseSecretArn\n        - Statement:\n            - Sid: ReadRaw\n",
                    "        - Statement:\n            - Sid: ReadRaw\n",
                )
            }),
            "ProcessFunction reads its secrets from Secrets Manager, and only those (without a \
             reload token secret): its role ProcessFunctionRole may read the secrets [], not exactly",
        ),
        // The source behind a buffered URL: every batch above 6 MB would fail.
        (
            broken_copy(dir.path(), "source-buffered", |template| {
                replace_once(
                    template,
                    "        InvokeMode: RESPONSE_STREAM\n",
                    "        InvokeMode: BUFFERED\n",
                )
            }),
            "its InvokeMode is 'BUFFERED': a BUFFERED URL refuses every answer above 6 MB",
        ),
        // Logs as plain text.
        (
            broken_copy(dir.path(), "text-logs", |template| {
                replace_once(
                    template,
                    "      LogFormat: JSON\n",
                    "      LogFormat: Text\n",
                )
            }),
            "IngestFunction logs JSON at the ApplicationLogLevel parameter: its LoggingConfig is",
        ),
        // The rejection alarm over a dimension set the code does not write: it would never fire.
        (
            broken_copy(dir.path(), "rejections-wrong-dimensions", |template| {
                replace_once(
                    template,
                    "SCHEMA(appraise, outcome, service, trigger)",
                    "SCHEMA(appraise, outcome, service)",
                )
            }),
            "no alarm sums stage_invocations_total WHERE outcome = 'rejected' FROM \
             SCHEMA(['appraise'], outcome, service, trigger) > 0",
        ),
        // The functions left outside the VPC the database is in.
        (
            broken_copy(dir.path(), "no-vpc", |template| {
                replace_once(
                    template,
                    "    VpcConfig: !If\n      - InVpc\n      - SubnetIds: !Ref SubnetIds\n        \
                     SecurityGroupIds: !Ref SecurityGroupIds\n      - !Ref AWS::NoValue\n",
                    "",
                )
            }),
            "with SubnetIds and SecurityGroupIds every function that uses the database runs in \
             them: not in the VPC",
        ),
        // The source in the VPC with the others: its streamed URL would not work.
        (
            broken_copy(dir.path(), "source-in-vpc", |template| {
                replace_once(template, "      VpcConfig: !Ref AWS::NoValue\n", "")
            }),
            "the stand-in source stays out of the VPC (no database; function URLs do not stream \
             within a VPC environment): with SubnetIds it is in the VPC",
        ),
    ];
    for (copy, problem) in cases {
        let output = check(&python, &copy);
        let shown = text(&output);
        assert!(
            !output.status.success(),
            "{} passed the check:\n{shown}",
            copy.display()
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(problem),
            "{}: the failure does not name {problem:?}:\n{shown}",
            copy.display()
        );
    }
}
