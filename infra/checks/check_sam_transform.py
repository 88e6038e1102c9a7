#!/usr/bin/env python3
"""Transforms the SAM template with aws-sam-translator, offline, and checks the CloudFormation
SAM makes of it: what a first deployment needs and what cfn-lint cannot see in the SAM source.

    target/tools-venv/bin/python infra/checks/check_sam_transform.py [infra/sam/template.yaml]

Asserts, printing one `ok:` line per assertion (or `FAIL:` lines, and exits 1):

- the predictor's function URL is public with PredictUrlAuthType=NONE: the URL's auth type is
  NONE and the predictor has every public permission SAM gives the stand-in source's URL
  (`AuthType: NONE` literally): lambda:InvokeFunctionUrl with FunctionUrlAuthType NONE and
  lambda:InvokeFunction with InvokedViaFunctionUrl; with AWS_IAM it has neither;
- least privilege on the bucket: each function's role grants only the S3 actions on the keys
  its code uses (EXPECTED_S3 below), every one it needs, and no S3 managed policy;
- reserved concurrency: 1 for train and promote, the PredictReservedConcurrency parameter for
  the predictor;
- ingest runs on an EventBridge Scheduler schedule (AWS::Scheduler::Schedule, no rule) with a
  retry policy, a dead-letter queue and an input ingest recognises redeliveries by;
- every dead-letter queue (Lambda's on-failure destinations, the schedule's) has a CloudWatch
  alarm on ApproximateNumberOfMessagesVisible > 0;
- every function has an AWS::Logs::LogGroup /aws/lambda/<function> with a retention;
- every bucket has DeletionPolicy and UpdateReplacePolicy Retain;
- the architecture: every function runs on the `Architecture` parameter (default arm64, or
  x86_64), and its CodeUri is the zip infra/sam/build.sh writes for it
  (target/lambda/<function>/bootstrap.zip, every function build.sh builds), the CA bundle
  layer's ContentUri the folder build.sh fills;
- secrets: no function has a plaintext DATABASE_URL or PREDICT_RELOAD_TOKEN; the functions that
  use the database read it from the DatabaseSecretArn secret (DATABASE_URL_SECRET_ID) and the
  predictor its reload token from PredictReloadTokenSecretArn when one is given
  (PREDICT_RELOAD_TOKEN_SECRET_ID), each role allowed secretsmanager:GetSecretValue on exactly
  those ARNs and nothing else of Secrets Manager;
- the stand-in source's function URL streams (RESPONSE_STREAM: its batches exceed a buffered
  URL's 6 MB), the predictor's stays BUFFERED;
- every function logs JSON (LoggingConfig LogFormat JSON) at the ApplicationLogLevel parameter;
- an alarm on rejected events: a Metrics Insights query summing stage_invocations_total with
  outcome 'rejected' over the namespace the functions write (APPRAISE_METRICS_NAMESPACE) and
  the dimensions the code gives it (service and the counter's labels in
  functions/core/src/runtime.rs), notifying the alarm topic;
- the VPC parameters: with SubnetIds and SecurityGroupIds every function that uses the database
  runs in them, the stand-in source never (it streams through its URL); without, none is in a
  VPC.

No AWS account is needed: the transform gets a stub managed-policy map and a fixed region.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse
from sam_stack import (  # the transformed template, read back
    BUCKET,
    DATABASE_SECRET,
    RELOAD_TOKEN_SECRET,
    ROOT,
    Report,
    Stack,
    function_url,
    load,
    local_code,
    logical_target,
    parameters_for,
    public_permissions,
    role_of,
    translate,
)


# The announcements every stage that commits work may have to (re)write when it flushes the
# outbox (functions/core/src/outbox.rs flushes every unwritten key, not only its own), and the
# catch-up in ingest re-announces (functions/core/src/catch_up.rs).
ANNOUNCEMENTS = [
    "raw/batch-*/manifest.json",
    "clean/batch-*/manifest.json",
    "candidates/training-*.json",
    "production/current.json",
]
ANNOUNCED = [
    "raw/batch-000001/manifest.json",
    "clean/batch-000001/manifest.json",
    "candidates/training-000001.json",
    "production/current.json",
]
# The bucket itself (s3:ListBucket): without it S3 answers a missing key with 403, not 404.
BUCKET_ITSELF = ""

# Per function and S3 action: `allowed`, the key patterns it may be granted (a grant must fall
# within one), and `needed`, keys its code touches (each must be granted). From the code:
#   ingest   functions/ingest/src/store.rs   put raw/batch-N/response.json.gz, flush
#   process  functions/process/src/lib.rs    head raw/…/manifest.json, flush (clean/ manifest)
#   train    functions/train/src/lib.rs      put models/<v>/{model,xgboost}.json, list and
#            delete models/ (orphan sweep), head clean/…/manifest.json, flush (candidates/)
#   promote  functions/promote/src/lib.rs    get models/<v>/model.json, head candidates/…,
#            flush (production/current.json)
#   predict  functions/predict/src/model_slot.rs  get production/current.json, models/<v>/…;
#            functions/core/src/runs.rs (re-runs) flush (every announcement),
#            functions/predict/src/runs.rs put triggers/ingest/<id>.json
EXPECTED_S3: dict[str, dict[str, dict[str, list[str]]]] = {
    "IngestFunction": {
        "s3:PutObject": {
            "allowed": ["raw/*", *ANNOUNCEMENTS],
            "needed": ["raw/batch-000001/response.json.gz", *ANNOUNCED],
        },
    },
    "ProcessFunction": {
        "s3:GetObject": {"allowed": ["raw/*"], "needed": ["raw/batch-000001/manifest.json"]},
        "s3:PutObject": {"allowed": ["clean/*", *ANNOUNCEMENTS], "needed": ANNOUNCED},
        "s3:ListBucket": {"allowed": [BUCKET_ITSELF], "needed": [BUCKET_ITSELF]},
    },
    "TrainFunction": {
        "s3:GetObject": {
            "allowed": ["clean/*", "models/*"],
            "needed": ["clean/batch-000001/manifest.json"],
        },
        "s3:PutObject": {
            "allowed": ["models/*", "candidates/*", *ANNOUNCEMENTS],
            "needed": [
                "models/t000001-xgboost/model.json",
                "models/t000001-xgboost/xgboost.json",
                *ANNOUNCED,
            ],
        },
        "s3:DeleteObject": {
            "allowed": ["models/*"],
            "needed": ["models/t000000-orphan/model.json"],
        },
        "s3:ListBucket": {"allowed": [BUCKET_ITSELF], "needed": [BUCKET_ITSELF]},
    },
    "PromoteFunction": {
        "s3:GetObject": {
            "allowed": ["candidates/*", "models/*"],
            "needed": ["candidates/training-000001.json", "models/t000001-xgboost/model.json"],
        },
        "s3:PutObject": {"allowed": ["production/*", *ANNOUNCEMENTS], "needed": ANNOUNCED},
        "s3:ListBucket": {"allowed": [BUCKET_ITSELF], "needed": [BUCKET_ITSELF]},
    },
    "PredictFunction": {
        "s3:GetObject": {
            "allowed": ["models/*", "production/*"],
            "needed": ["production/current.json", "models/t000001-xgboost/model.json"],
        },
        # Re-runs (POST /runs/{stage}/{batch}) write an announcement again and flush;
        # POST /runs/ingest writes an ingest request.
        "s3:PutObject": {
            "allowed": ["triggers/ingest/*", *ANNOUNCEMENTS],
            "needed": ["triggers/ingest/1.json", *ANNOUNCED],
        },
        "s3:ListBucket": {"allowed": [BUCKET_ITSELF], "needed": [BUCKET_ITSELF]},
    },
    "SourceFunction": {},
}
# Managed policies a function role may carry: logs, and the VPC's network interfaces.
ALLOWED_MANAGED = {"AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole"}
RESERVED = {"TrainFunction": 1, "PromoteFunction": 1}
PREDICT_CAP_PARAMETER = "PredictReservedConcurrency"


def check_public_url(public: Stack, private: Stack, report: Report) -> None:
    what = "with PredictUrlAuthType=NONE the predictor's function URL is publicly invokable"
    url = function_url(public, "PredictFunction")
    if url is None:
        report.check(False, what, "PredictFunction has no AWS::Lambda::Url")
        return
    if url.get("AuthType") != "NONE":
        report.check(False, what, f"its URL's AuthType resolves to {url.get('AuthType')!r}, not NONE")
        return
    # What SAM gives a function URL with the literal `AuthType: NONE` today (SourceFunction).
    reference = public_permissions(public, "SourceFunction")
    report.check(
        any(p.get("Action") == "lambda:InvokeFunctionUrl" for p in reference),
        "SAM gives SourceFunction's URL (AuthType NONE) its public lambda:InvokeFunctionUrl permission",
        f"SourceFunction's public permissions are {reference}: has SAM changed?",
    )
    required = reference + [
        {"Action": "lambda:InvokeFunctionUrl", "Principal": "*", "FunctionUrlAuthType": "NONE"}
    ]
    predictor = public_permissions(public, "PredictFunction")
    missing = []
    for wanted in required:
        if not any(all(p.get(k) == v for k, v in wanted.items()) for p in predictor):
            missing.append(wanted)
    unique_missing = [json.loads(s) for s in dict.fromkeys(json.dumps(m, sort_keys=True) for m in missing)]
    report.check(
        not unique_missing,
        what + " (the same public permissions SAM gives SourceFunction)",
        "the predictor's function URL would answer 403 to everyone: PredictFunction lacks the "
        f"public AWS::Lambda::Permission {unique_missing}. SAM adds them only for a literal "
        "`FunctionUrlConfig: {AuthType: NONE}`, not for an intrinsic such as "
        "`AuthType: !Ref PredictUrlAuthType`: write them out under a condition",
    )
    url = function_url(private, "PredictFunction")
    leaked = public_permissions(private, "PredictFunction")
    report.check(
        url is not None and url.get("AuthType") == "AWS_IAM" and not leaked,
        "with PredictUrlAuthType=AWS_IAM the URL takes signed requests only",
        f"URL {url}, public permissions {leaked}",
    )


# ---------------------------------------------------------------------------------------------


def s3_grants(stack: Stack, role: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(action, key pattern relative to the bucket, "" for the bucket itself) pairs the role's
    inline policies allow, and problems (grants on other buckets, wildcards, managed S3
    policies)."""
    grants: list[tuple[str, str]] = []
    problems: list[str] = []
    properties = role.get("Properties", {})
    for arn in stack.resolve(properties.get("ManagedPolicyArns", [])):
        name = str(arn).rsplit("/", 1)[-1]
        if name not in ALLOWED_MANAGED:
            problems.append(f"managed policy {arn} (grants more than the function's keys)")
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    for policy in properties.get("Policies", []):
        document = stack.resolve(policy.get("PolicyDocument", {}))
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if statement.get("Effect") != "Allow":
                continue
            actions = statement.get("Action", [])
            actions = actions if isinstance(actions, list) else [actions]
            s3_actions = [a for a in actions if a == "*" or str(a).lower().startswith("s3:")]
            if not s3_actions:
                continue
            resources = statement.get("Resource", [])
            resources = resources if isinstance(resources, list) else [resources]
            for action in s3_actions:
                if "*" in action:
                    problems.append(f"{action} on {resources} (a wildcard action)")
                    continue
                for resource in resources:
                    resource = str(resource)
                    if resource == bucket_arn:
                        grants.append((action, BUCKET_ITSELF))
                    elif resource.startswith(bucket_arn + "/"):
                        grants.append((action, resource[len(bucket_arn) + 1 :]))
                    else:
                        problems.append(f"{action} on {resource} (not this stack's bucket)")
    return grants, problems


