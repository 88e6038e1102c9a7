#!/usr/bin/env bash
# Builds each function's Lambda package: target/lambda/<function>/bootstrap.zip, a release
# build for provided.al2023, made with cargo-lambda (installed from PyPI by
# `scripts/setup-tools.sh cargo-lambda`, which installs only that tool). CI runs this. The template's CodeUri of each function points at
# its zip, so `sam deploy` uploads what this script built.
#
#   bash infra/sam/build.sh [arm64|x86_64] [function ...]
#
# The architecture (default arm64, the template's default `Architecture`) must be the one the
# stack is deployed with; the script writes it to target/lambda/ARCHITECTURE and prints the
# matching `--parameter-overrides`. With no function named, all six are built.
#
# It also puts the RDS CA bundle where the template's RdsCaBundle layer takes it from
# (target/lambda/rds-ca-bundle/rds-global-bundle.pem, /opt/rds-global-bundle.pem on Lambda):
# RDS_CA_BUNDLE=<file> copies a bundle you downloaded, otherwise it is fetched from
# https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem. Without it the zips are
# still built, but the script fails, since `sam deploy` would.
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

ARCHITECTURE="${1:-arm64}"
case "$ARCHITECTURE" in
  arm64) TARGET="aarch64-unknown-linux-gnu"; ELF="ARM aarch64" ;;
  x86_64) TARGET="x86_64-unknown-linux-gnu"; ELF="x86-64" ;;
  *) echo "build.sh: architecture must be arm64 or x86_64, not '$ARCHITECTURE'" >&2; exit 2 ;;
esac
shift $(($# > 0 ? 1 : 0))
FUNCTIONS=(ingest process train promote predict source)
if [ $# -gt 0 ]; then FUNCTIONS=("$@"); fi
GLIBC=2.34

bash scripts/setup-tools.sh cargo-lambda
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
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"
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
  newest=$( (readelf -V --wide "$binary" 2>/dev/null || true) | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$newest" "$GLIBC" | sort -V | tail -1)" != "$GLIBC" ]; then
    echo "build.sh: $function needs glibc $newest, newer than Lambda's $GLIBC (build with zig: unset CARGO_LAMBDA_COMPILER)" >&2
    status=1
  fi
  if ! file -b "$binary" | grep -q "$ELF"; then
    echo "build.sh: $binary is not a $ELF binary: $(file -b "$binary")" >&2
    status=1
  fi
  printf '%-8s %8s KiB zipped  %8s KiB binary  newest glibc symbol %s\n' "$function" \
    "$(($(stat -c %s "$zip") / 1024))" "$(($(stat -c %s "$binary") / 1024))" "${newest:-?}"
done
echo "$ARCHITECTURE" > target/lambda/ARCHITECTURE

RDS_CA_URL="https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
ca_bundle="target/lambda/rds-ca-bundle/rds-global-bundle.pem"
mkdir -p "$(dirname "$ca_bundle")"
if [ -n "${RDS_CA_BUNDLE:-}" ]; then
  cp "$RDS_CA_BUNDLE" "$ca_bundle.new"
elif [ ! -s "$ca_bundle" ]; then
  curl -fsSL --max-time 60 -o "$ca_bundle.new" "$RDS_CA_URL" || rm -f "$ca_bundle.new"
fi
if [ -f "$ca_bundle.new" ]; then
  if grep -q "BEGIN CERTIFICATE" "$ca_bundle.new"; then
    mv "$ca_bundle.new" "$ca_bundle"
  else
    rm -f "$ca_bundle.new"
    echo "build.sh: ${RDS_CA_BUNDLE:-$RDS_CA_URL} is not a PEM certificate bundle" >&2
  fi
fi
if [ -s "$ca_bundle" ]; then
  echo "RDS CA bundle: $ca_bundle ($(grep -c "BEGIN CERTIFICATE" "$ca_bundle") certificates)"
else
  echo "build.sh: no RDS CA bundle at $ca_bundle, which the stack's RdsCaBundle layer needs:" \
    "download $RDS_CA_URL and run again with RDS_CA_BUNDLE=<that file>" >&2
  status=1
fi
echo "built ${#FUNCTIONS[@]} $ARCHITECTURE bootstrap zips in ${elapsed}s (compiler: $compiler)"
echo "deploy them with: sam deploy -t infra/sam/template.yaml --parameter-overrides Architecture=$ARCHITECTURE ..."
exit "$status"
