#!/usr/bin/env python3
"""Offline checks of the Knative deployment's manifests (knative/, one kustomization).

1. Every document of every file the kustomization lists validates against the vendored schema
   of the release it targets (infra/schemas/: Kubernetes v1.34.0 strict, Knative 1.23.0 strict);
   a JobSink's embedded Job is validated as a batch/v1 Job too. A kind without a vendored
   schema is an error.
2. Knative rules the schemas cannot express: no env name Knative reserves (PORT, K_SERVICE,
   K_CONFIGURATION, K_REVISION), directly or through an envFrom ConfigMap/Secret of the bundle;
   no reserved port (8012, 8013, 8022, 9090, 9091, 8008); timeoutSeconds at most 600; every
   function container with CPU and memory requests and limits, a readiness and a liveness probe.
3. References resolve: Triggers name the bundle's Broker and subscribers and pick their objects
   with a `filters` `prefix` on `subject` (the object key the bridge sets); the Broker and
   every Trigger have a delivery policy (retry, backoffPolicy, backoffDelay, no unknown field)
   whose deadLetterSink exists; PingSource and SinkBinding sinks and subjects exist; every
   ConfigMap/Secret an env or volume names exists, and so does every key an env takes from one;
   generator files exist.
4. kustomize's default load restriction, which `kubectl apply -k` applies: every file a
   kustomization reads (resources, configMapGenerator and secretGenerator files and env files)
   is in or below its folder, symlinks resolved. Checked here whether or not kubectl exists.
5. When kubectl is on PATH: a copy of the kustomization is built with `kubectl kustomize` and
   the default load restrictions (as `kubectl apply -k` builds it), with each missing
   secretGenerator env file taken from its committed `.example`, and every built document goes
   through checks 1 to 3 again (generated names and rewritten references included). Without
   kubectl this step is skipped, said.

A secretGenerator env file that does not exist (it is git-ignored: infra/deploy.sh writes it)
is read from `<file>.example` beside it for checks 1 to 3, said in the summary.

Usage: check_manifests.py [KUSTOMIZATION_DIR] [--schemas DIR] [--no-build]
       check_manifests.py --built FILE [--schemas DIR]   (FILE: `kubectl kustomize` output, - for stdin)
Prints one line per problem (file, kind/name, where, what) and exits 1 when there is any; prints
a summary and exits 0 otherwise.
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
RESERVED_PORTS = {8012, 8013, 8022, 9090, 9091, 8008}
MAX_TIMEOUT_SECONDS = 600
# Knative 1.23's DeliverySpec fields; its vendored schema lets any other key through.
DELIVERY_FIELDS = {"deadLetterSink", "retry", "backoffPolicy", "backoffDelay", "timeout",
                   "retryAfterMax", "format"}


class Problems:
    def __init__(self):
        self.lines = []

    def add(self, where, message):
        self.lines.append(f"{where}: {message}")


def kind_key(doc):
    return f"{doc.get('apiVersion')}/{doc.get('kind')}"


def label(path, doc):
    name = (doc.get("metadata") or {}).get("name", "?")
    return f"{path}: {doc.get('kind', '?')}/{name}"


def within(directory, path):
    """Whether path (symlinks resolved) is in or below directory: kustomize's default
    LoadRestrictionsRootOnly."""
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except ValueError:
        return False


def read_env_file(path):
    """KEY=VALUE lines of a kustomize env file (blank lines and # comments skipped)."""
    data = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        data[key.strip()] = value
    return data


def load_kustomization(directory, problems, notes, seen=None):
    """The (path, document) pairs a kustomization lists, following nested kustomizations,
    plus the ConfigMaps and Secrets its generators make (with their data keys)."""
    seen = seen or set()
    directory = directory.resolve()
    if directory in seen:
        return []
    seen.add(directory)
    kustomization = directory / "kustomization.yaml"
    if not kustomization.exists():
        problems.add(str(directory), "no kustomization.yaml")
        return []
    spec = yaml.safe_load(kustomization.read_text()) or {}

    def reachable(what, entry):
        path = directory / entry
        if not within(directory, path):
            problems.add(str(kustomization),
                         f"{what}: file '{entry}' is not in or below '{directory.name}' "
                         "(kubectl apply -k refuses it: move the file under the kustomization)")
            return None
        return path

    documents = []
    for entry in spec.get("resources", []):
        path = reachable("resources", entry)
        if path is None:
            continue
        if path.is_dir():
            documents += load_kustomization(path, problems, notes, seen)
        elif not path.exists():
            problems.add(str(kustomization), f"resource {entry} does not exist")
        else:
            try:
                for doc in yaml.safe_load_all(path.read_text()):
                    if doc is not None:
                        documents.append((path, doc))
            except yaml.YAMLError as error:
                problems.add(str(path), f"not YAML: {error}")
    for generator in spec.get("configMapGenerator", []):
        data = {}
        for entry in generator.get("files", []):
            source = entry.split("=", 1)[-1]
            path = reachable(f"configMapGenerator {generator.get('name')}", source)
            if path is None:
                continue
            if not path.exists():
                problems.add(str(kustomization),
                             f"configMapGenerator {generator.get('name')}: file {source} does not exist")
                continue
            data[pathlib.Path(source).name] = path.read_text()
            if path.suffix == ".json":
                try:
                    json.loads(data[pathlib.Path(source).name])
                except json.JSONDecodeError as error:
                    problems.add(str(path), f"not JSON: {error}")
            elif path.suffix in (".yml", ".yaml"):
                try:
                    yaml.safe_load(data[pathlib.Path(source).name])
                except yaml.YAMLError as error:
                    problems.add(str(path), f"not YAML: {error}")
        documents.append((kustomization, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": generator.get("name")}, "data": data,
        }))
    for generator in spec.get("secretGenerator", []):
        name = generator.get("name")
        data = {}
        for entry in generator.get("envs", []):
            path = reachable(f"secretGenerator {name}", entry)
            if path is None:
                continue
            if not path.exists():
                example = path.with_name(path.name + ".example")
                if not example.exists():
                    problems.add(str(kustomization),
                                 f"secretGenerator {name}: env file {entry} does not exist, nor {entry}.example")
                    continue
                notes.append(f"{entry} read from {entry}.example")
                path = example
            data.update(read_env_file(path))
        for entry in generator.get("files", []):
            source = entry.split("=", 1)[-1]
            path = reachable(f"secretGenerator {name}", source)
            if path is not None and not path.exists():
                problems.add(str(kustomization), f"secretGenerator {name}: file {source} does not exist")
            data[entry.split("=", 1)[0] if "=" in entry else pathlib.Path(source).name] = ""
        for literal in generator.get("literals", []):
            data[literal.split("=", 1)[0]] = ""
        documents.append((kustomization, {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name}, "stringData": data,
        }))
    return documents