def within(granted: str, allowed: str) -> bool:
    if allowed == BUCKET_ITSELF or granted == BUCKET_ITSELF:
        return granted == allowed
    return fnmatch.fnmatchcase(granted, allowed)


def covers(granted: str, key: str) -> bool:
    if granted == BUCKET_ITSELF or key == BUCKET_ITSELF:
        return granted == key
    return fnmatch.fnmatchcase(key, granted)


def check_least_privilege(stack: Stack, report: Report) -> None:
    for function, expected in EXPECTED_S3.items():
        what = f"{function} may touch only its own keys in the bucket"
        if function not in stack.resources or not stack.active(function):
            report.check(False, what, f"{function} is not in the transformed template")
            continue
        role_id, role = role_of(stack, function)
        if role_id is None:
            report.check(False, what, "its role is not in the template, so it cannot be checked")
            continue
        grants, problems = s3_grants(stack, role)
        for action, key in grants:
            allowed = expected.get(action, {}).get("allowed", [])
            if not any(within(key, pattern) for pattern in allowed):
                on = "the bucket itself" if key == BUCKET_ITSELF else f"{key!r}"
                problems.append(
                    f"{action} on {on} is more than it needs (allowed: {allowed or 'none'})"
                )
        for action, spec in expected.items():
            for key in spec["needed"]:
                if not any(a == action and covers(g, key) for a, g in grants):
                    on = "the bucket itself" if key == BUCKET_ITSELF else f"{key!r}"
                    problems.append(f"lacks {action} on {on}, which its code uses")
        report.check(not problems, what, f"role {role_id}: " + "; ".join(problems))


