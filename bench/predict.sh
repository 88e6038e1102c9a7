#!/usr/bin/env bash
# The predictor against the Python peer, same harness, same bodies, same machine, same run:
# the peer's benchlib.py `server` (cold start, idle and peak RSS, wrk at 16 and 64
# connections with its predict.lua bodies) on appraise's predict, then on the peer's tuned
# FastAPI server with 1 and 2 workers. Prints a comparison table.
#
#   bash bench/predict.sh            # PEER=../shared/bench/peer (where the peer's scripts are)
#
# Needs the peer's virtualenv and wrk (its setup.sh makes both) and a release build. Knobs:
#   PEER [../shared/bench/peer]  BENCH_OUT [/tmp/appraise-bench]  DURATION [20]  CONCS [16,64]
#
#   bash bench/predict.sh memory     # the predictor's RSS around 10,000-row batch requests
#
# Only appraise (no peer): bench/predict_memory.py sends 10,000-row /predict/batch bodies,
# sequentially then from concurrent clients, and prints VmRSS at idle, at its peak and 1 s and
# 10 s after each phase. Knobs: PREDICT_BINS [target/release/predict] (predict binaries to
# measure one after another, e.g. an older build too), ROWS [10000], SEQUENTIAL [20],
# CLIENTS [4], PER_CLIENT [5].
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-compare}"
OUT="${BENCH_OUT:-/tmp/appraise-bench}"
mkdir -p "$OUT"
ROOT="$(pwd)"
if [ "$MODE" = memory ]; then
  cargo build --release --locked -p appraise-local -p appraise-predict
elif [ "$MODE" = compare ]; then
  PEER="$(cd "${PEER:-../shared/bench/peer}" && pwd)"
  DURATION="${DURATION:-20}"
  CONCS="${CONCS:-16,64}"
  export PEER_VENV="${PEER_VENV:-/tmp/peer-venv}"
  [ -x "$PEER_VENV/bin/python" ] && command -v wrk >/dev/null || bash "$PEER/setup.sh"
  PY="$PEER_VENV/bin/python"
  cargo build --release --locked --workspace --bins --exclude appraise-bench-libs
else
  echo "usage: bash bench/predict.sh [memory]" >&2
  exit 2
fi

if [ "$MODE" = compare ]; then
  # The peer's model: its train.py on its generated 145,000-row batch.
  PEER_MODEL="$OUT/peer_model_145000.joblib"
  if [ ! -f "$PEER_MODEL" ]; then
    "$PY" "$PEER/gen_data.py" 145000 "$OUT/peer_data_145000.csv" --seed 42
    "$PY" "$PEER/train.py" "$OUT/peer_data_145000.csv" --model-out "$PEER_MODEL" --params seed
  fi
fi

# appraise: the main job with the default plan, kept serving, so PostgreSQL and the bucket
# hold a promoted model; the benchmarked predictor joins that run with its settings.
rm -rf "$OUT/run"
target/release/appraise run --work-dir "$OUT/run" --serve >"$OUT/run.log" 2>&1 &
RUN=$!
trap 'kill -INT $RUN 2>/dev/null; wait $RUN 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  grep -q "serving until Ctrl-C" "$OUT/run.log" && break
  kill -0 $RUN 2>/dev/null || { cat "$OUT/run.log"; exit 1; }
  sleep 1
done
grep -E "production model|predictor:" "$OUT/run.log"
ENV_FILE="$(ls "$OUT"/run/run-*/functions.env | tail -1)"

if [ "$MODE" = memory ]; then
  for bin in ${PREDICT_BINS:-target/release/predict}; do
    bin="$(realpath "$bin")"
    python3 bench/predict_memory.py --port 18082 --label "$bin" \
      --rows "${ROWS:-10000}" --sequential "${SEQUENTIAL:-20}" \
      --clients "${CLIENTS:-4}" --per-client "${PER_CLIENT:-5}" -- \
      bash -c "set -a; . '$ENV_FILE'; set +a; PORT=18082 HOST=127.0.0.1 exec '$bin'"
  done
  exit 0
fi

B=(python3 "$PEER/benchlib.py")
"${B[@]}" server --name appraise --port 18081 --out "$OUT/appraise.json" \
  --duration "$DURATION" --conc "$CONCS" -- \
  bash -c "set -a; . '$ENV_FILE'; set +a; PORT=18081 HOST=127.0.0.1 exec '$ROOT/target/release/predict'"
for w in 1 2; do
  "${B[@]}" server --name "peer_w${w}_tuned" --port 18080 --out "$OUT/peer_w${w}_tuned.json" \
    --duration "$DURATION" --conc "$CONCS" -- \
    env MODEL_PATH="$PEER_MODEL" PEER_ASYNC_PREDICT=1 PEER_MODEL_THREADS=1 PEER_FORCE_NODELAY=1 \
    "$PEER_VENV/bin/uvicorn" serve:app --app-dir "$PEER" --host 127.0.0.1 --port 18080 \
    --workers "$w" --no-access-log --log-level warning
done

python3 - "$OUT" <<'PYEOF'
import json, statistics, sys
out = sys.argv[1]
names = ["appraise", "peer_w1_tuned", "peer_w2_tuned"]
res = {n: json.load(open(f"{out}/{n}.json")) for n in names}
concs = sorted({int(c) for r in res.values() for c in r["runs"]})
print("\n| server | cold start ms (median) | idle RSS MiB | peak RSS MiB | " +
      " | ".join(f"c={c} req/s | c={c} p99 ms | c={c} errors" for c in concs) + " |")
print("|---|---:|---:|---:|" + "---:|---:|---:|" * len(concs))
for n in names:
    r = res[n]
    cells = [n, f"{statistics.median(r['cold_start_ms']):.0f}", f"{r['idle_rss_mib']:.1f}",
             f"{r['peak_tree_rss_mib']:.1f}"]
    for c in concs:
        run = r["runs"][str(c)]
        cells += [f"{run['rps']:,.0f}", f"{run['latency_us']['p99'] / 1000:.2f}", str(run["errors_total"])]
    print("| " + " | ".join(cells) + " |")
best = {c: max(res[p]["runs"][str(c)]["rps"] for p in names[1:]) for c in concs}
for c in concs:
    print(f"c={c}: appraise / best tuned peer = {res['appraise']['runs'][str(c)]['rps'] / best[c]:.1f}x")
PYEOF
