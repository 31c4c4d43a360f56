#!/usr/bin/env bash
# A Spark standalone cluster on this machine, from the Spark that PySpark's wheel ships:
# one master and N workers, each its own JVM, everything bound to 127.0.0.1.
#
#   scripts/spark-cluster.sh start [--workers N] [--cores C] [--memory M] [--port P] [--dir D]
#   scripts/spark-cluster.sh add-worker [--cores C] [--memory M] [--dir D]
#   scripts/spark-cluster.sh status [--dir D]
#   scripts/spark-cluster.sh stop [--dir D]
#
# `start` prints the master URL (spark://127.0.0.1:PORT) on stdout once every worker has
# registered; point `spool livy-local --master URL` (or `spool run --master URL`) at it.
# State lives in the data dir (default .spool/spark-cluster): pid files, `master-url`, one log
# per JVM, the workers' work folders (executor logs). Every wait is bounded; a JVM that does
# not come up in time stops the command with its log's tail. --port 0 picks a free port.
# Python: $SPOOL_PYTHON, else the project's .venv (scripts/python-env.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

cmd=${1:-}
[ $# -gt 0 ] && shift
workers=2 cores=1 memory=1g port=7077 dir="$root/.spool/spark-cluster"
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --cores) cores=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) echo "spark-cluster: unknown option $1" >&2; exit 2 ;;
  esac
done
START_TIMEOUT_SECS=${SPARK_CLUSTER_START_TIMEOUT_SECS:-90}
STOP_TIMEOUT_SECS=15

python=${SPOOL_PYTHON:-}
if [ -z "$python" ]; then
  python=$("$root/scripts/python-env.sh")
fi
spark_home=$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME=$spark_home
# Loopback only: the JVMs' RPC and web UIs bind here, and the web UIs take a free port.
export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1
export SPARK_NO_DAEMONIZE=1 PYSPARK_PYTHON=$python
export SPARK_CONF_DIR="$dir/conf"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Waits until the log contains the pattern, or the process died, or the time is up.
wait_for() { # pidfile log pattern what
  local deadline=$((SECONDS + START_TIMEOUT_SECS))
  while ! grep -q "$3" "$2" 2>/dev/null; do
    if ! alive "$1"; then
      echo "spark-cluster: the $4 exited; end of $2:" >&2; tail -n 30 "$2" >&2; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "spark-cluster: the $4 did not come up within ${START_TIMEOUT_SECS}s; end of $2:" >&2
      tail -n 30 "$2" >&2; return 1
    fi
    sleep 0.5
  done
}

launch() { # name class args...
  local name=$1; shift
  mkdir -p "$dir/logs"
  # setsid: the JVM outlives this script and is not hit by the terminal's Ctrl-C.
  setsid "$SPARK_HOME/bin/spark-class" "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
}

# Launches the next worker; prints its number.
launch_worker() {
  local n=1
  while [ -e "$dir/worker-$n.pid" ]; do n=$((n + 1)); done
  mkdir -p "$dir/work/worker-$n"
  launch "worker-$n" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --port 0 \
    --webui-port 0 --cores "$cores" --memory "$memory" --work-dir "$dir/work/worker-$n" \
    "$(cat "$dir/master-url")"
  echo "$n"
}

wait_worker() {
  wait_for "$dir/worker-$1.pid" "$dir/logs/worker-$1.log" "Successfully registered with master" "worker $1"
  echo "worker-$1 $(cat "$dir/worker-$1.pid")" >&2
}

stop_all() {
  local pids=() f
  for f in "$dir"/worker-*.pid "$dir"/master.pid; do
    [ -f "$f" ] || continue
    if alive "$f"; then pids+=("$(cat "$f")"); fi
    rm -f "$f"
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  kill "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT_SECS))
  while kill -0 "${pids[@]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.3; done
  kill -9 "${pids[@]}" 2>/dev/null || true
}

case "$cmd" in
  start)
    if alive "$dir/master.pid"; then
      echo "spark-cluster: already running ($(cat "$dir/master-url")); stop it first" >&2; exit 1
    fi
    stop_all
    rm -rf "$dir/logs" "$dir/work" "$dir/master-url"
    mkdir -p "$dir/conf"
    # Executors of a killed worker are forgotten quickly (the default is 60 s).
    printf 'spark.worker.timeout 10\nspark.master.rest.enabled false\nspark.ui.showConsoleProgress false\n' >"$dir/conf/spark-defaults.conf"
    launch master org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" --webui-port 0
    trap 'stop_all' ERR
    wait_for "$dir/master.pid" "$dir/logs/master.log" "I have been elected leader" master
    url=$(grep -o 'spark://127\.0\.0\.1:[0-9]*' "$dir/logs/master.log" | head -n 1)
    echo "$url" >"$dir/master-url"
    # Workers start side by side (each JVM takes seconds), then each must register.
    started=()
    for _ in $(seq 1 "$workers"); do started+=("$(launch_worker)"); done
    for n in "${started[@]}"; do wait_worker "$n"; done
    trap - ERR
    echo "$url"
    ;;
  add-worker)
    alive "$dir/master.pid" || { echo "spark-cluster: not running" >&2; exit 1; }
    wait_worker "$(launch_worker)"
    ;;
  status)
    if ! alive "$dir/master.pid"; then echo "stopped"; exit 3; fi
    echo "master $(cat "$dir/master-url") pid $(cat "$dir/master.pid")"
    for f in "$dir"/worker-*.pid; do
      [ -f "$f" ] || continue
      name=$(basename "$f" .pid)
      if alive "$f"; then echo "$name pid $(cat "$f")"; else echo "$name dead"; fi
    done
    ;;
  stop)
    stop_all
    ;;
  *)
    echo "usage: $0 start|add-worker|status|stop [--workers N --cores C --memory M --port P --dir D]" >&2
    exit 2
    ;;
esac