def check_reserved_concurrency(stack: Stack, report: Report) -> None:
    for function, wanted in RESERVED.items():
        value = stack.resolve(stack.resources[function]["Properties"].get("ReservedConcurrentExecutions"))
        report.check(
            value is not None and int(value) == wanted,
            f"{function} has reserved concurrency {wanted}",
            f"ReservedConcurrentExecutions is {value!r}: concurrent invocations would wait on "
            "its advisory lock, billed",
        )
    cap = stack.resources["PredictFunction"]["Properties"].get("ReservedConcurrentExecutions")
    report.check(
        cap == {"Ref": PREDICT_CAP_PARAMETER}
        and PREDICT_CAP_PARAMETER in stack.template.get("Parameters", {}),
        f"PredictFunction's reserved concurrency is the {PREDICT_CAP_PARAMETER} parameter "
        f"({stack.parameters.get(PREDICT_CAP_PARAMETER)} by default)",
        f"ReservedConcurrentExecutions is {cap!r}: the public predictor could scale to the "
        "account's limit",
    )


def check_schedule(stack: Stack, report: Report) -> None:
    rules = [
        logical_id
        for logical_id, rule in stack.of_type("AWS::Events::Rule").items()
        if any(
            logical_target(stack.resolve(t.get("Arn"))) == "IngestFunction"
            for t in rule.get("Properties", {}).get("Targets", [])
        )
    ]
    schedules = {
        logical_id: stack.resolve(schedule["Properties"])
        for logical_id, schedule in stack.of_type("AWS::Scheduler::Schedule").items()
        if logical_target(stack.resolve(schedule["Properties"]["Target"]["Arn"])) == "IngestFunction"
    }
    report.check(
        bool(schedules) and not rules,
        "ingest runs on an EventBridge Scheduler schedule (AWS::Scheduler::Schedule, ScheduleV2)",
        f"schedules {sorted(schedules)}, EventBridge rules {rules}: use a ScheduleV2 event",
    )
    for logical_id, schedule in schedules.items():
        target = schedule["Target"]
        retry = target.get("RetryPolicy") or {}
        report.check(
            int(retry.get("MaximumRetryAttempts", 0)) > 0,
            f"{logical_id} has a retry policy ({retry})",
            "no Target.RetryPolicy with MaximumRetryAttempts > 0",
        )
        dlq = logical_target((target.get("DeadLetterConfig") or {}).get("Arn", ""))
        report.check(
            dlq is not None
            and stack.resources.get(dlq, {}).get("Type") == "AWS::SQS::Queue",
            f"{logical_id} has a dead-letter queue ({dlq})",
            f"Target.DeadLetterConfig is {target.get('DeadLetterConfig')!r}, not a queue of the stack",
        )
        raw_input = target.get("Input")
        try:
            event = json.loads(raw_input) if raw_input is not None else None
        except json.JSONDecodeError as error:
            event = None
            raw_input = f"{raw_input!r} ({error})"
        report.check(
            isinstance(event, dict) and event.get("id") == "<aws.scheduler.scheduled-time>",
            f"{logical_id} hands ingest a JSON input whose id is the scheduled time (the same "
            "for every attempt of one firing, so a retry is recognised as a redelivery)",
            f"Input is {raw_input!r}",
        )
        if isinstance(event, dict):
            print(f"schedule input: {json.dumps(event, sort_keys=True)}")


