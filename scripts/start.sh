#!/usr/bin/env bash
# Starts Spool on the example pipeline with a local Spark: installs PySpark into .venv, builds
# the web app and the server, then serves both on http://127.0.0.1:8080 (no Livy needed).
# Extra arguments go to `spool serve` (e.g. --bind, --pipelines, --livy URL).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SPOOL_PYTHON=$(scripts/python-env.sh)
export SPOOL_PYTHON
scripts/build-web.sh >&2
cargo build --release --locked -p spool-server
exec target/release/spool serve --pipelines examples --web dist "$@"
