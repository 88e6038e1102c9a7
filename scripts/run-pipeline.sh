#!/usr/bin/env bash
# The main job: builds the functions and runs the whole pipeline on this machine with embedded
# defaults (throw-away PostgreSQL, embedded S3 server, built-in batch source).
# Extra arguments go to `appraise run` (see `--help`), e.g. `--scale 0.1`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --bins
exec target/release/appraise run "$@"
