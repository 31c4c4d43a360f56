#!/usr/bin/env bash
# Simulator benchmark: prints one table of simulation times for random layered DAGs of 1k, 10k
# and 100k notebooks (about 3 dependencies each, log-normal durations, 16 executors × 4 cores),
# for spool (critical-path and fifo) beside a Genie-style reference (Python + networkx, FIFO) on
# the same DAG, with the speed ratio and a check that both FIFO runs give the same makespan;
# then the schedule-quality table on a generated suite.
# Targets: 10k notebooks under 50 ms, 100k under 1 s, memory linear in size; critical-path
# within 10 % of the lower bound on average, and better than fifo on skewed workloads.
# Usage: scripts/bench-sim.sh [SEED]   (criterion's view of the same sizes: cargo bench -p spool-core)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seed=${1:-1}
cd "$root"
cargo build --release --quiet -p spool-bench
bench="$root/target/release/spool-bench"
py=$("$root/scripts/python-env.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for n in 1000 10000 100000; do
  case $n in
    1000) spool_runs=50 ref_runs=10 ;;
    10000) spool_runs=20 ref_runs=5 ;;
    *) spool_runs=5 ref_runs=2 ;;
  esac
  common=(simulate --generate "$n" --seed "$seed" --node-startup-secs 0 --repeat "$spool_runs")
  "$bench" "${common[@]}" --policy critical-path >"$work/cp-$n.json"
  "$bench" "${common[@]}" --policy fifo --export-dag "$work/dag-$n.json" >"$work/fifo-$n.json"
  "$py" "$root/scripts/bench_sim_reference.py" "$work/dag-$n.json" --repeat "$ref_runs" >"$work/ref-$n.json"
done

"$py" - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
def load(name):
    with open(f"{work}/{name}.json") as f:
        return json.load(f)
print("simulation time, median of runs (one core); speed-up = reference / spool fifo")
head = f"{'notebooks':>9} {'edges':>7} {'spool cp':>10} {'spool fifo':>11} {'reference':>11} {'speed-up':>9} {'fifo makespan (spool = ref)':>28} {'peak RSS':>10}"
print(head)
print("-" * len(head))
for n in (1000, 10000, 100000):
    cp, fifo, ref = load(f"cp-{n}"), load(f"fifo-{n}"), load(f"ref-{n}")
    same = abs(fifo["makespan_secs"] - ref["makespan_secs"]) <= 1e-6 * ref["makespan_secs"]
    makespan = f"{fifo['makespan_secs']:.0f} s {'yes' if same else 'NO: ' + format(ref['makespan_secs'], '.0f')}"
    rss = f"{fifo['peak_rss_kib'] / 1024:.1f} MiB" if fifo.get("peak_rss_kib") else "n/a"
    print(f"{n:>9} {fifo['edges']:>7} {cp['median_ms']:>8.2f}ms {fifo['median_ms']:>9.2f}ms "
          f"{ref['median_ms']:>9.1f}ms {ref['median_ms'] / fifo['median_ms']:>8.0f}x {makespan:>28} {rss:>10}")
EOF
echo
"$bench" quality-suite 60 --seed "$seed"
