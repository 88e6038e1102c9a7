#!/usr/bin/env python3
"""The SAM template as a deploy sees it: transformed offline by aws-sam-translator (a stub
managed-policy map, a fixed region and account), and read back as CloudFormation resources
for infra/checks/check_sam_transform.py: function URLs and their permissions, roles and their
S3 grants. No AWS account is needed.
"""


from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

# The translator asks boto3 for the region (partition, ARNs); nothing is called.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

# The translator records usage metrics it never publishes offline, and warns about it at exit.
logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "appraise-check-bucket"
# Required parameters without a default, and the pseudo parameters CloudFormation would give.
DATABASE_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:appraise/database-AbCdEf"
RELOAD_TOKEN_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:appraise/reload-GhIjKl"
REQUIRED_PARAMETERS = {"BucketName": BUCKET, "DatabaseSecretArn": DATABASE_SECRET}
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "appraise",
    "AWS::URLSuffix": "amazonaws.com",
}


class StubManagedPolicyLoader:
    """What samtranslator's ManagedPolicyLoader gives, without calling IAM: the map of
    managed-policy names to ARNs, for the few names a template may use."""

    def load(self) -> dict[str, str]:
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "AWSLambdaVPCAccessExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
            "AmazonS3FullAccess": "arn:aws:iam::aws:policy/AmazonS3FullAccess",
            "AmazonS3ReadOnlyAccess": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        }


# What `!Ref AWS::NoValue` resolves to: dropped from the list or mapping holding it.
NO_VALUE = object()


class Stack:
    """A transformed template under parameter values: intrinsics resolved to strings as far as
    they can be offline (a resource's Ref is `<Ref X>`, a GetAtt `<X.Attr>`), conditions
    evaluated."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any]):
        self.template = template
        self.parameters = parameters
        self.resources: dict[str, dict[str, Any]] = template.get("Resources", {})
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def active(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if resource.get("Type") == kind and self.active(logical_id)
        }

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in PSEUDO:
            return PSEUDO[name]
        return f"<Ref {name}>"

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else arg
                return f"<{parts[0]}.{parts[1]}>"
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                variables = {k: self.resolve(v) for k, v in variables.items()}

                def substitute(match: re.Match[str]) -> str:
                    name = match.group(1)
                    if name in variables:
                        return str(variables[name])
                    if "." in name:
                        return "<%s>" % name
                    return str(self.ref(name))

                return re.sub(r"\$\{([^!}][^}]*)\}", substitute, text)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(v) for v in self.resolve(items))
            if key == "Fn::If":
                name, then, otherwise = arg
                return self.resolve(then if self.condition(name) else otherwise)
            if key == "Fn::Equals":
                a, b = self.resolve(arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(arg))
            if key == "Fn::Or":
                return any(self.resolve(arg))
            if key == "Condition":
                return self.condition(arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def logical_target(value: str) -> str | None:
    """`PredictFunction` from `<Ref PredictFunction>` or `<PredictFunction.Arn>`."""
    match = re.fullmatch(r"<(?:Ref )?([A-Za-z0-9]+)(?:\.[A-Za-z]+)?>", str(value))
    return match.group(1) if match else None


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, ok: bool, what: str, problem: str) -> None:
        if ok:
            print(f"ok: {what}")
        else:
            print(f"FAIL: {what}: {problem}")
            self.failures.append(f"{what}: {problem}")


def local_code(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> the local path (as written, relative to the template) of each function's
    CodeUri and each layer's ContentUri, before packaging."""
    found = {}
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                found[logical_id] = properties[key]
    return found


def load(path: Path) -> dict[str, Any]:
    """The template as `sam package` would hand it to CloudFormation: local code locations
    (each function's zip built by infra/sam/build.sh, the CA bundle layer's folder) replaced
    by S3 locations."""
    template = yaml_parse(path.read_text())
    packaged = "s3://appraise-artifacts/bootstrap.zip"
    function_globals = template.get("Globals", {}).get("Function", {})
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = packaged
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = packaged
    return template


def parameters_for(template: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    values = {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }
    values.update(REQUIRED_PARAMETERS)
    values.update(overrides)
    return values


def translate(template: dict[str, Any], parameters: dict[str, Any], report: Report) -> Stack | None:
    try:
        # transform() mutates its input: give it a copy.
        output = transform(json.loads(json.dumps(template)), dict(parameters), StubManagedPolicyLoader())
    except InvalidDocumentException as error:
        causes = "; ".join(str(cause) for cause in error.causes)
        report.check(False, "SAM transforms the template", causes)
        return None
    return Stack(output, parameters)


# ---------------------------------------------------------------------------------------------


def public_permissions(stack: Stack, function: str) -> list[dict[str, Any]]:
    """The active permissions letting anyone (`*`) invoke `function`, without FunctionName."""
    found = []
    for _, permission in stack.of_type("AWS::Lambda::Permission").items():
        properties = stack.resolve(permission.get("Properties", {}))
        if properties.get("Principal") != "*":
            continue
        if logical_target(properties.get("FunctionName")) != function:
            continue
        found.append({k: v for k, v in properties.items() if k != "FunctionName"})
    return found


def function_url(stack: Stack, function: str) -> dict[str, Any] | None:
    for _, url in stack.of_type("AWS::Lambda::Url").items():
        properties = stack.resolve(url.get("Properties", {}))
        if logical_target(properties.get("TargetFunctionArn")) == function:
            return properties
    return None


def role_of(stack: Stack, function: str) -> tuple[str | None, dict[str, Any]]:
    role = stack.resolve(stack.resources[function]["Properties"].get("Role"))
    logical = logical_target(role) if role else None
    if logical is None or logical not in stack.resources:
        return None, {}
    return logical, stack.resources[logical]
