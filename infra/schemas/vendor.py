#!/usr/bin/env python3
"""Regenerates the vendored schema files in this folder (see README.md for versions and origins).

Not run by the tests: the files it writes are committed. Run it by hand when a target release
changes, from a Python that can import both sources:

    python infra/schemas/vendor.py --kubernetes-validate <site-packages>/kubernetes_validate

It keeps only the kinds the manifests use (KUBERNETES_KINDS, KNATIVE_KINDS) and the definitions
those kinds reach, and makes the Knative schemas strict (an object with declared properties
allows no others), as the Kubernetes "strict" schemas already are.
"""

import argparse
import json
import pathlib

KUBERNETES_VERSION = "v1.34.0"
KNATIVE_VERSION = "1.23.0"
HERE = pathlib.Path(__file__).resolve().parent

# apiVersion/kind -> file name in kubernetes_validate's kubernetes-json-schema/<version>-local-strict
KUBERNETES_KINDS = {
    "v1/Namespace": "namespace-v1.json",
    "v1/ConfigMap": "configmap-v1.json",
    "v1/Secret": "secret-v1.json",
    "v1/Service": "service-v1.json",
    "v1/PersistentVolumeClaim": "persistentvolumeclaim-v1.json",
    "apps/v1/Deployment": "deployment-apps-v1.json",
    "apps/v1/StatefulSet": "statefulset-apps-v1.json",
    "batch/v1/Job": "job-batch-v1.json",
    "networking.k8s.io/v1/NetworkPolicy": "networkpolicy-networking-v1.json",
}

# apiVersion/kind -> (cloudcoil models module, class name)
KNATIVE_KINDS = {
    "serving.knative.dev/v1/Service": ("cloudcoil.models.knative_serving.serving_knative_dev.v1", "Service"),
    "eventing.knative.dev/v1/Broker": ("cloudcoil.models.knative_eventing.eventing_knative_dev.v1", "Broker"),
    "eventing.knative.dev/v1/Trigger": ("cloudcoil.models.knative_eventing.eventing_knative_dev.v1", "Trigger"),
    "sources.knative.dev/v1/PingSource": ("cloudcoil.models.knative_eventing.sources_knative_dev.v1", "PingSource"),
    "sources.knative.dev/v1/SinkBinding": ("cloudcoil.models.knative_eventing.sources_knative_dev.v1", "SinkBinding"),
    "sinks.knative.dev/v1alpha1/JobSink": ("cloudcoil.models.knative_eventing.sinks_knative_dev.v1alpha1", "JobSink"),
}

def rewrite_refs(node, found):
    """Points Kubernetes refs at this file's own $defs and records the names reached."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and "#/$defs/" in value:
                # "/api/_definitions.json#/$defs/X" in a kind's file, "#/$defs/X" within the
                # definitions file.
                name = value.split("#/$defs/", 1)[1]
                found.add(name)
                out[key] = "#/$defs/" + name
            else:
                out[key] = rewrite_refs(value, found)
        return out
    if isinstance(node, list):
        return [rewrite_refs(item, found) for item in node]
    return node


def vendor_kubernetes(package: pathlib.Path):
    folder = package / "kubernetes-json-schema" / f"{KUBERNETES_VERSION}-local-strict"
    definitions = json.loads((folder / "_definitions.json").read_text())["$defs"]
    defs, kinds, pending = {}, {}, set()
    for kind, file_name in KUBERNETES_KINDS.items():
        schema = json.loads((folder / file_name).read_text())
        for key in ("$schema", "$id"):
            schema.pop(key, None)
        kinds[kind] = rewrite_refs(schema, pending)
    while pending:
        name = pending.pop()
        if name in defs:
            continue
        reached = set()
        defs[name] = rewrite_refs(definitions[name], reached)
        pending |= reached - defs.keys()
    out = {
        "$comment": f"Kubernetes {KUBERNETES_VERSION} strict JSON schemas, the kinds appraise uses; see README.md",
        "kinds": kinds,
        "$defs": dict(sorted(defs.items())),
    }
    path = HERE / f"kubernetes-{KUBERNETES_VERSION}-strict.json"
    path.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
    print(f"wrote {path} ({len(kinds)} kinds, {len(defs)} definitions)")


def strict(node):
    """additionalProperties: false on every object schema that lists its properties."""
    if isinstance(node, dict):
        out = {key: strict(value) for key, value in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


def vendor_knative():
    import importlib

    kinds = {}
    for kind, (module, name) in KNATIVE_KINDS.items():
        model = getattr(importlib.import_module(module), name)
        kinds[kind] = strict(model.model_json_schema(by_alias=True))
    out = {
        "$comment": f"Knative {KNATIVE_VERSION} (Serving and Eventing) schemas, the kinds appraise uses; see README.md",
        "kinds": kinds,
    }
    path = HERE / f"knative-{KNATIVE_VERSION}-strict.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({len(kinds)} kinds)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-validate", type=pathlib.Path, required=True,
                        help="the installed kubernetes_validate package folder")
    args = parser.parse_args()
    vendor_kubernetes(args.kubernetes_validate)
    vendor_knative()


if __name__ == "__main__":
    main()
