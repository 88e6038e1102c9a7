#!/usr/bin/env bash
# Model fits at scale against the Python peer, same machine, same run, same rows, alternating:
# for each size, the peer's train.py (its own 8 features, `--test-csv --params seed`) and
# appraise's compare_peer example (its 16 features) on the same training and test rows, then
# XGBoost 3.x `hist` (bench/fit_matrix.py) and appraise's booster on one and the same exported
# feature matrix. Prints a table with each pair's ratio and writes it to $BENCH_OUT/fits.md.
#
#   bash bench/fits.sh              # PEER=../shared/bench/peer (where the peer's scripts are)
#
# The peer is not in this repository: see bench/README.md for where it comes from. Its setup.sh
# makes the virtualenv ($PEER_VENV, default /tmp/peer-venv) with scikit-learn and XGBoost.
# Knobs:
#   SIZES ["400000 1000000"]  training rows wanted (approximately: the peer's cleaning keeps
#                             about half of its generator's rows and 80 % of those train, so
#                             2 training rows for 5 generated)
#   ROUNDS [2]                alternations per size (peer, appraise, peer, appraise, ...)
#   BOOSTER_ROUNDS [5]        alternations of XGBoost and the booster on the same matrix
#   BENCH_OUT [/tmp/appraise-fits]
set -euo pipefail
cd "$(dirname "$0")/.."
PEER_DIR="${PEER:-../shared/bench/peer}"
if [ ! -f "$PEER_DIR/train.py" ]; then
  echo "bench/fits.sh: the peer's scripts are not at $PEER_DIR (set PEER=...; see bench/README.md)" >&2
  exit 2
fi
PEER_DIR="$(cd "$PEER_DIR" && pwd)"
read -r -a SIZES <<<"${SIZES:-400000 1000000}"
ROUNDS="${ROUNDS:-2}"
BOOSTER_ROUNDS="${BOOSTER_ROUNDS:-5}"
OUT="${BENCH_OUT:-/tmp/appraise-fits}"
export PEER_VENV="${PEER_VENV:-/tmp/peer-venv}"
[ -x "$PEER_VENV/bin/python" ] || bash "$PEER_DIR/setup.sh"
PY="$PEER_VENV/bin/python"
# shellcheck source=bench/gnu-time.sh
source bench/gnu-time.sh
mkdir -p "$OUT"

cargo build --release --locked -p appraise-train --example compare_peer
APPRAISE="target/release/examples/compare_peer"

# Runs a command under /usr/bin/time; its peak RSS (KiB) goes to FILE.rss, its output to FILE.
timed() {
  local file="$1"
  shift
  /usr/bin/time -f '%M' -o "$file.rss" "$@" >"$file" 2>"$file.err" || {
    echo "failed ($?): $*; see $file.err" >&2
    return 1
  }
}

for rows in "${SIZES[@]}"; do
  raw=$((rows * 5 / 2))
  train="$OUT/train-$rows.csv"
  test="$OUT/test-$rows.csv"
  if [ ! -f "$train" ]; then
    echo "generating $raw listings for about $rows training rows"
    "$PY" "$PEER_DIR/gen_data.py" "$raw" "$OUT/raw-$rows.csv" --seed 42
    "$PY" bench/split_for_peer.py "$OUT/raw-$rows.csv" "$train" "$test"
    rm -f "$OUT/raw-$rows.csv"
  fi
  "$APPRAISE" "$train" "$test" --export-matrix "$OUT/matrix-$rows" --boosting 0 >/dev/null
  for round in $(seq "$ROUNDS"); do
    echo "$rows rows, round $round: the peer's train.py"
    timed "$OUT/peer-$rows-$round.log" "$PY" "$PEER_DIR/train.py" "$train" --test-csv "$test" \
      --params seed --json-out "$OUT/peer-$rows-$round.json" --model-out "$OUT/peer-model.joblib" ||
      echo '{"failed": true}' >"$OUT/peer-$rows-$round.json"
    echo "$rows rows, round $round: appraise"
    timed "$OUT/appraise-$rows-$round.jsonl" "$APPRAISE" "$train" "$test" --json || true
  done
  # The boosted trees take seconds: more alternations for the same time.
  for round in $(seq "$BOOSTER_ROUNDS"); do
    echo "$rows rows, round $round: XGBoost and appraise's booster on the same matrix"
    timed "$OUT/xgboost-$rows-$round.json" "$PY" bench/fit_matrix.py xgboost \
      "$OUT/matrix-$rows-train.csv" "$OUT/matrix-$rows-test.csv" || true
    timed "$OUT/booster-$rows-$round.jsonl" "$APPRAISE" "$train" "$test" --boosting 1 --json || true
  done
done
rm -f "$OUT/peer-model.joblib"

python3 bench/fits_report.py "$OUT" "${SIZES[@]}" --rounds "$ROUNDS" \
  --booster-rounds "$BOOSTER_ROUNDS" | tee "$OUT/fits.md"