def load_built(text, source, problems):
    """The (path, document) pairs of a built kustomization (multi-document YAML)."""
    documents = []
    try:
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                documents.append((pathlib.Path(source), doc))
    except yaml.YAMLError as error:
        problems.add(source, f"not YAML: {error}")
    return documents


def kustomize_version():
    """kubectl's built-in kustomize major version, or None when kubectl is missing or does not
    say (Debian bookworm's kubernetes-client 1.20 embeds kustomize v2, which knows no `labels:`
    and cannot build this kustomization)."""
    if not shutil.which("kubectl"):
        return None
    out = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True,
                         timeout=60).stdout
    for line in out.splitlines():
        if line.startswith("Kustomize Version: v"):
            try:
                return int(line.split("v", 1)[1].split(".")[0])
            except ValueError:
                return None
    return None


def build_with_kubectl(directory, problems, notes):
    """`kubectl kustomize` (default load restrictions) on a copy of the kustomization with the
    missing secretGenerator env files taken from their examples: the built documents, or None."""
    with tempfile.TemporaryDirectory() as temp:
        copy = pathlib.Path(temp) / directory.resolve().name
        shutil.copytree(directory, copy, symlinks=True)
        for example in copy.rglob("*.env.example"):
            target = example.with_name(example.name[:-len(".example")])
            if not target.exists():
                shutil.copy(example, target)
        build = subprocess.run(["kubectl", "kustomize", str(copy)],
                               capture_output=True, text=True, timeout=120)
    if build.returncode != 0:
        problems.add(str(directory), f"kubectl kustomize fails: {build.stderr.strip()}")
        return None
    return load_built(build.stdout, f"{directory} (built by kubectl kustomize)", problems)


