#!/usr/bin/env bash
# Installs the tools that build the web app, idempotently: the wasm32 Rust target,
# wasm-bindgen-cli (the exact version in Cargo.lock) and wasm-opt (npm's binaryen).
# Rust tools go to $SPOOL_TOOLS (default ~/.cache/spool-tools) so later runs and fresh clones
# on the same machine reuse them. Prints the folders to put on PATH, `:`-separated, on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/steps.sh"
tools=${SPOOL_TOOLS:-$HOME/.cache/spool-tools}
bin="$tools/bin"
mkdir -p "$bin"

wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$root/Cargo.lock")
if [ -z "$wb_version" ]; then
  echo "error: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  step "installing the wasm32-unknown-unknown Rust target (once)"
  rustup target add wasm32-unknown-unknown >&2
fi
if [ "$("$bin/wasm-bindgen" --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  step "installing wasm-bindgen-cli $wb_version (once; compiles for about a minute)"
  # Not --locked: its lock file names a crate version the registry no longer serves.
  # --debug: on 2 cores it compiles in 91 s instead of 218 s, and processes the app in 2.9 s
  # instead of 0.6 s, writing the same bytes (measured 2026-11-30); a first start is shorter.
  # Only the wasm-bindgen binary (not the test runner), without debug info: 69 s instead of
  # 88 s (measured 2026-11-30), the same output.
  CARGO_PROFILE_DEV_DEBUG=0 cargo install wasm-bindgen-cli --debug --bin wasm-bindgen \
    --version "$wb_version" --root "$tools" --force >&2
fi

# wasm-bindgen 0.2.130 writes reference-types instructions (table.fill) that Debian's binaryen
# (108) cannot parse, so wasm-opt comes from the npm registry's binaryen build (runs on Node).
binaryen_version=132.0.0
binaryen="$tools/binaryen-$binaryen_version/node_modules/.bin"
if ! "$binaryen/wasm-opt" --version >/dev/null 2>&1; then
  step "installing binaryen $binaryen_version from npm (wasm-opt, once)"
  mkdir -p "$tools/binaryen-$binaryen_version"
  npm install --prefix "$tools/binaryen-$binaryen_version" --no-audit --no-fund --silent \
    "binaryen@$binaryen_version" >&2
fi
echo "$bin:$binaryen"
