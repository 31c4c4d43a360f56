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

step "spool-js: cargo build (wasm32, release; with spool-web)"
wasm="$("$root/scripts/build-wasm.sh")/spool_js.wasm"

step "spool-js: wasm-bindgen (web, nodejs)"
for kind in web:web node:nodejs; do
  out="$root/js/pkg/${kind%%:*}"
  rm -rf "$out"
  wasm-bindgen --target "${kind#*:}" --out-dir "$out" --out-name spool "$wasm"
done
echo "$root/js/pkg"
