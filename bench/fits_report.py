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
    rounds = range(1, a.rounds + 1)
    print("| training rows | model | peer | peer fit s | appraise fit s | appraise / peer per pair "
          "| median ratio | peer RMSE | appraise RMSE | peer peak RSS MiB | appraise peak RSS MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in a.sizes:
        base = os.path.join(a.out, "{}-" + size + "-{}")
        # The peer's train.py against compare_peer (each side its own features).
        for peer_name, ours in [("random_forest", "random_forest"), ("xgboost", "xgboost"),
                                ("ridge", "ridge")]:
            peer_fit, our_fit, ratios, peer_rmse, our_rmse, peer_rss, our_rss = ([] for _ in range(7))
            rows = None
            for k in rounds:
                peer = read_json(base.format("peer", k) + ".json") or {}
                model = peer.get("models", {}).get(peer_name)
                ours_line = appraise_fit(read_json_lines(base.format("appraise", k) + ".jsonl"), ours)
                peer_fit.append(model and model["fit_seconds"])
                our_fit.append(ours_line and ours_line["fit_seconds"])
                peer_rmse.append(model and model["rmse"])
                our_rmse.append(ours_line and ours_line["rmse"])
                peer_rss.append(peak_mib(base.format("peer", k) + ".log"))
                our_rss.append(peak_mib(base.format("appraise", k) + ".jsonl"))
                rows = rows or (ours_line and ours_line["train_rows"])
                if model and ours_line:
                    ratios.append(ours_line["fit_seconds"] / model["fit_seconds"])
            median = f"{statistics.median(ratios):.2f}" if ratios else "n/a"
            print(f"| {rows or int(size):,} | {ours} | train.py (8 features) | {cell(peer_fit)} "
                  f"| {cell(our_fit)} | {cell(ratios)} | {median} | {cell(peer_rmse, 0)} "
                  f"| {cell(our_rmse, 0)} | {cell(peer_rss, 0)} | {cell(our_rss, 0)} |")
        # XGBoost against the booster on the same exported matrix.
        peer_fit, our_fit, ratios, peer_rmse, our_rmse, peer_rss, our_rss = ([] for _ in range(7))
        for k in range(1, a.booster_rounds + 1):
            xgb = read_json(base.format("xgboost", k) + ".json")
            ours_line = appraise_fit(read_json_lines(base.format("booster", k) + ".jsonl"), "xgboost")
            peer_fit.append(xgb and xgb["fit_seconds"])
            our_fit.append(ours_line and ours_line["fit_seconds"])
            peer_rmse.append(xgb and xgb["test_rmse"])
            our_rmse.append(ours_line and ours_line["rmse"])
            peer_rss.append(peak_mib(base.format("xgboost", k) + ".json"))
            our_rss.append(peak_mib(base.format("booster", k) + ".jsonl"))
            if xgb and ours_line:
                ratios.append(ours_line["fit_seconds"] / xgb["fit_seconds"])
        median = f"{statistics.median(ratios):.2f}" if ratios else "n/a"
        print(f"| {rows or int(size):,} | xgboost (same matrix) | XGBoost hist, 16 features | {cell(peer_fit)} "
              f"| {cell(our_fit)} | {cell(ratios)} | {median} | {cell(peer_rmse, 0)} "
              f"| {cell(our_rmse, 0)} | {cell(peer_rss, 0)} | {cell(our_rss, 0)} |")


if __name__ == "__main__":
    main()
