#!/usr/bin/env bash
# Starts Spool on the example pipeline with a local Spark: installs PySpark into .venv, builds
# the web app and the server (which embeds it), then serves both on http://127.0.0.1:8080 (no
# Livy needed). Extra arguments go to `spool serve` (e.g. --bind, --pipelines, --livy URL).
# The first start compiles everything (several minutes, each step is printed with its time);
# later starts reuse the builds and take seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/steps.sh
if [ ! -x target/release/spool ]; then
  echo "First start: installing tools and compiling Spool takes several minutes; later starts take seconds." >&2
fi
python_env_start
step "web app (into dist/; the Python environment is made meanwhile)"
scripts/build-web.sh >/dev/null
step "server (cargo build --release)"
cargo build --release --locked -p spool-server
step "python environment (.venv with PySpark)"
python_env_wait
_step_close
exec target/release/spool serve --pipelines examples "$@"
