#!/usr/bin/env bash
# Builds the web app into dist/ (release, wasm-opt -Oz), which `spool serve` serves at `/`.
# Installs its tools first (scripts/web-tools.sh); works offline once they are there.
# Prints the dist folder on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$("$root/scripts/web-tools.sh")
tools=$(dirname "$bin")
export PATH="$bin:$PATH"

# wasm-bindgen 0.2.130 writes reference-types instructions (table.fill) that Debian's binaryen
# (108) cannot parse, so wasm-opt comes from the npm registry's binaryen build (runs on Node).
binaryen_version=132.0.0
binaryen="$tools/binaryen-$binaryen_version"
if ! "$binaryen/node_modules/.bin/wasm-opt" --version >/dev/null 2>&1; then
  echo "installing binaryen $binaryen_version (wasm-opt, once)" >&2
  mkdir -p "$binaryen"
  npm install --prefix "$binaryen" --no-audit --no-fund --silent "binaryen@$binaryen_version" >&2
fi
export PATH="$binaryen/node_modules/.bin:$PATH"

# Trunk would download its own wasm-bindgen and wasm-opt; point it at these.
export TRUNK_OFFLINE=true
export TRUNK_SKIP_VERSION_CHECK=true
export TRUNK_TOOLS_WASM_BINDGEN="$(wasm-bindgen --version | awk '{print $2}')"
export TRUNK_TOOLS_WASM_OPT="version_${binaryen_version%%.*}"

# Trunk 0.21 reads the Cargo manifest of its working directory and stops at a virtual
# workspace manifest, so it runs from web/ (index.html stays at the root).
cd "$root/web"
trunk build --release --dist "$root/dist" "$root/index.html" >&2
ls "$root"/dist/*.wasm >/dev/null
echo "$root/dist"
