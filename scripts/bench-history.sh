#!/usr/bin/env bash
# History benchmark: fills a run history with RUNS runs (5 notebooks each) as a build before
# run summaries wrote it, then prints one table: listing the newest 50 runs and the server's
# start (finding unfinished runs; `spool serve` from start to listening, and its
# GET /api/runs) with run summaries, beside the previous approach (every listed run folded from
# its events; the start folding the newest 1,000 runs), with the ratio; and the one-time
# back-fill of the summaries when this build first opens such a history.
# Targets (issue 15): 100,000 runs; the newest 50 listed under 50 ms; server start under 1 s.
# Usage: scripts/bench-history.sh [--runs N] [--baseline-spool PATH]
#   --baseline-spool: a release `spool` built before run summaries (e.g. from commit
#   7d5b25a or earlier), to time the previous server's start and list on the same history.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=100000
baseline=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --baseline-spool) baseline=(--baseline-spool "$2"); shift 2 ;;
    *) echo "usage: $0 [--runs N] [--baseline-spool PATH]" >&2; exit 2 ;;
  esac
done
cd "$root"
cargo build --release --quiet -p spool-bench -p spool-server
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$root/target/release/spool-bench" history --runs "$runs" --work "$work" \
  --spool "$root/target/release/spool" "${baseline[@]}"