def load_schemas(folder):
    kinds = {}
    for path in sorted(folder.glob("*-strict.json")):
        bundle = json.loads(path.read_text())
        shared = bundle.get("$defs")
        for key, schema in bundle["kinds"].items():
            if shared is not None:
                schema = dict(schema, **{"$defs": shared})
            kinds[key] = (path.name, jsonschema.Draft202012Validator(schema))
    return kinds


def error_path(error):
    return "/".join(str(part) for part in error.absolute_path) or "(top)"


def validate(where, document, key, schemas, problems):
    if key not in schemas:
        problems.add(where, f"no vendored schema for {key} (add the kind to infra/schemas/vendor.py)")
        return
    source, validator = schemas[key]
    reported = set()
    for error in validator.iter_errors(document):
        for reason in reasons(error):
            line = f"{error_path(reason)}: {reason.message} (schema {source})"
            if line not in reported:
                reported.add(line)
                problems.add(where, line)


def reasons(error):
    """The specific failures under an error. Optional fields are `anyOf [X, null]`, whose top
    error only says the whole value is not null: report what is wrong inside X instead."""
    if not error.context:
        return [error]
    leaves = []
    stack = list(error.context)
    while stack:
        candidate = stack.pop()
        if candidate.context:
            stack.extend(candidate.context)
        elif not (candidate.validator == "type" and candidate.validator_value == "null"):
            leaves.append(candidate)
    if not leaves:
        return [error]
    return sorted(leaves, key=error_path)


def pod_specs(doc):
    """(where-suffix, pod spec, is_function) for every pod template in a document."""
    kind = kind_key(doc)
    spec = doc.get("spec") or {}
    if kind == "serving.knative.dev/v1/Service":
        yield "spec.template.spec", ((spec.get("template") or {}).get("spec") or {}), True
    elif kind == "sinks.knative.dev/v1alpha1/JobSink":
        job = (spec.get("job") or {}).get("spec") or {}
        yield "spec.job.spec.template.spec", ((job.get("template") or {}).get("spec") or {}), True
    elif kind in ("apps/v1/Deployment", "apps/v1/StatefulSet", "batch/v1/Job"):
        yield "spec.template.spec", ((spec.get("template") or {}).get("spec") or {}), False


def check_knative_rules(where, doc, config_keys, problems):
    knative_service = kind_key(doc) == "serving.knative.dev/v1/Service"
    for prefix, pod, is_function in pod_specs(doc):
        if knative_service:
            timeout = pod.get("timeoutSeconds")
            if isinstance(timeout, int) and timeout > MAX_TIMEOUT_SECONDS:
                problems.add(where, f"{prefix}.timeoutSeconds: {timeout} is above Knative's maximum of {MAX_TIMEOUT_SECONDS} s")
        for index, container in enumerate(pod.get("containers") or []):
            at = f"{prefix}.containers[{index}]"
            if knative_service:
                for env in container.get("env") or []:
                    if env.get("name") in RESERVED_ENV:
                        problems.add(where, f"{at}.env: {env['name']} is reserved by Knative (it sets it itself)")
                for source in container.get("envFrom") or []:
                    for ref_kind in ("configMapRef", "secretRef"):
                        ref = (source.get(ref_kind) or {}).get("name")
                        for key in sorted(config_keys.get(ref, set()) & RESERVED_ENV):
                            problems.add(where, f"{at}.envFrom {ref_kind} {ref}: key {key} is reserved by Knative")
                for port in container.get("ports") or []:
                    if port.get("containerPort") in RESERVED_PORTS:
                        problems.add(where, f"{at}.ports: {port['containerPort']} is reserved by Knative")
            if is_function:
                resources = container.get("resources") or {}
                for part in ("requests", "limits"):
                    for resource in ("cpu", "memory"):
                        if resource not in (resources.get(part) or {}):
                            problems.add(where, f"{at}.resources.{part}.{resource}: missing")
                for probe in ("readinessProbe", "livenessProbe"):
                    if not container.get(probe):
                        problems.add(where, f"{at}.{probe}: missing")


