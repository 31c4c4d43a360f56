#!/usr/bin/env bash
# Builds the web app into dist/, which `spool serve --web dist` serves and a release build of
# `spool` embeds: cargo (wasm32, release, size profile) -> wasm-bindgen -> wasm-opt -Oz, then
# index.html with content-hashed file names and subresource integrity. Installs its tools
# first (scripts/web-tools.sh); works offline once they are there. Prints dist's path on stdout.
# SPOOL_WEB_FEATURES (cargo features of spool-web, e.g. `bench`) and SPOOL_WEB_OUT (default
# dist/) build another flavour elsewhere: scripts/bench-web.sh's page, never the shipped app.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/steps.sh"
step "web tools (wasm32 target, wasm-bindgen, wasm-opt)"
PATH="$("$root/scripts/web-tools.sh"):$PATH"
export PATH

step "web app: cargo build (wasm32, release; spool-web with spool-js)"
features=${SPOOL_WEB_FEATURES:-}
dist=${SPOOL_WEB_OUT:-$root/dist}
wasm="$("$root/scripts/build-wasm.sh" ${features:+--features "spool-web/${features//,/,spool-web/}"})/spool-web.wasm"
target=${CARGO_TARGET_DIR:-$root/target}

# wasm-opt takes minutes: skip the rest when its inputs are those of the folder already there.
stamp="$target/web-$(basename "$dist").inputs"
inputs=$(cat "$wasm" "$root/web/index.html" "$root/web/style.css" "$0" | sha256sum | cut -d' ' -f1)
if [ -f "$dist/index.html" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$inputs" ]; then
  echo "$dist"
  exit 0
fi

out="$target/web-$(basename "$dist").tmp"
rm -rf "$out"
mkdir -p "$out"
step "web app: wasm-bindgen"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name spool-web "$wasm"
step "web app: wasm-opt -Oz (minutes on a busy machine)"
wasm-opt -Oz --enable-bulk-memory --enable-reference-types --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-multivalue \
  "$out/spool-web_bg.wasm" -o "$out/spool-web_bg.wasm"

step "web app: index.html"
cp "$root/web/style.css" "$out/style.css"
# Content-hashed names: a browser never mixes files of two builds; SRI for each file.
hashed() { # FILE STEM EXT -> renames FILE to STEM-HASH.EXT, prints the new name
  local h
  h=$(sha256sum "$1" | cut -c1-16)
  mv "$1" "$out/$2-$h.$3"
  echo "$2-$h.$3"
}
integrity() { echo "sha384-$(openssl dgst -sha384 -binary "$out/$1" | openssl base64 -A)"; }
css=$(hashed "$out/style.css" style css)
js=$(hashed "$out/spool-web.js" spool-web js)
wasm_name=$(hashed "$out/spool-web_bg.wasm" spool-web wasm)
sed -e "s|{{css}}|$css|g" -e "s|{{js}}|$js|g" -e "s|{{wasm}}|$wasm_name|g" \
  -e "s|{{css_integrity}}|$(integrity "$css")|g" \
  -e "s|{{js_integrity}}|$(integrity "$js")|g" \
  -e "s|{{wasm_integrity}}|$(integrity "$wasm_name")|g" \
  "$root/web/index.html" > "$out/index.html"
rm -rf "$dist"
mv "$out" "$dist"
echo "$inputs" > "$stamp"
echo "$dist"
