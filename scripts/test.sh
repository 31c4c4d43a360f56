#!/usr/bin/env bash
# Runs every test of the project: formatting, lints for both targets, unit, property, fixture
# and end-to-end tests. Installs what it needs (idempotent, quick when already present).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
  || rustup target add wasm32-unknown-unknown
step "python environment (PySpark, test clients)"
python=$(scripts/python-env.sh)
export SPOOL_PYTHON="$python"

step "format"
cargo fmt --all -- --check
step "lints (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "lints (wasm32: spool-core)"
cargo clippy -p spool-core --target wasm32-unknown-unknown --locked -- -D warnings
step "tests"
cargo test --workspace --locked
step "ok"