def referenced_config(doc):
    """(kind, name) of every ConfigMap and Secret a document's pods use."""
    for _, pod, _ in pod_specs(doc):
        for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            for env in container.get("env") or []:
                value_from = env.get("valueFrom") or {}
                if "configMapKeyRef" in value_from:
                    yield "ConfigMap", value_from["configMapKeyRef"].get("name")
                if "secretKeyRef" in value_from:
                    yield "Secret", value_from["secretKeyRef"].get("name")
            for source in container.get("envFrom") or []:
                if "configMapRef" in source:
                    yield "ConfigMap", source["configMapRef"].get("name")
                if "secretRef" in source:
                    yield "Secret", source["secretRef"].get("name")
        for volume in pod.get("volumes") or []:
            if "configMap" in volume:
                yield "ConfigMap", volume["configMap"].get("name")
            if "secret" in volume:
                yield "Secret", volume["secret"].get("secretName")
            if "persistentVolumeClaim" in volume:
                yield "PersistentVolumeClaim", volume["persistentVolumeClaim"].get("claimName")


def referenced_keys(doc):
    """(kind, name, key) of every single key a document's containers take from a ConfigMap or
    Secret (`valueFrom.configMapKeyRef` / `secretKeyRef`), optional ones left out."""
    for _, pod, _ in pod_specs(doc):
        for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            for env in container.get("env") or []:
                value_from = env.get("valueFrom") or {}
                for ref_kind, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    ref = value_from.get(ref_kind) or {}
                    if ref and not ref.get("optional"):
                        yield kind, ref.get("name"), ref.get("key")


def check_delivery(where, spec, need, problems):
    """A Broker's or Trigger's spec.delivery: a dead-letter sink that exists, and a retry
    policy."""
    delivery = spec.get("delivery")
    if not isinstance(delivery, dict):
        problems.add(where, "spec.delivery: missing (retry, backoff and a deadLetterSink, or a failed delivery is dropped unseen)")
        return
    for field in sorted(set(delivery) - DELIVERY_FIELDS):
        problems.add(where, f"spec.delivery.{field}: not a Knative delivery field ({', '.join(sorted(DELIVERY_FIELDS))})")
    sink = delivery.get("deadLetterSink") or {}
    ref = sink.get("ref") or {}
    if ref:
        need(where, ref.get("kind"), ref.get("name"), "spec.delivery.deadLetterSink.ref")
    elif not sink.get("uri"):
        problems.add(where, "spec.delivery.deadLetterSink: missing (a ref or a uri)")
    retry = delivery.get("retry")
    if not isinstance(retry, int) or retry < 1:
        problems.add(where, f"spec.delivery.retry: {retry!r}, expected a positive integer")
    if delivery.get("backoffPolicy") not in ("linear", "exponential"):
        problems.add(where, f"spec.delivery.backoffPolicy: {delivery.get('backoffPolicy')!r}, expected linear or exponential")
    delay = delivery.get("backoffDelay")
    if not (isinstance(delay, str) and delay.startswith("P")):
        problems.add(where, f"spec.delivery.backoffDelay: {delay!r}, expected an ISO 8601 duration such as PT1S")


def check_references(documents, problems):
    defined = {(doc.get("kind"), (doc.get("metadata") or {}).get("name")) for _, doc in documents}
    keys = {}
    for _, doc in documents:
        if doc.get("kind") in ("ConfigMap", "Secret"):
            keys[(doc.get("kind"), (doc.get("metadata") or {}).get("name"))] = (
                set((doc.get("data") or {}).keys()) | set((doc.get("stringData") or {}).keys()))

    def need(where, kind, name, what):
        if (kind, name) not in defined:
            problems.add(where, f"{what} {kind}/{name} is not defined in the kustomization")

    for path, doc in documents:
        where = label(path, doc)
        kind = kind_key(doc)
        spec = doc.get("spec") or {}
        for ref_kind, name in referenced_config(doc):
            need(where, ref_kind, name, "uses")
        for ref_kind, name, key in referenced_keys(doc):
            if (ref_kind, name) in keys and key not in keys[(ref_kind, name)]:
                problems.add(where, f"takes key {key} of {ref_kind}/{name}, which has no such key")
        if kind == "eventing.knative.dev/v1/Broker":
            check_delivery(where, spec, need, problems)
        if kind == "eventing.knative.dev/v1/Trigger":
            need(where, "Broker", spec.get("broker"), "spec.broker")
            ref = (spec.get("subscriber") or {}).get("ref") or {}
            need(where, ref.get("kind"), ref.get("name"), "spec.subscriber.ref")
            check_delivery(where, spec, need, problems)
            prefixes = [(item.get("prefix") or {}).get("subject")
                        for item in spec.get("filters") or [] if isinstance(item, dict)]
            if not any(isinstance(prefix, str) and prefix for prefix in prefixes):
                problems.add(where, "spec.filters: no `prefix` on `subject` (the object key the bridge sets)")
            if spec.get("filter"):
                problems.add(where, "spec.filter: the legacy exact-match filter; the Triggers pick objects with spec.filters (prefix on subject), which takes precedence: drop it")
        if kind in ("sources.knative.dev/v1/PingSource", "sources.knative.dev/v1/SinkBinding"):
            ref = (spec.get("sink") or {}).get("ref") or {}
            need(where, ref.get("kind"), ref.get("name"), "spec.sink.ref")
        if kind == "sources.knative.dev/v1/SinkBinding":
            subject = spec.get("subject") or {}
            need(where, subject.get("kind"), subject.get("name"), "spec.subject")


