#!/usr/bin/env python3
"""Turns the files bench/fits.sh writes into its markdown table (standard library only).

Usage: fits_report.py OUT SIZE [SIZE ...] --rounds N --booster-rounds M

Per size and model: the peer's and appraise's fit seconds round by round, the ratio of each
pair (appraise / peer, round k against round k), test RMSE, and each process's peak RSS.
"""

import argparse
import json
import os
import statistics
from collections import namedtuple

# One round of a comparison: the peer's fit (a dict, None when it failed), the key of its test
# RMSE, the file whose .rss holds its peak memory; the same for appraise's fit.
Pair = namedtuple("Pair", "peer peer_rmse_key peer_file ours our_file")


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_json_lines(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.startswith("{")]
    except (OSError, ValueError):
        return []


def peak_mib(path):
    try:
        with open(path + ".rss") as f:
            return int(f.read().split()[-1]) / 1024
    except (OSError, ValueError, IndexError):
        return None


def appraise_fit(lines, model):
    for line in lines:
        if line.get("model") == model:
            return line
    return None


def cell(values, digits=2):
    values = [v for v in values if v is not None]
    if not values:
        return "failed"
    return " / ".join(f"{v:,.{digits}f}" for v in values)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("sizes", nargs="+")
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--booster-rounds", type=int, required=True)
    a = parser.parse_args()
    print("| training rows | model | peer | peer fit s | appraise fit s | appraise / peer per pair "
          "| median ratio | peer RMSE | appraise RMSE | peer peak RSS MiB | appraise peak RSS MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in a.sizes:
        base = os.path.join(a.out, "{}-" + size + "-{}")
        rows = None
        # The peer's train.py against compare_peer (each side its own features).
        for name in ["random_forest", "xgboost", "ridge"]:
            pairs = []
            for k in range(1, a.rounds + 1):
                peer = (read_json(base.format("peer", k) + ".json") or {}).get("models", {})
                ours = appraise_fit(read_json_lines(base.format("appraise", k) + ".jsonl"), name)
                rows = rows or (ours and ours["train_rows"])
                pairs.append(Pair(peer.get(name), "rmse", base.format("peer", k) + ".log",
                                  ours, base.format("appraise", k) + ".jsonl"))
            print_row(rows or int(size), name, "train.py (8 features)", pairs)
        # XGBoost against the booster on the same exported matrix.
        pairs = []
        for k in range(1, a.booster_rounds + 1):
            xgboost = read_json(base.format("xgboost", k) + ".json")
            ours = appraise_fit(read_json_lines(base.format("booster", k) + ".jsonl"), "xgboost")
            pairs.append(Pair(xgboost, "test_rmse", base.format("xgboost", k) + ".json",
                              ours, base.format("booster", k) + ".jsonl"))
        print_row(rows or int(size), "xgboost (same matrix)", "XGBoost hist, 16 features", pairs)


def print_row(rows, model, peer_name, pairs):
    """One table row from a Pair per round; a missing fit shows as "failed"."""
    ratios = [p.ours["fit_seconds"] / p.peer["fit_seconds"] for p in pairs if p.peer and p.ours]
    median = f"{statistics.median(ratios):.2f}" if ratios else "n/a"
    peer_fit = [p.peer and p.peer["fit_seconds"] for p in pairs]
    our_fit = [p.ours and p.ours["fit_seconds"] for p in pairs]
    peer_rmse = [p.peer and p.peer[p.peer_rmse_key] for p in pairs]
    our_rmse = [p.ours and p.ours["rmse"] for p in pairs]
    peer_rss = [peak_mib(p.peer_file) for p in pairs]
    our_rss = [peak_mib(p.our_file) for p in pairs]
    print(f"| {rows:,} | {model} | {peer_name} | {cell(peer_fit)} | {cell(our_fit)} "
          f"| {cell(ratios)} | {median} | {cell(peer_rmse, 0)} | {cell(our_rmse, 0)} "
          f"| {cell(peer_rss, 0)} | {cell(our_rss, 0)} |")

if __name__ == "__main__":
    main()
