#!/usr/bin/env bash
# The fault suite, long version: the whole pipeline run cleanly once as the reference and once
# per kind of fault (kill -9 of every stage at several moments, PostgreSQL crashed and restarted
# for 1 to 10 s, every event delivered three times at once), each compared with the reference
# row by row; then fuzzed predictor bodies and model swaps under load. Prints one line per kind:
#   <kind>  N injected · 0 lost rows · 0 duplicated rows · 0 orphan objects · 0 5xx
# and exits non-zero on any loss. The short version runs in CI as part of the tests
# (local/tests/system/faults/); what each figure counts is in that file's documentation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --workspace --bins
FAULTS="${FAULTS:-full}" cargo test --locked -p appraise-local --test system faults:: -- --nocapture
