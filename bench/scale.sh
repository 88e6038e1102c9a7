#!/usr/bin/env bash
# The whole pipeline at the real dataset's size, nothing sampled away: appraise's main job
# serves 2,226,382 generated rows (the row count of the Kaggle realtor-data file) in the course
# plan's six batches, ingest keeps every record, and train fits once, on every clean row. Then
# the Python peer's train.py fits on the same training rows and scores on the same test rows
# (its failure, such as being killed for memory, is recorded and the script goes on).
# Prints a markdown table, also written to $BENCH_OUT/scale.md: per stage (the source, ingest,
# process, train, promote) invocations, wall and CPU seconds, rows in and out, rows per second
# and peak resident memory; per model appraise's fit seconds and test scores next to the peer's.
#
#   bash bench/scale.sh                # SCALE=0.05 bash bench/scale.sh: a quick check
#
# Knobs:
#   SCALE [2.052137]   multiplies the course plan's 1,084,909 rows; 2.052137 serves exactly
#                      2,226,382 (each batch rounded, functions/source/src/plan.rs)
#   MIN_NEW_ROWS [55 % of the rows served]  train's threshold (TRAIN_MIN_NEW_ROWS): batches
#                      0 to 4 skip with too few new clean rows, batch 5 trains on all of them
#   TREES [100]        the random forest's trees
#   BENCH_OUT [/tmp/appraise-scale]  PEER [../shared/bench/peer]  PEER_VENV [/tmp/peer-venv]
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${SCALE:-2.052137}"
TREES="${TREES:-100}"
OUT="${BENCH_OUT:-/tmp/appraise-scale}"
PEER="${PEER:-../shared/bench/peer}"
export PEER_VENV="${PEER_VENV:-/tmp/peer-venv}"
export PATH="$HOME/.cargo/bin:$PATH"

# The rows the source will serve: the course plan's batch sizes at scale 1
# (functions/source/src/plan.rs), each scaled and rounded, at least one row.
ROWS=0
for planned in 73784 94551 230366 4055 320696 361457; do
  ROWS=$((ROWS + $(awk -v r="$planned" -v s="$SCALE" \
    'BEGIN { n = int(r * s + 0.5); print (n < 1 ? 1 : n) }')))
done
MIN_NEW_ROWS="${MIN_NEW_ROWS:-$((ROWS * 55 / 100))}"

# GNU time, for the peer's wall time and peak memory (even when it is killed).
# shellcheck source=bench/gnu-time.sh
source bench/gnu-time.sh

cargo build --release --locked --workspace --bins --exclude appraise-bench-libs

rm -rf "$OUT/run" "$OUT/export" "$OUT/summary.json" "$OUT"/peer.* "$OUT/peer-model.joblib"
mkdir -p "$OUT"
echo "==> appraise run: $ROWS rows (scale $SCALE), every record kept, train window unbounded," \
  "train threshold $MIN_NEW_ROWS new clean rows"
# The functions inherit the harness's environment: TRAIN_WINDOW_ROWS=0 lifts train's window
# (every clean row), TRAIN_EXPORT_DIR has each training write its rows for the peer. A
# throw-away PostgreSQL and the embedded S3 server, whatever the shell has set.
if ! env -u DATABASE_URL -u S3_ENDPOINT TRAIN_WINDOW_ROWS=0 TRAIN_EXPORT_DIR="$OUT/export" \
  target/release/appraise run --scale "$SCALE" --first-sample "$ROWS" --later-sample "$ROWS" \
  --min-new-rows "$MIN_NEW_ROWS" --trees "$TREES" --work-dir "$OUT/run" \
  --summary-json "$OUT/summary.json" 2>&1 | tee "$OUT/run.log"; then
  echo "appraise run failed: its output is in $OUT/run.log, the functions' logs in" \
    "$OUT/run/run-*/logs" >&2
  exit 1
fi

# The peer, on the last training's rows.
TRAIN_CSV=""
for exported in "$OUT"/export/training-*-train.csv; do
  [ -e "$exported" ] && TRAIN_CSV="$exported"
done
PEER_STATUS=""
PEER_EXIT=0
if [ ! -f "$PEER/train.py" ]; then
  PEER_STATUS="not run: no peer at $PEER"
  echo "The peer's scripts are not at $PEER: they are the bench/peer/ folder of the project's" \
    "shared material; set PEER=<that folder> to compare. Skipping the peer."
elif [ -z "$TRAIN_CSV" ]; then
  PEER_STATUS="not run: appraise trained nothing, so there are no rows to compare on"
elif [ ! -x "$PEER_VENV/bin/python" ] && ! bash "$PEER/setup.sh"; then
  PEER_STATUS="failed: its setup.sh failed"
else
  TEST_CSV="${TRAIN_CSV%-train.csv}-test.csv"
  echo "==> the peer's train.py on $TRAIN_CSV and $TEST_CSV"
  set +e
  /usr/bin/time -v -o "$OUT/peer.time" "$PEER_VENV/bin/python" "$PEER/train.py" "$TRAIN_CSV" \
    --test-csv "$TEST_CSV" --params seed --json-out "$OUT/peer.json" \
    --model-out "$OUT/peer-model.joblib" 2>&1 | tee "$OUT/peer.log"
  PEER_EXIT="${PIPESTATUS[0]}"
  set -e
