#!/usr/bin/env bash
# Installs what appraise needs on a Debian/Ubuntu machine, idempotently: only what is missing.
#   - the C toolchain some crates build with (a C compiler and make; cmake, which aws-lc-sys
#     falls back to where its own build script does not cover the platform);
#   - PostgreSQL server binaries (initdb, postgres) for the throw-away clusters of the harness
#     and the tests, and the `postgres` system user they run as when started by root;
#   - Chromium (and the DejaVu fonts, so its screenshots have glyphs) for the predictor page's
#     headless-browser test;
#   - Rust (rustup, toolchain 1.95) when cargo is absent.
# Safe to run again and again; the quick-start commands call it first.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
# Chromium: Debian's package is `chromium`; Ubuntu's `chromium-browser` is only a snap stub,
# so only `chromium` is asked for, and its absence from apt is a warning, not a failure.
want_chromium=0
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
  && ! command -v google-chrome >/dev/null 2>&1; then
  want_chromium=1
fi
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)

if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
if [ ${#need_apt[@]} -gt 0 ] || [ "$want_chromium" = 1 ]; then
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
fi
if [ "$want_chromium" = 1 ]; then
  if apt-cache show chromium >/dev/null 2>&1; then
    need_apt+=(chromium)
  else
    echo "setup: WARNING: apt has no 'chromium' package; install Chromium or Google Chrome yourself" >&2
    echo "setup: WARNING: (the predictor page's browser test needs one of chromium, chromium-browser, google-chrome on PATH)" >&2
  fi
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# apt's postgresql package starts a system cluster on port 5432; appraise does not use it.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "setup: creating the postgres system user (PostgreSQL refuses to run as root)"
  useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing Rust 1.95 with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
echo "setup: ok ($(cargo --version))"