def dead_letter_queues(stack: Stack) -> dict[str, str]:
    """Queue logical id -> what sends to it."""
    queues: dict[str, str] = {}
    for logical_id, config in stack.of_type("AWS::Lambda::EventInvokeConfig").items():
        destinations = stack.resolve(config["Properties"].get("DestinationConfig", {}))
        for kind in ("OnFailure",):
            target = logical_target((destinations.get(kind) or {}).get("Destination", ""))
            if target and stack.resources.get(target, {}).get("Type") == "AWS::SQS::Queue":
                queues.setdefault(target, f"{logical_id} {kind}")
    for logical_id, function in stack.of_type("AWS::Lambda::Function").items():
        target = logical_target(
            stack.resolve((function["Properties"].get("DeadLetterConfig") or {}).get("TargetArn", ""))
        )
        if target:
            queues.setdefault(target, f"{logical_id} DeadLetterConfig")
    for logical_id, schedule in stack.of_type("AWS::Scheduler::Schedule").items():
        dlq = stack.resolve(schedule["Properties"]["Target"].get("DeadLetterConfig") or {})
        target = logical_target(dlq.get("Arn", ""))
        if target:
            queues.setdefault(target, f"{logical_id} DeadLetterConfig")
    for logical_id, queue in stack.of_type("AWS::SQS::Queue").items():
        redrive = stack.resolve((queue.get("Properties") or {}).get("RedrivePolicy") or {})
        target = logical_target(redrive.get("deadLetterTargetArn", ""))
        if target:
            queues.setdefault(target, f"{logical_id} RedrivePolicy")
    return queues


