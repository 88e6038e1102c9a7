#!/usr/bin/env bash
# The tests: every crate's unit and integration tests, against a real PostgreSQL and a real
# S3-protocol server that the tests start themselves. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The Python tools of the offline deployment checks and the XGBoost-format test.
bash scripts/setup-tools.sh
export PATH="$HOME/.cargo/bin:$PATH"
# The harness tests run the function binaries: build them first (same profile as the tests).
cargo build --locked --workspace --bins
cargo test --locked --workspace "$@"
