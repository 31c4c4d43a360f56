#!/usr/bin/env bash
# Dispatch benchmark: 60 small notebooks (6 layers of 10) on local[C] under `spool run`, side by
# side with a Genie-style runner (a ThreadPoolExecutor of C threads inside one PySpark driver).
# The two ways alternate for R rounds (default 2). Prints both makespans, their median ratio
# (target <= 1.10) and Spool's median dispatch gap, a notebook's start minus the completion
# that let it start (target <= 50 ms); also writes target/bench-dispatch.txt. Exits 1 when a
# target is missed or a way fails. Takes a few minutes.
# Usage: scripts/bench-dispatch.sh [--cores C] [--rounds R] [--spool BINARY]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cores=2
rounds=2
spool=""
while [ $# -gt 0 ]; do
  case $1 in
    --cores) cores=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --spool) spool=$2; shift 2 ;;
    *) echo "usage: $0 [--cores C] [--rounds R] [--spool BINARY]" >&2; exit 2 ;;
  esac
done
cd "$root"
if [ -z "$spool" ]; then
  cargo build --release --quiet -p spool-server
  spool="$root/target/release/spool"
fi
py=$("$root/scripts/python-env.sh")
exec "$py" "$root/scripts/bench_dispatch.py" --spool "$spool" --python "$py" --cores "$cores" --rounds "$rounds" \
  --work "$root/target/bench-dispatch" --out "$root/target/bench-dispatch.txt"
