#!/usr/bin/env bash
# Builds each function's Lambda package: target/lambda/<function>/bootstrap.zip, a release
# build for provided.al2023 on x86_64, made with cargo-lambda (installed from PyPI by
# scripts/setup-tools.sh). CI runs this; `sam build` does the same through SAM's
# rust-cargolambda builder.
#
# The binaries are linked by zig (from the `ziglang` wheel, nothing is downloaded) against
# glibc 2.34, the one Amazon Linux 2023 has, whatever the build machine's glibc; every
# bootstrap is then checked to need no newer glibc symbol. CARGO_LAMBDA_COMPILER=cargo links
# with the host's toolchain instead (no zig; fine when the host's glibc is at most 2.34, and
# the check says so when it is not).
#
# cargo-lambda's own release settings (thin LTO, one codegen unit, panic=abort) are off: the
# workspace's release profile builds far faster on small machines, and panics stay catchable
# so the Lambda runtime reports a panicking invocation as an error instead of crashing.
# Symbols are stripped, which most of the size comes from.
set -euo pipefail
cd "$(dirname "$0")/../.."

FUNCTIONS=(ingest process train promote predict source)
GLIBC=2.34
TARGET="x86_64-unknown-linux-gnu"

bash scripts/setup-tools.sh
venv="${APPRAISE_TOOLS_VENV:-target/tools-venv}"
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
export PATH="$venv/bin:$HOME/.cargo/bin:$PATH"
export CARGO_PROFILE_RELEASE_STRIP=symbols
compiler="${CARGO_LAMBDA_COMPILER:-cargo-zigbuild}"

bins=()
for function in "${FUNCTIONS[@]}"; do
  bins+=(--bin "$function")
done
target="$TARGET"
if [ "$compiler" = "cargo-zigbuild" ]; then
  target="$TARGET.$GLIBC"
fi

started=$(date +%s)
cargo lambda build --release --locked --disable-optimizations \
  --compiler "$compiler" --target "$target" \
  --output-format zip --lambda-dir target/lambda "${bins[@]}"
elapsed=$(($(date +%s) - started))

status=0
for function in "${FUNCTIONS[@]}"; do
  zip="target/lambda/$function/bootstrap.zip"
  binary="target/$TARGET/release/$function"
  if [ ! -s "$zip" ]; then
    echo "build.sh: $zip was not produced" >&2
    status=1
    continue
  fi
  newest=$( (objdump -T "$binary" 2>/dev/null || true) | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$newest" "$GLIBC" | sort -V | tail -1)" != "$GLIBC" ]; then
    echo "build.sh: $function needs glibc $newest, newer than Lambda's $GLIBC (build with zig: unset CARGO_LAMBDA_COMPILER)" >&2
    status=1
  fi
  printf '%-8s %8s KiB zipped  %8s KiB binary  newest glibc symbol %s\n' "$function" \
    "$(($(stat -c %s "$zip") / 1024))" "$(($(stat -c %s "$binary") / 1024))" "${newest:-?}"
done
echo "built ${#FUNCTIONS[@]} bootstrap zips in ${elapsed}s (compiler: $compiler)"
exit "$status"