def check_documents(documents, schemas, problems):
    """Checks 1 to 3 on (path, document) pairs."""
    config_keys = {}
    for _, doc in documents:
        if doc.get("kind") in ("ConfigMap", "Secret"):
            keys = set((doc.get("data") or {}).keys()) | set((doc.get("stringData") or {}).keys())
            config_keys[(doc.get("metadata") or {}).get("name")] = keys
    for path, doc in documents:
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            problems.add(str(path), "a document without apiVersion and kind")
            continue
        where = label(path, doc)
        if path.name != "kustomization.yaml":
            validate(where, doc, kind_key(doc), schemas, problems)
        if kind_key(doc) == "sinks.knative.dev/v1alpha1/JobSink":
            job = dict((doc.get("spec") or {}).get("job") or {})
            job.setdefault("apiVersion", "batch/v1")
            job.setdefault("kind", "Job")
            validate(f"{where} (spec.job as batch/v1 Job)", job, "batch/v1/Job", schemas, problems)
        check_knative_rules(where, doc, config_keys, problems)
    check_references(documents, problems)


def main():
    parser = argparse.ArgumentParser(description="Offline checks of the Knative manifests.")
    parser.add_argument("kustomization", nargs="?", default=str(ROOT / "knative"))
    parser.add_argument("--schemas", default=str(ROOT / "infra" / "schemas"))
    parser.add_argument("--built", metavar="FILE",
                        help="check `kubectl kustomize` output (multi-document YAML; - for stdin) instead")
    parser.add_argument("--no-build", action="store_true", help="do not run `kubectl kustomize`")
    args = parser.parse_args()

    problems = Problems()
    notes = []
    schemas = load_schemas(pathlib.Path(args.schemas))
    if args.built:
        target = args.built
        text = sys.stdin.read() if args.built == "-" else pathlib.Path(args.built).read_text()
        documents = load_built(text, args.built, problems)
        check_documents(documents, schemas, problems)
        rendered = "built output"
    else:
        target = args.kustomization
        documents = load_kustomization(pathlib.Path(args.kustomization), problems, notes)
        check_documents(documents, schemas, problems)
        if args.no_build:
            rendered = "`kubectl kustomize` not asked for (--no-build)"
        elif not shutil.which("kubectl"):
            rendered = "kubectl not on PATH: `kubectl kustomize` not tried"
        elif (kustomize_version() or 0) < 4:
            rendered = ("kubectl's kustomize is older than v4 (or unknown) and cannot build this "
                        "kustomization: `kubectl kustomize` not tried")
        else:
            built = build_with_kubectl(pathlib.Path(args.kustomization), problems, notes)
            if built is None:
                rendered = "kubectl kustomize fails"
            else:
                check_documents(built, schemas, problems)
                rendered = (f"kubectl kustomize (default load restrictions) builds {len(built)} "
                            "objects, which pass the same checks")

    if problems.lines:
        for line in problems.lines:
            print(line, file=sys.stderr)
        print(f"FAILED: {len(problems.lines)} problem(s) in {target}", file=sys.stderr)
        return 1
    files = {path for path, _ in documents}
    used = sorted({kind_key(doc) for _, doc in documents})
    print(f"ok: {len(documents)} documents in {len(files)} files validate against "
          f"{', '.join(sorted({schemas[k][0] for k in used if k in schemas}))}; "
          f"Knative rules and references hold ({', '.join(used)}); every file is in or below "
          f"the kustomization; {rendered}"
          + (f"; {'; '.join(notes)}" if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
