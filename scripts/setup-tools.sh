#!/usr/bin/env bash
# Installs the tools the offline deployment checks use, idempotently: only what is missing.
#   - a Python virtual environment at target/tools-venv with the pinned packages of PIP_TOOLS
#     (jsonschema and PyYAML for infra/checks/check_manifests.py and check_metrics.py;
#     openapi-spec-validator for the predictor's openapi.json; the
#     CPU-only build of xgboost, with which a test loads the trained models' xgboost.json;
#     cfn-lint for the SAM template; aws-sam-translator, which transforms it the way a deploy
#     does, for infra/checks/check_sam_transform.py; cargo-lambda, whose wheel carries the binary and, through
#     `ziglang`, zig, so building the Lambda zips fetches nothing from GitHub; the CloudEvents
#     Python SDK (`cloudevents`), which makes the events the bridge and dead-letter tests send;
#     moto's server mode, a local Secrets Manager and SSM Parameter Store for the secrets tests;
#     mlflow, a real tracking server for the MLflow mirror's tests; scikit-learn, whose random
#     forest the train tests compare appraise's with, bench/fit_matrix.py);
#   - Debian packages for the commands of APT_TOOLS (promtool, from the `prometheus` package;
#     amtool and the alertmanager binary, from `prometheus-alertmanager`; shellcheck, which
#     checks infra/deploy.sh).
# Add a tool by adding a line to a list. Prints the venv's python at the end.
#
# Usage: setup-tools.sh [PACKAGE...]. With no argument, everything above. With arguments, only
# those PIP_TOOLS packages (named without version or extras, e.g. `setup-tools.sh cargo-lambda`,
# as infra/sam/build.sh does) and no Debian package at all.
set -euo pipefail
cd "$(dirname "$0")/.."

# "package==version", installed into the venv when it is missing or at another version.
PIP_TOOLS=(
  "jsonschema==4.26.0"
  "openapi-spec-validator==0.9.0"
  "PyYAML==6.0.3"
  "xgboost-cpu==3.2.0"
  "cfn-lint==1.58.0"
  "aws-sam-translator==1.115.0"
  "cargo-lambda==1.9.2"
  "cloudevents==2.2.0"
  "moto[server]==5.2.5"
  "mlflow==3.17.2"
  "scikit-learn==1.9.1"
)
# "command:debian-package", installed with apt when the command is not on PATH.
APT_TOOLS=(
  "promtool:prometheus"
  "amtool:prometheus-alertmanager"
  "shellcheck:shellcheck"
)

VENV="${APPRAISE_TOOLS_VENV:-target/tools-venv}"
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi

# The packages to install: all of PIP_TOOLS, or the ones named on the command line.
wanted_pip=("${PIP_TOOLS[@]}")
only_named=0
if [ $# -gt 0 ]; then
  only_named=1
  wanted_pip=()
  for name in "$@"; do
    found=""
    for requirement in "${PIP_TOOLS[@]}"; do
      package="${requirement%%==*}"
      [ "${package%%[*}" = "$name" ] && found="$requirement"
    done
    if [ -z "$found" ]; then
      known=()
      for requirement in "${PIP_TOOLS[@]}"; do
        package="${requirement%%==*}"
        known+=("${package%%[*}")
      done
      echo "setup-tools: $name is not one of the tools: ${known[*]}" >&2
      exit 2
    fi
    wanted_pip+=("$found")
  done
fi

need_apt=()
if [ "$only_named" = 0 ]; then
  for entry in "${APT_TOOLS[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || need_apt+=("${entry#*:}")
  done
fi
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ ! -x "$VENV/bin/python" ] && command -v python3 >/dev/null 2>&1 \
  && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup-tools: installing ${need_apt[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # --no-install-recommends: the prometheus package would otherwise pull in node-exporter.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-tools: creating $VENV"
  python3 -m venv "$VENV"
fi
# The pinned packages not installed at their version, found in one interpreter start.
mapfile -t missing < <("$VENV/bin/python" - "${wanted_pip[@]}" <<'PY'
import sys
from importlib import metadata
for requirement in sys.argv[1:]:
    name, wanted = requirement.split("==")
    name = name.split("[")[0]  # "moto[server]": the extra is not part of the name
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        installed = None
    if installed != wanted:
        print(requirement)
PY
)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-tools: pip installing ${missing[*]}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
fi
if [ "$only_named" = 1 ]; then
  echo "setup-tools: ok ($VENV/bin/python; $*)"
else
  echo "setup-tools: ok ($VENV/bin/python; promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}'))"
fi
