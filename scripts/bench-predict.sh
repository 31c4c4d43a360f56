#!/usr/bin/env bash
# Prediction benchmark: does the dry run predict the real run? On local Spark (local[C]) runs the
# example and two generated pipelines (wide: 36 notebooks, deep: 32 in 16 layers; each notebook
# aggregates 0.3M-4M generated rows), each twice; predicts run 2 from run 1's measured durations
# (`spool simulate --durations-from RUN --node-startup-secs 0`) and prints predicted vs actual
# makespan (first notebook start to last end), error %, and the median absolute error of
# notebook start times, with the estimate-based prediction beside it; then predicts the wide
# pipeline's concurrent run from a serial run (max_concurrency = 1). Targets: makespan error
# <= 10 %, start error <= 2 s median. Writes the table to target/bench-predict.txt too.
# Takes about 10 minutes on 2 cores. Usage: scripts/bench-predict.sh [--cores C]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cores=2
while [ $# -gt 0 ]; do
  case $1 in
    --cores) cores=$2; shift 2 ;;
    *) echo "usage: $0 [--cores C]" >&2; exit 2 ;;
  esac
done
cd "$root"
# The debug build: Spark does the work, and the orchestration's cost is measured with it.
cargo build --quiet -p spool-server
py=${SPOOL_PYTHON:-$("$root/scripts/python-env.sh")}
export SPOOL_PYTHON=$py
exec "$py" "$root/scripts/bench_predict.py" --cores "$cores" \
  --spool "$root/target/debug/spool" --example "$root/examples/daily_sales.toml" \
  --work "$root/target/bench-predict" --out "$root/target/bench-predict.txt"
