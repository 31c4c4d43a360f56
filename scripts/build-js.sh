#!/usr/bin/env bash
# Builds spool-core's JavaScript package (crate spool-js in js/) for browsers and for Node:
# js/pkg/web (ES module, `wasm-bindgen --target web`) and js/pkg/node (CommonJS, `--target
# nodejs`), each `spool.js` + `spool_bg.wasm` + TypeScript declarations. See docs/js.md.
# Prints js/pkg's path on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/steps.sh"
step "web tools (wasm32 target, wasm-bindgen)"
PATH="$("$root/scripts/web-tools.sh"):$PATH"
export PATH

step "spool-js: cargo build (wasm32, release)"
# From web/, so that the web app's size-optimised release profile (web/.cargo/config.toml)
# applies here too and the two builds share their compiled dependencies.
(cd "$root/web" && cargo build --release --locked -p spool-js --target wasm32-unknown-unknown)
target=${CARGO_TARGET_DIR:-$root/target}
wasm="$target/wasm32-unknown-unknown/release/spool_js.wasm"

step "spool-js: wasm-bindgen (web, nodejs)"
for kind in web:web node:nodejs; do
  out="$root/js/pkg/${kind%%:*}"
  rm -rf "$out"
  wasm-bindgen --target "${kind#*:}" --out-dir "$out" --out-name spool "$wasm"
done
echo "$root/js/pkg"
