#!/usr/bin/env bash
# Creates or refreshes the project-local virtual environment (.venv) from requirements.txt and
# requirements-no-deps.txt (packages installed without their declared dependencies).
# Idempotent: does nothing when the installed set already matches both files.
# Prints the path of the environment's python on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want=$(cat "$root/requirements.txt" "$root/requirements-no-deps.txt" | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.txt" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    -r "$root/requirements-no-deps.txt" >&2
  echo "$want" > "$stamp"
fi
if ! command -v java >/dev/null 2>&1; then
  echo "error: Spark needs Java 17: install it (Debian: apt-get install openjdk-17-jre-headless) and put java on PATH" >&2
  exit 1
fi
echo "$venv/bin/python"
