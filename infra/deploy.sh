#!/usr/bin/env bash
# Brings the whole appraise system up on Minikube with Knative, in order, and prints its URLs:
#   1. checks the prerequisites (minikube, kubectl, and an image builder: docker, podman or
#      `minikube image build`) and stops with a message naming what is missing;
#   2. starts Minikube (Kubernetes $K8S_VERSION) unless it is running;
#   3. installs Knative Serving with Kourier and Knative Eventing (in-memory channel,
#      multi-tenant channel-based Broker; JobSink is part of eventing-core), $KNATIVE_VERSION,
#      and configures them for local images and Minikube's IP;
#   4. builds the seven images (infra/containers/Containerfile) with the first builder present
#      (or $BUILDER): docker (on Minikube's engine when `minikube docker-env` works, else built
#      locally and loaded with `minikube image load`), podman (built, saved and loaded), or
#      `minikube image build`. With $REGISTRY set, they are pushed there instead (docker or
#      podman), as $REGISTRY/appraise-<function>:<tag>, and the applied manifests name them so.
#      The tag is the git commit (`git rev-parse --short HEAD`, plus -dirty when the work tree
#      has changes) unless $IMAGE_TAG says otherwise, so a new build is a new tag and a
#      redeploy runs it (the manifests' IfNotPresent would keep running an image of the same tag);
#   5. writes knative/secrets.env and knative/admin.env (git-ignored; the Secrets' values) from
#      their committed .example files with random passwords, unless they exist, then adds any
#      key they lack (a key the examples gained since, such as admin.env's BRIDGE_WEBHOOK_TOKEN,
#      the token MinIO's webhook calls to the bridge carry) with a new random value; builds knative/ (one kustomization)
#      with `kubectl kustomize`, rewrites its image names for $REGISTRY, applies it and waits:
#      PostgreSQL, MinIO and its bucket setup, the bridge, the functions, the Broker, Triggers,
#      JobSink and PingSource, Prometheus, Alertmanager and its alert log, and Grafana;
#   6. prints the predictor's, Grafana's, Prometheus's, Alertmanager's and MinIO's URLs.
# Options: --check (only step 1), --skip-build (reuse images), --skip-knative (Knative already
# installed), --dry-run (print what would be run, change nothing: no cluster, build, push or
# file; missing prerequisites are only reported; the manifests are still built, from the
# examples when the env files are missing, and their images listed).
# Environment: MINIKUBE_PROFILE (appraise), MINIKUBE_START_ARGS (--cpus=4 --memory=8g),
# KNATIVE_VERSION, K8S_VERSION, BUILDER (docker, podman or minikube; default: the first
# present), REGISTRY (e.g. ghcr.io/you or docker.io/you; default: none, images stay in
# Minikube), IMAGE_TAG (default: the git commit, as in step 4; set it when the source is not a
# git work tree, or to reuse images built before with --skip-build). Safe to run again: every
# step is idempotent.
set -euo pipefail
script="${BASH_SOURCE[0]}"
[[ "$script" == */* ]] || script="./$script"
cd "${script%/*}/.."

KNATIVE_VERSION="${KNATIVE_VERSION:-1.23.0}"
K8S_VERSION="${K8S_VERSION:-v1.34.0}"
PROFILE="${MINIKUBE_PROFILE:-appraise}"
START_ARGS="${MINIKUBE_START_ARGS:---cpus=4 --memory=8g}"
NAMESPACE=appraise
IMAGE_TAG="${IMAGE_TAG:-}"
IMAGES=(source ingest process train promote predict bridge)
# What the manifests under knative/ call the images: dev.local/appraise/<function>:<tag>.
LOCAL_PREFIX=dev.local/appraise
REGISTRY="${REGISTRY:-}"
REGISTRY="${REGISTRY%/}"
BUILDER="${BUILDER:-}"

check_only=0
skip_build=0
skip_knative=0
dry_run=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --skip-build) skip_build=1 ;;
    --skip-knative) skip_knative=1 ;;
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
    *) echo "deploy: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "deploy: $*" >&2; exit 1; }
# Runs a command that changes something; with --dry-run, prints it instead.
run() {
  if [ "$dry_run" = 1 ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}
random_value() { od -An -tx1 -N18 /dev/urandom | tr -d ' \n'; }
# The image of a function as the applied manifests name it.
image_ref() {
  if [ -n "$REGISTRY" ]; then
    echo "$REGISTRY/appraise-$1:$IMAGE_TAG"
  else
    echo "$LOCAL_PREFIX/$1:$IMAGE_TAG"
  fi
}

if [ -n "$IMAGE_TAG" ] && ! [[ "$IMAGE_TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  fail "IMAGE_TAG=$IMAGE_TAG is not an image tag (letters, digits, _ . -; at most 128, not starting with . or -)"
fi
if [ -n "$REGISTRY" ] && ! [[ "$REGISTRY" =~ ^[A-Za-z0-9._:/-]+$ ]]; then
  fail "REGISTRY=$REGISTRY is not a registry path (letters, digits, . _ : / -; e.g. ghcr.io/you)"
fi
case "$BUILDER" in
  ""|docker|podman|minikube) ;;
  *) fail "BUILDER=$BUILDER: use docker, podman or minikube (or leave it unset)" ;;
esac
if [ -n "$REGISTRY" ] && [ "$BUILDER" = minikube ]; then
  fail "BUILDER=minikube cannot push to REGISTRY=$REGISTRY: use docker or podman"
fi

# 1. Prerequisites.
step "checking prerequisites"
missing=()
command -v minikube >/dev/null 2>&1 \
  || missing+=("minikube (https://minikube.sigs.k8s.io/docs/start/)")
command -v kubectl >/dev/null 2>&1 \
  || missing+=("kubectl (https://kubernetes.io/docs/tasks/tools/; or alias kubectl='minikube kubectl --')")
# The builder: $BUILDER, else the first present; only docker and podman can push.
builder="$BUILDER"
if [ -z "$builder" ]; then
  for candidate in docker podman minikube; do
    if [ "$candidate" = minikube ] && [ -n "$REGISTRY" ]; then continue; fi
    if command -v "$candidate" >/dev/null 2>&1; then builder="$candidate"; break; fi
  done
fi
if [ -z "$builder" ]; then
  if [ -n "$REGISTRY" ]; then
    missing+=("docker or podman, to build the images and push them to REGISTRY=$REGISTRY")
  else
    missing+=("docker, podman, or minikube's own 'minikube image build', to build the images")
  fi
elif ! command -v "$builder" >/dev/null 2>&1; then
  missing+=("$builder (BUILDER=$builder), to build the images")
fi
# The images' tag: $IMAGE_TAG, else the commit, -dirty when the work tree has changes.
if [ -z "$IMAGE_TAG" ]; then
  if commit="$(git rev-parse --short HEAD 2>/dev/null)"; then
    IMAGE_TAG="$commit"
    [ -z "$(git status --porcelain 2>/dev/null)" ] || IMAGE_TAG="$commit-dirty"
  else
    missing+=("IMAGE_TAG, the images' tag: it is not set, and there is no git work tree (or no git) to take the commit from")
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$dry_run" = 1 ]; then
    echo "deploy: a real run needs these missing prerequisites:"
    for item in "${missing[@]}"; do echo "  - $item"; done
  else
    echo "deploy: missing prerequisites:" >&2
    for item in "${missing[@]}"; do echo "  - $item" >&2; done
    fail "install them and run infra/deploy.sh again"
  fi
fi
echo "minikube $(minikube version --short 2>/dev/null || echo '?'), kubectl $(kubectl version --client 2>/dev/null | head -1 | awk '{print $3}'), builder ${builder:-none}${REGISTRY:+, pushing to $REGISTRY}, image tag ${IMAGE_TAG:-none}"
if [ "$check_only" = 1 ]; then
  echo "deploy: prerequisites present"
  exit 0
fi
[ "$dry_run" = 0 ] || echo "deploy: dry run: printing what would be run (+ ...), changing nothing"

# 2. The cluster.
step "Minikube profile $PROFILE (Kubernetes $K8S_VERSION)"
if [ "$dry_run" = 0 ] && minikube -p "$PROFILE" status >/dev/null 2>&1; then
  echo "already running"
else
  # shellcheck disable=SC2086 # START_ARGS is a list of flags
  run minikube -p "$PROFILE" start --kubernetes-version="$K8S_VERSION" $START_ARGS \
    || fail "minikube could not start the cluster (see its message above)"
fi
run kubectl config use-context "$PROFILE"
if [ "$dry_run" = 1 ]; then
  MINIKUBE_IP="<minikube ip>"
else
  MINIKUBE_IP="$(minikube -p "$PROFILE" ip)"
fi

# Retries `kubectl apply` while Knative's webhooks are still starting.
apply() {
  local attempt
  if [ "$dry_run" = 1 ]; then run kubectl apply "$@"; return 0; fi
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
    run kubectl -n "$ns" wait deployment --all --for=condition=Available --timeout=600s \
      || fail "Knative's deployments in $ns did not become available"
  done
  step "configuring Knative for Minikube"
  # Kourier as the ingress; reachable on a NodePort of the Minikube node.
  run kubectl -n knative-serving patch configmap/config-network --type merge \
    -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
  run kubectl -n kourier-system patch service/kourier --type merge -p '{"spec":{"type":"NodePort"}}'
  # Service URLs under <minikube ip>.sslip.io.
  run kubectl -n knative-serving patch configmap/config-domain --type merge \
    -p "{\"data\":{\"$MINIKUBE_IP.sslip.io\":\"\"}}"
  # Images built into Minikube are not in a registry: do not resolve their tags to digests.
  run kubectl -n knative-serving patch configmap/config-deployment --type merge \
    -p '{"data":{"registries-skipping-tag-resolving":"kind.local,ko.local,dev.local"}}'
fi

# 4. Images.
if [ "$skip_build" = 0 ]; then
  step "building the images with $builder${REGISTRY:+ and pushing them to $REGISTRY} (the first build compiles the workspace: minutes)"
  # The build context is the workspace's sources only (not target/, which holds gigabytes).
  context="$(mktemp -d)"
  trap 'rm -rf "$context"' EXIT
  if [ "$dry_run" = 0 ]; then
    cp -r Cargo.toml Cargo.lock functions local "$context/"
    cp infra/containers/Containerfile "$context/Containerfile"
  fi
  # Without a registry the images must end up in Minikube's container runtime: docker builds
  # straight into it when Minikube's runtime is docker; otherwise an image built outside is loaded.
  load_into_minikube=0
  if [ -z "$REGISTRY" ] && [ "$builder" != minikube ]; then
    load_into_minikube=1
    if [ "$builder" = docker ] && [ "$dry_run" = 0 ] && minikube -p "$PROFILE" docker-env >/dev/null 2>&1; then
      eval "$(minikube -p "$PROFILE" docker-env)"
      load_into_minikube=0
    fi
  fi
  for image in "${IMAGES[@]}"; do
    echo "--- $image"
    ref="$(image_ref "$image")"
    case "$builder" in
      docker|podman)
        run env DOCKER_BUILDKIT=1 "$builder" build -f "$context/Containerfile" \
          --build-arg FUNCTION="$image" -t "$ref" "$context" \
          || fail "building the $image image failed"
        if [ -n "$REGISTRY" ]; then
          run "$builder" push "$ref" || fail "pushing $ref failed (logged in? $builder login ${REGISTRY%%/*})"
        elif [ "$load_into_minikube" = 1 ] && [ "$builder" = podman ]; then
          run podman save -o "$context/$image.tar" "$ref" || fail "saving the $image image failed"
          run minikube -p "$PROFILE" image load "$context/$image.tar" || fail "loading the $image image into Minikube failed"
        elif [ "$load_into_minikube" = 1 ]; then
          run minikube -p "$PROFILE" image load "$ref" || fail "loading the $image image into Minikube failed"
        fi
        ;;
      minikube)
        run minikube -p "$PROFILE" image build -f Containerfile \
          --build-opt="build-arg=FUNCTION=$image" -t "$ref" "$context" \
          || fail "building the $image image failed"
        ;;
    esac
  done
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
elif [ "$dry_run" = 1 ]; then
  echo "would write them from their .example files with random passwords"
else
  umask 077
  replace=()
  while IFS= read -r token; do
    replace+=(-e "s/$token/$(random_value)/g")
  done < <(grep -oh 'CHANGE_ME_[A-Z0-9_]*' knative/secrets.env.example knative/admin.env.example | sort -u)
  sed "${replace[@]}" knative/secrets.env.example >knative/secrets.env
  sed "${replace[@]}" knative/admin.env.example >knative/admin.env
  umask 022
  echo "written with random passwords"
fi
# Keys the files lack (the examples gained them since the files were written, e.g. admin.env's
# BRIDGE_WEBHOOK_TOKEN) are added, each CHANGE_ME_* in their example value replaced by a new
# random value.
add_missing_keys() {
  local example="$1" file="$2" line key value
  [ -f "$file" ] || return 0
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    key="${line%%=*}"
    grep -q "^$key=" "$file" && continue
    value="$(printf '%s' "${line#*=}" | sed -E "s/CHANGE_ME_[A-Z0-9_]*/$(random_value)/g")"
    if [ "$dry_run" = 1 ]; then
      echo "would add $key to $file"
    else
      (umask 077; printf '%s=%s\n' "$key" "$value" >>"$file")
      echo "added $key to $file"
    fi
  done <"$example"
}
add_missing_keys knative/secrets.env.example knative/secrets.env
add_missing_keys knative/admin.env.example knative/admin.env
step "applying knative/ (kustomization)"
manifests="$(mktemp)"
trap 'rm -f "$manifests"; [ -z "${context:-}" ] || rm -rf "$context"; [ -z "${sources:-}" ] || rm -rf "$sources"' EXIT
kustomization=knative
if [ "$dry_run" = 1 ] && { [ ! -f knative/secrets.env ] || [ ! -f knative/admin.env ]; }; then
  # Nothing was written: build a copy whose env files are the examples.
  sources="$(mktemp -d)"
  cp -r knative "$sources/"
  for name in secrets.env admin.env; do
    [ -f "$sources/knative/$name" ] || cp "knative/$name.example" "$sources/knative/$name"
  done
  kustomization="$sources/knative"
fi
# kubectl's default load restrictions, as `kubectl apply -k knative` (every file is in knative/).
kubectl kustomize "$kustomization" >"$manifests" || fail "kubectl kustomize knative failed"
# dev.local/appraise/<function>:<committed tag> -> dev.local/appraise/<function>:$IMAGE_TAG, or
# with a registry $REGISTRY/appraise-<function>:$IMAGE_TAG, in every field naming an image
# (Knative Services, the JobSink's Job, the bridge's Deployment).
if [ -n "$REGISTRY" ]; then
  sed -i -E "s#([\"' ]|^)$LOCAL_PREFIX/([a-z]+):[A-Za-z0-9_.-]+#\1$REGISTRY/appraise-\2:$IMAGE_TAG#g" "$manifests"
  if grep -q "$LOCAL_PREFIX/" "$manifests"; then
    fail "an image under $LOCAL_PREFIX/ is left in the manifests after the rewrite: $(grep -m1 "$LOCAL_PREFIX/" "$manifests")"
  fi
else
  sed -i -E "s#([\"' ]|^)$LOCAL_PREFIX/([a-z]+):[A-Za-z0-9_.-]+#\1$LOCAL_PREFIX/\2:$IMAGE_TAG#g" "$manifests"
fi
echo "images:"
grep -Eo "image: *[^ ]+" "$manifests" | sed -E 's/image: */  /' | sort -u
apply -f "$manifests"

wait_for() {
  local what="$1"; shift
  echo "waiting for $what"
  run kubectl -n "$NAMESPACE" wait "$@" || fail "$what is not ready (see: kubectl -n $NAMESPACE describe $1)"
}
rollout() {
  run kubectl -n "$NAMESPACE" rollout status "$1" --timeout=300s || fail "$2 did not start"
}
step "waiting for the platform"
rollout statefulset/postgres PostgreSQL
rollout deployment/minio MinIO
wait_for "the bucket setup" job/minio-setup --for=condition=Complete --timeout=300s
rollout deployment/s3-bridge "the bridge"

step "waiting for the functions and the eventing"
wait_for "the Knative Services" ksvc --all --for=condition=Ready --timeout=600s
wait_for "the Broker" broker/default --for=condition=Ready --timeout=300s
wait_for "the JobSink" jobsink/train --for=condition=Ready --timeout=300s
wait_for "the Triggers" trigger --all --for=condition=Ready --timeout=300s
wait_for "the PingSource" pingsource/ingest-schedule --for=condition=Ready --timeout=300s
wait_for "the SinkBinding" sinkbinding/s3-bridge --for=condition=Ready --timeout=300s
step "waiting for monitoring"
rollout deployment/prometheus Prometheus
rollout deployment/alertmanager Alertmanager
rollout deployment/alert-log "the alert log"
rollout deployment/grafana Grafana
if [ "$dry_run" = 1 ]; then
  step "dry run done: nothing was changed"
  exit 0
fi

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
Alertmanager       http://$MINIKUBE_IP:$(node_port "$NAMESPACE" alertmanager web)/   (alerts as they fire; the default receiver logs them:
                   kubectl -n $NAMESPACE logs deployment/alert-log)
MinIO console      kubectl -n $NAMESPACE port-forward service/minio 9001  ->  http://127.0.0.1:9001/
the schedule       PingSource ingest-schedule fires ingest every 10 minutes; to fire it now:
                   kubectl -n $NAMESPACE run fire-ingest --rm -i --restart=Never --image=docker.io/curlimages/curl -- \\
                     -sS -X POST http://ingest.$NAMESPACE.svc.cluster.local/ -H 'ce-specversion: 1.0' \\
                     -H 'ce-type: dev.knative.sources.ping' -H 'ce-source: manual' -H "ce-id: manual-\$(date +%s)" -d '{}'
training Jobs      kubectl -n $NAMESPACE get jobs -l app.kubernetes.io/name=train
EOF
