#!/usr/bin/env bash
# The wasm32 release build of both wasm crates, spool-web (the web app) and spool-js (core's
# JavaScript package), in one cargo invocation. Built apart, cargo resolves the features of
# their shared dependencies differently and compiles every one of them twice (42 s more on
# 2 cores, measured 2026-11-30); built together, scripts/build-web.sh and scripts/build-js.sh
# share one build whichever runs first. Runs from web/, whose .cargo/config.toml holds the
# size profile. Arguments go to cargo (`--features spool-web/bench`). Prints the folder of
# the .wasm files on stdout; expects the wasm32 target installed (scripts/web-tools.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
(cd "$root/web" && cargo build --release --locked --target wasm32-unknown-unknown \
  -p spool-web -p spool-js "$@" >&2)
echo "${CARGO_TARGET_DIR:-$root/target}/wasm32-unknown-unknown/release"
