#!/usr/bin/env bash
# Runs the offline deployment checks that need no running function: the manifests against the
# vendored schemas and Knative's rules, the load restriction of `kubectl apply -k` and, with
# kubectl, the built kustomization (check_manifests.py); promtool on the Prometheus configuration
# and rules (with the rules' unit tests); amtool on the Alertmanager configuration; shellcheck on
# infra/deploy.sh; the SAM template transformed as a deploy transforms it
# (check_sam_transform.py). The metrics check needs real /metrics scrapes: it runs
# in `cargo test -p appraise-local --test system deploy_checks::`, with everything here.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup-tools.sh >/dev/null
python=target/tools-venv/bin/python
"$python" infra/checks/check_manifests.py knative
(cd knative/monitoring/config/prometheus && promtool check config prometheus.yml \
  && promtool check rules rules.yml && promtool test rules rules_test.yml)
amtool check-config knative/monitoring/config/alertmanager/alertmanager.yml
shellcheck infra/deploy.sh
"$python" infra/checks/check_sam_transform.py