def check_alarms(stack: Stack, report: Report) -> None:
    queues = dead_letter_queues(stack)
    report.check(bool(queues), "the stack has dead-letter queues", "found none")
    alarms = [stack.resolve(a["Properties"]) for a in stack.of_type("AWS::CloudWatch::Alarm").values()]
    for queue, source in sorted(queues.items()):
        watching = [
            alarm
            for alarm in alarms
            if alarm.get("Namespace") == "AWS/SQS"
            and alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and any(
                d.get("Name") == "QueueName" and d.get("Value") == f"<{queue}.QueueName>"
                for d in alarm.get("Dimensions", [])
            )
            and (
                (alarm.get("ComparisonOperator") == "GreaterThanThreshold" and float(alarm.get("Threshold", -1)) == 0)
                or (
                    alarm.get("ComparisonOperator") == "GreaterThanOrEqualToThreshold"
                    and float(alarm.get("Threshold", -1)) == 1
                )
            )
        ]
        report.check(
            bool(watching),
            f"dead-letter queue {queue} ({source}) has an alarm on ApproximateNumberOfMessagesVisible > 0",
            "no AWS::CloudWatch::Alarm watches it: failed events would pile up unseen",
        )


def check_log_groups(stack: Stack, report: Report) -> None:
    groups = {
        stack.resolve(g["Properties"].get("LogGroupName")): stack.resolve(g["Properties"].get("RetentionInDays"))
        for g in stack.of_type("AWS::Logs::LogGroup").values()
    }
    for function in sorted(stack.of_type("AWS::Lambda::Function")):
        name = f"/aws/lambda/<Ref {function}>"
        retention = groups.get(name)
        report.check(
            retention is not None and int(retention) > 0,
            f"{function} logs to a log group /aws/lambda/{function} with a retention "
            f"({retention} days)",
            f"no AWS::Logs::LogGroup named !Sub /aws/lambda/${{{function}}} with RetentionInDays "
            "(Lambda's own group keeps logs forever)",
        )


def check_buckets(stack: Stack, report: Report) -> None:
    buckets = stack.of_type("AWS::S3::Bucket")
    report.check(bool(buckets), "the stack has its data bucket", "no AWS::S3::Bucket")
    for logical_id, bucket in buckets.items():
        report.check(
            bucket.get("DeletionPolicy") == "Retain" and bucket.get("UpdateReplacePolicy") == "Retain",
            f"{logical_id} has DeletionPolicy and UpdateReplacePolicy Retain",
            f"DeletionPolicy {bucket.get('DeletionPolicy')!r}, UpdateReplacePolicy "
            f"{bucket.get('UpdateReplacePolicy')!r}: deleting or replacing the stack would "
            "delete every batch and model",
        )