fi

python3 - "$OUT" "$SCALE" "$PEER_STATUS" "$PEER_EXIT" <<'PYEOF'
import datetime, json, os, platform, re, sys

out, scale, peer_status, peer_exit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
summary = json.load(open(f"{out}/summary.json"))


def n(value):
    return "—" if value is None else f"{value:,.0f}"


def secs(value):
    return "—" if value is None else f"{value:,.1f}"


def cpu(value):
    return "—" if value is None else f"{value:,.2f}"


def mb(value):
    return "—" if value is None else f"{value / 1e6:,.0f}"


stages = summary["stages"]
served = next((s["rows_out"] for s in stages if s["stage"] == "source"), None)
trainings = summary["trainings"]
lines = [
    f"appraise run at scale {scale}: {n(served)} rows served (planned {n(summary['rows_planned'])}), "
    f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
    f"{platform.node()} ({os.cpu_count()} CPUs), whole run {secs(summary['run_seconds'])} s",
    "",
    "| stage | invocations | wall s | CPU s | rows in | rows out | rows/s | rows/CPU-s | peak RSS MB |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for s in stages:
    invocations = str(s["invocations"])
    if s["stage"] == "train":
        invocations += f" ({len(trainings)} trained)"
    lines.append(
        f"| {s['stage']} | {invocations} | {secs(s['wall_seconds'])} | {cpu(s['cpu_seconds'])} "
        f"| {n(s['rows_in'])} | {n(s['rows_out'])} | {n(s['rows_per_second'])} "
        f"| {n(s['rows_per_cpu_second'])} | {mb(s['peak_rss_bytes'])} |"
    )

# The peer: its report, its /usr/bin/time record, and how it ended.
peer, timed = None, {}
if os.path.exists(f"{out}/peer.json"):
    peer = json.load(open(f"{out}/peer.json"))
if os.path.exists(f"{out}/peer.time"):
    for line in open(f"{out}/peer.time"):
        key, _, value = line.strip().rpartition(": ")
        timed[key] = value
if not peer_status:
    signal = re.search(r"terminated by signal (\d+)", open(f"{out}/peer.time").read()) \
        if os.path.exists(f"{out}/peer.time") else None
    if signal:
        number = int(signal.group(1))
        peer_status = f"killed by signal {number}" + (
            " (SIGKILL: most likely the kernel's out-of-memory killer)" if number == 9 else "")
    elif peer_exit != 0 or peer is None:
        last = [l.strip() for l in open(f"{out}/peer.log") if l.strip()][-1:] \
            if os.path.exists(f"{out}/peer.log") else []
        peer_status = f"failed with exit status {peer_exit}" + (f": {last[0]}" if last else "")
    else:
        peer_status = "ok"
peer_rss = int(timed["Maximum resident set size (kbytes)"]) * 1024 \
    if "Maximum resident set size (kbytes)" in timed else None
peer_wall = None
if "Elapsed (wall clock) time (h:mm:ss or m:ss)" in timed:
    peer_wall = 0.0
    for part in timed["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":"):
        peer_wall = peer_wall * 60 + float(part)

if trainings:
    last = trainings[-1]
    train = next(s for s in stages if s["stage"] == "train")
    lines += [
        "",
        f"Training {last['training_id']} (batch {last['batch_number']}): appraise fits on "
        f"{n(last['rows_train'])} training rows ({n(last['rows_validation'])} validation) and "
        f"scores on {n(last['rows_test'])} test rows; the peer (`train.py --params seed`) on the "
        f"same training and test rows"
        + (f" ({n(peer['train_rows'])} and {n(peer['test_rows'])})" if peer else "")
        + f". Peer: {peer_status}.",
        "",
        "| model | appraise fit s | peer fit s | appraise test RMSE | peer test RMSE | appraise R² | peer R² |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in last["candidates"]:
        theirs = (peer or {}).get("models", {}).get(c["algorithm"])
        lines.append(
            f"| {c['algorithm']} | {c['fit_seconds']:.2f} "
            f"| {'—' if theirs is None else format(theirs['fit_seconds'], '.2f')} "
            f"| {n(c['test']['rmse'])} | {'—' if theirs is None else n(theirs['rmse'])} "
            f"| {c['test']['r2']:.3f} | {'—' if theirs is None else format(theirs['r2'], '.3f')} |"
        )
    lines += [
        "",
        f"Peak resident memory: appraise's train function {mb(train['peak_rss_bytes'])} MB "
        f"(the whole process, every decision of the run); the peer's train.py {mb(peer_rss)} MB "
        f"(/usr/bin/time). Wall: appraise's train stage {secs(train['wall_seconds'])} s over the "
        f"run; the peer's train.py {secs(peer_wall)} s (reading the CSVs included).",
    ]
else:
    lines += ["", f"No training happened, so there is nothing to compare. Peer: {peer_status}."]

table = "\n".join(lines) + "\n"
open(f"{out}/scale.md", "w").write(table)
print()
print(table, end="")
print(f"\n(written to {out}/scale.md)")
PYEOF
