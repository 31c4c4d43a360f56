#!/usr/bin/env bash
# Installs the tools that build and test the web app, idempotently:
#   trunk, wasm-bindgen-cli (the exact version in Cargo.lock), wasm-opt (Debian's binaryen),
#   chromium + chromedriver (Debian) for the browser tests.
# Rust tools go to $SPOOL_TOOLS (default ~/.cache/spool-tools) so later runs and fresh clones
# on the same machine reuse them. Prints the tools' bin folder on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools=${SPOOL_TOOLS:-$HOME/.cache/spool-tools}
bin="$tools/bin"
mkdir -p "$bin"
export PATH="$bin:$PATH"

wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$root/Cargo.lock")
if [ -z "$wb_version" ]; then
  echo "error: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
  || rustup target add wasm32-unknown-unknown >&2

if ! "$bin/trunk" --version >/dev/null 2>&1; then
  echo "installing trunk (a few minutes, once)" >&2
  # Pinned: newer trunk releases need a newer rustc than the toolchain this project pins.
  cargo install trunk --version 0.21.14 --locked --root "$tools" >&2
fi
if [ "$("$bin/wasm-bindgen" --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  echo "installing wasm-bindgen-cli $wb_version (once)" >&2
  # Not --locked: its lock file names a crate version the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$wb_version" --root "$tools" --force >&2
fi

apt_missing=()
command -v wasm-opt >/dev/null 2>&1 || apt_missing+=(binaryen)
command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || apt_missing+=(chromium-driver)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "installing ${apt_missing[*]} from Debian" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${apt_missing[@]}" >&2
fi
echo "$bin"
