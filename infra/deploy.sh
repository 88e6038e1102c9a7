#!/usr/bin/env bash
# Brings the whole appraise system up on Minikube with Knative, in order, and prints its URLs:
#   1. checks the prerequisites (minikube, kubectl, and docker or `minikube image build`) and
#      stops with a message naming what is missing;
#   2. starts Minikube (Kubernetes $K8S_VERSION) unless it is running;
#   3. installs Knative Serving with Kourier and Knative Eventing (in-memory channel,
#      multi-tenant channel-based Broker; JobSink is part of eventing-core), $KNATIVE_VERSION,
#      and configures them for local images and Minikube's IP;
#   4. builds the seven images (infra/containers/Containerfile) inside Minikube;
#   5. writes knative/secrets.env and knative/admin.env (git-ignored; the Secrets' values) from
#      their committed .example files with random passwords, unless they exist; applies
#      knative/ (one kustomization) and waits: PostgreSQL, MinIO and its bucket setup,
#      the bridge, the functions, the Broker, Triggers, JobSink and PingSource, Prometheus and
#      Grafana;
#   6. prints the predictor's, Grafana's, Prometheus's and MinIO's URLs.
# Options: --check (only step 1), --skip-build (reuse images), --skip-knative (Knative already
# installed). Environment: MINIKUBE_PROFILE (appraise), MINIKUBE_START_ARGS (--cpus=4
# --memory=8g), KNATIVE_VERSION, K8S_VERSION. Safe to run again: every step is idempotent.
set -euo pipefail
script="${BASH_SOURCE[0]}"
[[ "$script" == */* ]] || script="./$script"
cd "${script%/*}/.."

KNATIVE_VERSION="${KNATIVE_VERSION:-1.23.0}"
K8S_VERSION="${K8S_VERSION:-v1.34.0}"
PROFILE="${MINIKUBE_PROFILE:-appraise}"
START_ARGS="${MINIKUBE_START_ARGS:---cpus=4 --memory=8g}"
NAMESPACE=appraise
IMAGE_TAG=0.1.0
IMAGES=(source ingest process train promote predict bridge)

check_only=0
skip_build=0
skip_knative=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --skip-build) skip_build=1 ;;
    --skip-knative) skip_knative=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
    *) echo "deploy: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "deploy: $*" >&2; exit 1; }

# 1. Prerequisites.
step "checking prerequisites"
missing=()
command -v minikube >/dev/null 2>&1 \
  || missing+=("minikube (https://minikube.sigs.k8s.io/docs/start/)")
command -v kubectl >/dev/null 2>&1 \
  || missing+=("kubectl (https://kubernetes.io/docs/tasks/tools/; or alias kubectl='minikube kubectl --')")
if ! command -v docker >/dev/null 2>&1 && ! command -v minikube >/dev/null 2>&1; then
  missing+=("docker, or minikube's own 'minikube image build', to build the images")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deploy: missing prerequisites:" >&2
  for item in "${missing[@]}"; do echo "  - $item" >&2; done
  fail "install them and run infra/deploy.sh again"
fi
echo "minikube $(minikube version --short 2>/dev/null || echo '?'), kubectl $(kubectl version --client 2>/dev/null | head -1 | awk '{print $3}')"
if [ "$check_only" = 1 ]; then
  echo "deploy: prerequisites present"
  exit 0
fi

# 2. The cluster.
step "Minikube profile $PROFILE (Kubernetes $K8S_VERSION)"
if minikube -p "$PROFILE" status >/dev/null 2>&1; then
  echo "already running"
else
  # shellcheck disable=SC2086 # START_ARGS is a list of flags
  minikube -p "$PROFILE" start --kubernetes-version="$K8S_VERSION" $START_ARGS \
    || fail "minikube could not start the cluster (see its message above)"
fi
kubectl config use-context "$PROFILE" >/dev/null
MINIKUBE_IP="$(minikube -p "$PROFILE" ip)"

# Retries `kubectl apply` while Knative's webhooks are still starting.
apply() {
  local attempt
  for attempt in 1 2 3 4 5 6; do
    if kubectl apply "$@"; then return 0; fi
    echo "apply failed (attempt $attempt); retrying in 10 s"
    sleep 10
  done
  fail "kubectl apply $* kept failing"
}

# 3. Knative.
if [ "$skip_knative" = 0 ]; then
  release="https://github.com/knative"
  step "Knative Serving $KNATIVE_VERSION with Kourier"
  apply -f "$release/serving/releases/download/knative-v$KNATIVE_VERSION/serving-crds.yaml"
  apply -f "$release/serving/releases/download/knative-v$KNATIVE_VERSION/serving-core.yaml"
  apply -f "$release/net-kourier/releases/download/knative-v$KNATIVE_VERSION/kourier.yaml"
  step "Knative Eventing $KNATIVE_VERSION (in-memory channel, channel-based Broker)"
  apply -f "$release/eventing/releases/download/knative-v$KNATIVE_VERSION/eventing-crds.yaml"
  apply -f "$release/eventing/releases/download/knative-v$KNATIVE_VERSION/eventing-core.yaml"
  apply -f "$release/eventing/releases/download/knative-v$KNATIVE_VERSION/in-memory-channel.yaml"
  apply -f "$release/eventing/releases/download/knative-v$KNATIVE_VERSION/mt-channel-broker.yaml"
  step "waiting for Knative's components"
  for ns in knative-serving kourier-system knative-eventing; do
    kubectl -n "$ns" wait deployment --all --for=condition=Available --timeout=600s \
      || fail "Knative's deployments in $ns did not become available"
  done
  step "configuring Knative for Minikube"
  # Kourier as the ingress; reachable on a NodePort of the Minikube node.
  kubectl -n knative-serving patch configmap/config-network --type merge \
    -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
  kubectl -n kourier-system patch service/kourier --type merge -p '{"spec":{"type":"NodePort"}}'
  # Service URLs under <minikube ip>.sslip.io.
  kubectl -n knative-serving patch configmap/config-domain --type merge \
    -p "{\"data\":{\"$MINIKUBE_IP.sslip.io\":\"\"}}"
  # Images built into Minikube are not in a registry: do not resolve their tags to digests.
  kubectl -n knative-serving patch configmap/config-deployment --type merge \
    -p '{"data":{"registries-skipping-tag-resolving":"kind.local,ko.local,dev.local"}}'
fi

# 4. Images.
if [ "$skip_build" = 0 ]; then
  step "building the images inside Minikube (the first build compiles the workspace: minutes)"
  # The build context is the workspace's sources only (not target/, which holds gigabytes).
  context="$(mktemp -d)"
  trap 'rm -rf "$context"' EXIT
  cp -r Cargo.toml Cargo.lock functions local "$context/"
  cp infra/containers/Containerfile "$context/Containerfile"
  if command -v docker >/dev/null 2>&1 && minikube -p "$PROFILE" docker-env >/dev/null 2>&1; then
    eval "$(minikube -p "$PROFILE" docker-env)"
    for image in "${IMAGES[@]}"; do
      echo "--- $image"
      DOCKER_BUILDKIT=1 docker build -f "$context/Containerfile" \
        --build-arg FUNCTION="$image" -t "dev.local/appraise/$image:$IMAGE_TAG" "$context" \
        || fail "building the $image image failed"
    done
  else
    for image in "${IMAGES[@]}"; do
      echo "--- $image"
      minikube -p "$PROFILE" image build -f Containerfile \
        --build-opt="build-arg=FUNCTION=$image" -t "dev.local/appraise/$image:$IMAGE_TAG" "$context" \
        || fail "building the $image image failed"
    done
  fi
fi

# 5. The system.
step "the Secrets' env files (knative/secrets.env, knative/admin.env)"
# Each CHANGE_ME_<NAME> of the examples becomes one random value, the same in both files (the
# PostgreSQL password is in admin.env and in secrets.env's DATABASE_URL). Existing files are
# kept: the running PostgreSQL and MinIO already use their passwords.
if [ -f knative/secrets.env ] && [ -f knative/admin.env ]; then
  echo "kept (delete both to generate new passwords, with fresh volumes)"
elif [ -f knative/secrets.env ] || [ -f knative/admin.env ]; then
  fail "only one of knative/secrets.env and knative/admin.env exists: delete it or write the other from its .example"
else
  umask 077
  replace=()
  for token in $(grep -oh 'CHANGE_ME_[A-Z0-9_]*' knative/secrets.env.example knative/admin.env.example | sort -u); do
    replace+=(-e "s/$token/$(od -An -tx1 -N18 /dev/urandom | tr -d ' \n')/g")
  done
  sed "${replace[@]}" knative/secrets.env.example >knative/secrets.env
  sed "${replace[@]}" knative/admin.env.example >knative/admin.env
  umask 022
  echo "written with random passwords"
fi
step "applying knative/ (kustomization)"
manifests="$(mktemp)"
trap 'rm -f "$manifests"; [ -z "${context:-}" ] || rm -rf "$context"' EXIT
# kubectl's default load restrictions, as `kubectl apply -k knative` (every file is in knative/).
kubectl kustomize knative >"$manifests" || fail "kubectl kustomize knative failed"
apply -f "$manifests"

wait_for() {
  local what="$1"; shift
  echo "waiting for $what"
  kubectl -n "$NAMESPACE" wait "$@" || fail "$what is not ready (see: kubectl -n $NAMESPACE describe $1)"
}
step "waiting for the platform"
kubectl -n "$NAMESPACE" rollout status statefulset/postgres --timeout=300s || fail "PostgreSQL did not start"
kubectl -n "$NAMESPACE" rollout status deployment/minio --timeout=300s || fail "MinIO did not start"
wait_for "the bucket setup" job/minio-setup --for=condition=Complete --timeout=300s
kubectl -n "$NAMESPACE" rollout status deployment/s3-bridge --timeout=300s || fail "the bridge did not start"
step "waiting for the functions and the eventing"
wait_for "the Knative Services" ksvc --all --for=condition=Ready --timeout=600s
wait_for "the Broker" broker/default --for=condition=Ready --timeout=300s
wait_for "the JobSink" jobsink/train --for=condition=Ready --timeout=300s
wait_for "the Triggers" trigger --all --for=condition=Ready --timeout=300s
wait_for "the PingSource" pingsource/ingest-schedule --for=condition=Ready --timeout=300s
wait_for "the SinkBinding" sinkbinding/s3-bridge --for=condition=Ready --timeout=300s
step "waiting for monitoring"
kubectl -n "$NAMESPACE" rollout status deployment/prometheus --timeout=300s || fail "Prometheus did not start"
kubectl -n "$NAMESPACE" rollout status deployment/grafana --timeout=300s || fail "Grafana did not start"

# 6. Where things are.
node_port() {
  kubectl -n "$1" get service "$2" -o jsonpath="{.spec.ports[?(@.name==\"$3\")].nodePort}"
}
kourier_port="$(node_port kourier-system kourier http2)"
predict_url="$(kubectl -n "$NAMESPACE" get ksvc predict -o jsonpath='{.status.url}')"
predict_host="${predict_url#http://}"
step "appraise is up"
cat <<EOF
predictor          $predict_url:$kourier_port/   (web page; POST /predict, /metrics)
                   or: curl -H 'Host: $predict_host' http://$MINIKUBE_IP:$kourier_port/health
Grafana            http://$MINIKUBE_IP:$(node_port "$NAMESPACE" grafana web)/   (admin / GRAFANA_ADMIN_PASSWORD in knative/admin.env)
Prometheus         http://$MINIKUBE_IP:$(node_port "$NAMESPACE" prometheus web)/
MinIO console      kubectl -n $NAMESPACE port-forward service/minio 9001  ->  http://127.0.0.1:9001/
the schedule       PingSource ingest-schedule fires ingest every 10 minutes; to fire it now:
                   kubectl -n $NAMESPACE run fire-ingest --rm -i --restart=Never --image=docker.io/curlimages/curl -- \\
                     -sS -X POST http://ingest.$NAMESPACE.svc.cluster.local/ -H 'ce-specversion: 1.0' \\
                     -H 'ce-type: dev.knative.sources.ping' -H 'ce-source: manual' -H "ce-id: manual-\$(date +%s)" -d '{}'
training Jobs      kubectl -n $NAMESPACE get jobs -l app.kubernetes.io/name=train
EOF
