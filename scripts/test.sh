#!/usr/bin/env bash
# Runs every test of the project: formatting, lints for both targets, unit, property, fixture,
# end-to-end (real PySpark) and browser (headless Chromium) tests. Installs what it needs first
# (idempotent, quick when already present).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

. scripts/steps.sh

# A full test run is not an edit-compile loop: incremental caches would only add ~3 GB to the
# disk (a CI run has failed with "No space left on device").
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
free_mib=$(df -Pm "$root" | awk 'NR == 2 { print $4 }')
if [[ $free_mib =~ ^[0-9]+$ ]] && (( free_mib < 8192 )); then
  echo "warning: ${free_mib} MiB free on the disk of $root; a first full run needs about 6 GB" >&2
fi

python_env_start
step "browser test tools (Chromium, chromedriver)"
scripts/test-tools.sh
step "web app (tools, then a release build into dist/; the Python environment is made meanwhile)"
scripts/build-web.sh >/dev/null
step "JavaScript package (spool-js for web and Node)"
scripts/build-js.sh >/dev/null
step "python environment (PySpark, test clients)"
python_env_wait
step "python unit tests (the session driver's bookkeeping)"
PYTHONDONTWRITEBYTECODE=1 "$SPOOL_PYTHON" -m unittest discover -s python -p 'test_*.py'

step "format"
cargo fmt --all -- --check
step "lints (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "lints (wasm32: spool-core, spool-web, spool-js)"
wasm_crates=(-p spool-core -p spool-web -p spool-js --target wasm32-unknown-unknown --locked)
cargo clippy "${wasm_crates[@]}" -- -D warnings
# The bench page's code too. The same crates as above, so that the dependencies' features are
# the same and only spool-web is checked again.
cargo clippy "${wasm_crates[@]}" --features spool-web/bench -- -D warnings
step "build"
cargo build --workspace --locked
step "tests: build"
cargo test --workspace --locked --no-run
# The fuzz targets' nightly build (minutes, and mostly one core) runs beside the tests, whose
# real-Spark part leaves a core idle at times; at the lowest priority it only takes idle time.
# Started after the test build: beside it, that build took 233 s in a fresh clone (83 s alone).
mkdir -p target
setsid -w nice -n 19 scripts/fuzz.sh build >target/fuzz-build.log 2>&1 &
fuzz_build=$!
step "tests"
# Every JVM the tests start (Spark drivers, a standalone cluster's daemons and executors) lives
# for seconds on tiny data: C2's compiler threads and a parallel GC only take CPU from the other
# tests. C1 alone and the serial GC halved the real-Spark tests on 2 cores (runs.rs 328 -> 174 s,
# cluster.rs 284 -> 157 s, measured 2026-11-30). Options set by the caller come later and win.
export JAVA_TOOL_OPTIONS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC${JAVA_TOOL_OPTIONS:+ $JAVA_TOOL_OPTIONS}"
# cargo runs test binaries one after the other. cluster.rs is one test of over two minutes whose
# JVMs leave a core idle half of the time (125 CPU-s in 137 s alone): it runs beside the others
# (it is #[ignore]d for them). All the tests took 363 s so (measured 2026-12-01), against an
# estimated 480 s one after the other. Its output is shown once the others are done.
setsid -w cargo test -p spool-tests --test cluster --locked -- --ignored \
  >target/cluster-test.log 2>&1 &
cluster_test=$!
# A failing step ends the script: the fuzz build's and the cluster test's whole process groups
# go with it.
trap 'kill -- -"$fuzz_build" -"$cluster_test" 2>/dev/null || true; _step_close' EXIT
cargo test --workspace --locked
cluster_ok=0
wait "$cluster_test" || cluster_ok=$?
cat target/cluster-test.log
if [ "$cluster_ok" != 0 ]; then
  echo "the cluster test failed (target/cluster-test.log)" >&2
  exit 1
fi
step "JavaScript API tests (node --test)"
node --test js/tests/
step "fuzz (every target, ${SPOOL_FUZZ_SECONDS:-18} s each)"
if ! wait "$fuzz_build"; then
  tail -n 40 target/fuzz-build.log >&2
  echo "the fuzz targets did not build (target/fuzz-build.log)" >&2
  exit 1
fi
scripts/fuzz.sh all "${SPOOL_FUZZ_SECONDS:-18}"
_step_close
echo "ok (${SECONDS} s)" >&2