# The functions that use the database, and so read its secret.
DATABASE_USERS = ["IngestFunction", "ProcessFunction", "TrainFunction", "PromoteFunction", "PredictFunction"]
# Variables that would hold a secret in plain text.
PLAINTEXT_SECRETS = ["DATABASE_URL", "PREDICT_RELOAD_TOKEN"]
# The parameters of the full stack: a reload token, the functions in a VPC, on x86_64.
FULL_OVERRIDES = {
    "PredictReloadTokenSecretArn": RELOAD_TOKEN_SECRET,
    "SubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b",
    "SecurityGroupIds": "sg-0123456789abcdef0",
    "Architecture": "x86_64",
}


def functions_of(stack: Stack) -> dict[str, dict[str, Any]]:
    """Logical id -> resolved properties of every active Lambda function."""
    return {
        logical_id: stack.resolve(function["Properties"])
        for logical_id, function in stack.of_type("AWS::Lambda::Function").items()
    }


def build_sh_functions() -> list[str]:
    text = (ROOT / "infra/sam/build.sh").read_text()
    match = re.search(r"^FUNCTIONS=\(([^)]*)\)", text, re.MULTILINE)
    return match.group(1).split() if match else []


def check_architecture(raw: dict[str, Any], stacks: list[Stack], report: Report) -> None:
    spec = raw.get("Parameters", {}).get("Architecture", {})
    report.check(
        spec.get("Default") == "arm64" and set(spec.get("AllowedValues", [])) == {"arm64", "x86_64"},
        "the Architecture parameter is arm64 by default, or x86_64",
        f"Architecture is {spec!r}",
    )
    for stack in stacks:
        wanted = [stack.parameters.get("Architecture")]
        wrong = {
            f: p.get("Architectures")
            for f, p in functions_of(stack).items()
            if p.get("Architectures") != wanted
        }
        report.check(
            not wrong,
            f"every function runs on the Architecture parameter (Architecture={wanted[0]})",
            f"these do not follow it: {wrong}",
        )
    built = build_sh_functions()
    code = local_code(raw)
    problems = []
    for logical_id, resource in raw.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        match = re.fullmatch(r"\.\./\.\./target/lambda/([a-z]+)/bootstrap\.zip", code.get(logical_id, ""))
        if match is None or match.group(1) not in built:
            problems.append(
                f"{logical_id}'s CodeUri is {code.get(logical_id)!r}, not "
                f"../../target/lambda/<one of {built}>/bootstrap.zip"
            )
    zipped = {re.sub(r".*/lambda/([a-z]+)/.*", r"\1", uri) for uri in code.values()}
    problems += [f"build.sh builds {f}, which no function deploys" for f in built if f not in zipped]
    layer = code.get("RdsCaBundle")
    if layer != "../../target/lambda/rds-ca-bundle/" or "target/lambda/rds-ca-bundle/" not in (
        ROOT / "infra/sam/build.sh"
    ).read_text():
        problems.append(f"the RdsCaBundle layer's ContentUri is {layer!r}, not the folder build.sh fills")
    report.check(
        not problems,
        "every function's code is the zip infra/sam/build.sh builds for it",
        "; ".join(problems),
    )


