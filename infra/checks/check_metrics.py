#!/usr/bin/env python3
"""Checks that every metric a Grafana panel or a Prometheus rule queries is exported.

Metric names are taken from every `expr` of the dashboards (knative/monitoring/config/grafana/dashboards/*.json)
and of the rule files (knative/monitoring/config/prometheus/rules.yml); names with a colon must be recording rules
those files define. The exported names come from real /metrics scrapes, given as files
(Prometheus text exposition; local/tests/system/deploy_checks.rs scrapes the running functions and
passes them here). A histogram's `_bucket`, `_sum` and `_count` series count as exported when
they appear in a scrape.

Usage: check_metrics.py --scrape FILE [--scrape FILE ...] [--dashboards DIR] [--rules FILE ...]
Prints each missing metric with the panels or rules that query it and exits 1, or a summary and
exits 0. `--list` prints the queried names and exits.
"""

import argparse
import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]

# PromQL words that look like identifiers but are not metric names.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "atan2",
}
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

def metric_names(expr):
    """The metric (and recording-rule) names a PromQL expression reads."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries, Grafana's $__rate_interval
    # Label lists of aggregations and vector matching.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    names = set()
    for match in IDENTIFIER.finditer(text):
        word = match.group(0)
        start, end = match.span()
        if start > 0 and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue  # part of a number such as 1e-9
        if word.lower() in KEYWORDS:
            continue
        if text[end:].lstrip().startswith("("):
            continue  # a function
        if re.fullmatch(r"\d.*|e\d*", word):
            continue
        names.add(word)
    return names


def dashboard_queries(folder):
    """(where, expr) for every target of every panel, nested rows included."""
    for path in sorted(pathlib.Path(folder).glob("*.json")):
        dashboard = json.loads(path.read_text())
        stack = list(dashboard.get("panels", []))
        while stack:
            panel = stack.pop(0)
            stack.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield f"{path.name}: panel {panel.get('title')!r}", target["expr"]


def rule_queries(paths):
    """(where, expr) for every rule, and the names the recording rules define."""
    queries, recorded = [], set()
    for path in paths:
        spec = yaml.safe_load(pathlib.Path(path).read_text()) or {}
        for group in spec.get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("record") or rule.get("alert")
                queries.append((f"{pathlib.Path(path).name}: {name}", rule["expr"]))
                if "record" in rule:
                    recorded.add(rule["record"])
    return queries, recorded


def exported_names(paths):
    """Every metric name with a sample or a TYPE line in the scrapes."""
    names = set()
    for path in paths:
        for line in pathlib.Path(path).read_text().splitlines():
            if line.startswith("# TYPE "):
                names.add(line.split()[2])
            elif line and not line.startswith("#"):
                match = IDENTIFIER.match(line)
                if match:
                    names.add(match.group(0))
    return names


def main():
    parser = argparse.ArgumentParser(description="Queried metrics must be exported.")
    parser.add_argument("--scrape", action="append", default=[], help="a /metrics scrape (text file)")
    parser.add_argument("--dashboards", default=str(ROOT / "knative" / "monitoring" / "config" / "grafana" / "dashboards"))
    parser.add_argument("--rules", action="append", default=None)
    parser.add_argument("--list", action="store_true", help="print the queried names and exit")
    args = parser.parse_args()
    rule_files = args.rules or [str(ROOT / "knative" / "monitoring" / "config" / "prometheus" / "rules.yml")]

    queries = list(dashboard_queries(args.dashboards))
    rules, recorded = rule_queries(rule_files)
    queries += rules
    wanted = {}
    for where, expr in queries:
        for name in metric_names(expr):
            wanted.setdefault(name, []).append(where)
    if args.list:
        for name in sorted(wanted):
            print(name)
        return 0
    if not args.scrape:
        parser.error("give at least one --scrape file")
    exported = exported_names(args.scrape)

    problems = []
    for name, places in sorted(wanted.items()):
        if ":" in name:
            if name not in recorded:
                problems.append(f"{name}: looks like a recording rule, but no rule records it (used by {'; '.join(places)})")
        elif name not in exported:
            problems.append(f"{name}: not exported by any scraped function (used by {'; '.join(places)})")
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        print(f"FAILED: {len(problems)} queried metric(s) missing from {len(args.scrape)} scrape(s)", file=sys.stderr)
        return 1
    plain = sorted(name for name in wanted if ":" not in name)
    print(f"ok: the {len(plain)} metrics queried by {len(queries)} panel targets and rules are all "
          f"exported ({', '.join(plain)}); {len(wanted) - len(plain)} recording rules are defined")
    return 0


if __name__ == "__main__":
    sys.exit(main())