def secret_grants(stack: Stack, role: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(action, resource) pairs of Secrets Manager the role's inline policies allow, and the
    wildcard ones as problems."""
    grants: list[tuple[str, str]] = []
    problems: list[str] = []
    for policy in stack.resolve(role.get("Properties", {}).get("Policies", [])):
        statements = policy.get("PolicyDocument", {}).get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if statement.get("Effect") != "Allow":
                continue
            actions = statement.get("Action", [])
            actions = actions if isinstance(actions, list) else [actions]
            resources = statement.get("Resource", [])
            resources = resources if isinstance(resources, list) else [resources]
            for action in actions:
                if action == "*" or str(action).lower().startswith("secretsmanager:"):
                    for resource in resources:
                        if "*" in str(action) or "*" in str(resource):
                            problems.append(f"{action} on {resource} (a wildcard)")
                        grants.append((str(action), str(resource)))
    return grants, problems


def check_secrets(stacks: list[Stack], report: Report) -> None:
    for stack in stacks:
        token = stack.parameters.get("PredictReloadTokenSecretArn") or None
        label = "with a reload token secret" if token else "without a reload token secret"
        for function, properties in sorted(functions_of(stack).items()):
            variables = properties.get("Environment", {}).get("Variables", {})
            problems = [f"{name} is in its environment in plain text" for name in PLAINTEXT_SECRETS if name in variables]
            wanted_env: dict[str, str] = {}
            wanted_grants: list[str] = []
            if function in DATABASE_USERS:
                wanted_env["DATABASE_URL_SECRET_ID"] = DATABASE_SECRET
                wanted_grants.append(DATABASE_SECRET)
            if function == "PredictFunction" and token:
                wanted_env["PREDICT_RELOAD_TOKEN_SECRET_ID"] = token
                wanted_grants.append(token)
            for name, value in wanted_env.items():
                if variables.get(name) != value:
                    problems.append(f"{name} is {variables.get(name)!r}, not the secret's ARN {value}")
            if function == "PredictFunction" and not token and "PREDICT_RELOAD_TOKEN_SECRET_ID" in variables:
                problems.append("PREDICT_RELOAD_TOKEN_SECRET_ID is set though no token secret was given")
            role_id, role = role_of(stack, function)
            grants, wildcard = secret_grants(stack, role)
            problems += wildcard
            granted = sorted({r for a, r in grants if a == "secretsmanager:GetSecretValue"})
            if granted != sorted(wanted_grants):
                problems.append(
                    f"its role {role_id} may read the secrets {granted}, not exactly {sorted(wanted_grants)}"
                )
            others = sorted({a for a, _ in grants if a != "secretsmanager:GetSecretValue"})
            if others:
                problems.append(f"its role {role_id} has other Secrets Manager actions {others}")
            report.check(
                not problems,
                f"{function} reads its secrets from Secrets Manager, and only those ({label})",
                "; ".join(problems),
            )


def check_streaming_url(stack: Stack, report: Report) -> None:
    source = function_url(stack, "SourceFunction") or {}
    report.check(
        source.get("InvokeMode") == "RESPONSE_STREAM",
        "the stand-in source's function URL streams (InvokeMode RESPONSE_STREAM)",
        f"its InvokeMode is {source.get('InvokeMode')!r}: a BUFFERED URL refuses every answer above "
        "6 MB, and a batch is 16 to 79 MB (the binary streams on Lambda)",
    )
    predict = function_url(stack, "PredictFunction") or {}
    report.check(
        predict.get("InvokeMode") in (None, "BUFFERED"),
        "the predictor's function URL is BUFFERED (the binary answers buffered)",
        f"its InvokeMode is {predict.get('InvokeMode')!r}",
    )


def check_logging(raw: dict[str, Any], stack: Stack, report: Report) -> None:
    spec = raw.get("Parameters", {}).get("ApplicationLogLevel", {})
    for function, resource in sorted(stack.of_type("AWS::Lambda::Function").items()):
        config = resource["Properties"].get("LoggingConfig") or {}
        report.check(
            config.get("LogFormat") == "JSON"
            and config.get("ApplicationLogLevel") == {"Ref": "ApplicationLogLevel"}
            and "INFO" in spec.get("AllowedValues", []),
            f"{function} logs JSON at the ApplicationLogLevel parameter",
            f"its LoggingConfig is {config!r} (the ApplicationLogLevel parameter: {spec!r})",
        )


def rejection_labels() -> list[str]:
    """The labels functions/core/src/runtime.rs gives stage_invocations_total."""
    code = (ROOT / "functions/core/src/runtime.rs").read_text()
    labels: set[str] = set()
    for call in re.findall(r'counter!\(\s*"stage_invocations_total"([^;]*?)\)', code, re.DOTALL):
        labels.update(re.findall(r'"(\w+)"\s*=>', call))
    return sorted(labels)


def check_rejection_alarm(stack: Stack, report: Report) -> None:
    namespaces = {
        p.get("Environment", {}).get("Variables", {}).get("APPRAISE_METRICS_NAMESPACE", "appraise")
        for p in functions_of(stack).values()
    }
    dimensions = sorted(["service", *rejection_labels()])
    query = re.compile(
        r"SELECT\s+SUM\(\s*stage_invocations_total\s*\)\s+FROM\s+SCHEMA\(\s*\"?([^\",)]+)\"?\s*,"
        r"([^)]*)\)\s+WHERE\s+outcome\s*=\s*'rejected'\s*$",
        re.IGNORECASE,
    )
    found = []
    for logical_id, alarm in stack.of_type("AWS::CloudWatch::Alarm").items():
        properties = stack.resolve(alarm["Properties"])
        for metric in properties.get("Metrics", []):
            match = query.match(" ".join(str(metric.get("Expression", "")).split()))
            if match is None:
                continue
            found.append(
                (
                    logical_id,
                    match.group(1).strip(),
                    sorted(d.strip() for d in match.group(2).split(",")),
                    properties,
                )
            )
    watching = [
        logical_id
        for logical_id, namespace, schema, properties in found
        if {namespace} == namespaces
        and schema == dimensions
        and properties.get("ComparisonOperator") == "GreaterThanThreshold"
        and float(properties.get("Threshold", -1)) == 0
        and properties.get("TreatMissingData") == "notBreaching"
        and "<Ref AlarmTopic>" in properties.get("AlarmActions", [])
    ]
    report.check(
        bool(watching),
        f"an alarm ({', '.join(watching)}) goes off when a stage rejects an event "
        f"(stage_invocations_total, outcome rejected, namespace {sorted(namespaces)}, dimensions {dimensions})",
        f"no alarm sums stage_invocations_total WHERE outcome = 'rejected' FROM SCHEMA({sorted(namespaces)}, "
        f"{', '.join(dimensions)}) > 0 into the alarm topic (found {[f[:3] for f in found]}): rejected "
        "events are neither retried nor queued, so nobody would hear of them",
    )


def check_vpc(plain: Stack, in_vpc: Stack, report: Report) -> None:
    subnets = in_vpc.parameters["SubnetIds"].split(",")
    groups = in_vpc.parameters["SecurityGroupIds"].split(",")
    outside = []
    for function in DATABASE_USERS:
        config = functions_of(in_vpc)[function].get("VpcConfig") or {}
        got_subnets = config.get("SubnetIds")
        got_groups = config.get("SecurityGroupIds")
        as_list = lambda v: v.split(",") if isinstance(v, str) else v  # noqa: E731
        if as_list(got_subnets) != subnets or as_list(got_groups) != groups:
            outside.append(f"{function} ({config or 'no VpcConfig'})")
    report.check(
        not outside,
        "with SubnetIds and SecurityGroupIds every function that uses the database runs in them",
        f"not in the VPC: {outside}: they could not reach a database inside it",
    )
    inside = [f for f, p in functions_of(plain).items() if p.get("VpcConfig")]
    report.check(not inside, "without SubnetIds no function is in a VPC", f"in a VPC: {inside}")
    source = functions_of(in_vpc).get("SourceFunction", {})
    report.check(
        not source.get("VpcConfig"),
        "the stand-in source stays out of the VPC (no database; function URLs do not stream "
        "within a VPC environment)",
        f"with SubnetIds it is in the VPC ({source.get('VpcConfig')}): override the global "
        "VpcConfig with !Ref AWS::NoValue",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", default=str(ROOT / "infra/sam/template.yaml"))
    arguments = parser.parse_args()
    template = load(Path(arguments.template))
    raw = yaml_parse(Path(arguments.template).read_text())
    report = Report()

    public = translate(template, parameters_for(template, {"PredictUrlAuthType": "NONE"}), report)
    private = public and translate(
        template, parameters_for(template, {"PredictUrlAuthType": "AWS_IAM"}), report
    )
    full = private and translate(template, parameters_for(template, FULL_OVERRIDES), report)
    if public is None or private is None or full is None:
        print(f"{len(report.failures)} problem(s) in {arguments.template}", file=sys.stderr)
        for failure in report.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    kinds: dict[str, int] = {}
    for resource in public.resources.values():
        kinds[resource["Type"]] = kinds.get(resource["Type"], 0) + 1
    report.check(
        True,
        f"SAM transforms the template ({len(public.resources)} resources: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + ")",
        "",
    )
    check_public_url(public, private, report)
    check_least_privilege(public, report)
    check_reserved_concurrency(public, report)
    check_schedule(public, report)
    check_alarms(public, report)
    check_log_groups(public, report)
    check_buckets(public, report)
    check_architecture(raw, [public, full], report)
    check_secrets([public, full], report)
    check_streaming_url(public, report)
    check_logging(raw, public, report)
    check_rejection_alarm(public, report)
    check_vpc(public, full, report)

    if report.failures:
        print(f"{len(report.failures)} problem(s) in {arguments.template}:", file=sys.stderr)
        for failure in report.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(f"all checks passed: {arguments.template}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
