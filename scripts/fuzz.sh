#!/usr/bin/env bash
# Fuzzes the parsers and decoders with libFuzzer (cargo-fuzz, nightly; the fuzz/ crate).
#
#   scripts/fuzz.sh TARGET [SECONDS]   one target (default 60 s)
#   scripts/fuzz.sh all [SECONDS]      every target (default 20 s each), FUZZ_JOBS at a time
#                                      (default: the number of cores, at most 4), then a table
#   scripts/fuzz.sh build              only build the targets (scripts/test.sh starts this early)
#   scripts/fuzz.sh list               the targets
#
# Each input is limited to FUZZ_TIMEOUT seconds (5) and FUZZ_RSS_MB of memory (1024). Inputs
# that crash, hang or break a property are written to fuzz/regressions/TARGET/, where
# `cargo test -p spool-server --test fuzz_regressions` replays them on stable; keep them as
# fixtures once fixed. The corpus grows in fuzz/corpus/TARGET (not committed) and is seeded
# from the fixtures on every run. Installs cargo-fuzz and the nightly toolchain if missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

targets() { sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml | grep -v '^spool-fuzz$'; }

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
if [[ $1 == list ]]; then
    targets
    exit 0
fi

# --- tools (idempotent) -------------------------------------------------------------------
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +stable install cargo-fuzz --locked
fi

# --- build once, with the workspace's locked versions ---------------------------------------
cp "$root/Cargo.lock" Cargo.lock
# No sanitizer: the code is safe Rust (ASan would find nothing and halve the speed); overflow
# checks and debug assertions on, as in `cargo test`.
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}" >&2
bin_dir=target/x86_64-unknown-linux-gnu/release
[[ $1 == build ]] && exit 0

# --- seeds from the fixtures ----------------------------------------------------------------
seeds=target/seeds
# One pipeline folder as a bundle (fuzz/src/lib.rs): ROOT first, then `#@ PATH` + each .toml.
bundle_dir() { # DIR ROOT OUT
    local dir=$1 main=$2 out=$3 f
    cat "$dir/$main" >"$out"
    while IFS= read -r f; do
        [[ $f == "$main" ]] && continue
        printf '#@ %s\n' "$f" >>"$out"
        cat "$dir/$f" >>"$out"
    done < <(cd "$dir" && find . -name "${4:-*.toml}" -type f | sed 's|^\./||' | sort)
}
seed() { # TARGET
    local t=$1 out=$seeds/$1 d n=0
    rm -rf "$out"
    mkdir -p "$out"
    [[ -d seeds/$t ]] && cp seeds/"$t"/* "$out"/
    case $t in
    pipeline_load)
        for d in "$root"/core/tests/fixtures/*/*/; do
            bundle_dir "$d" pipeline.toml "$out/fixture_$((n++))"
        done
        bundle_dir "$root/examples" daily_sales.toml "$out/example"
        find "$root/tests/fixtures" -name '*.toml' -exec cp --backup=numbered -t "$out" {} +
        ;;
    notebook_ipynb | notebook_py | notebook_sql)
        find "$root/examples" "$root/tests/fixtures" "$root/core/tests/fixtures" \
            -name "*.${t#notebook_}" -size -64k -exec cp --backup=numbered -t "$out" {} +
        ;;
    import_synapse)
        for d in "$root"/tests/fixtures/import/synapse/*/input/; do
            bundle_dir "$d" main.json "$out/fixture_$((n++))" '*.json'
        done
        ;;
    import_genie)
        find "$root/tests/fixtures/import/genie" -name '*.csv' -exec cp --backup=numbered -t "$out" {} +
        ;;
    import_runmultiple)
        find "$root/tests/fixtures/import/runmultiple" "$root/tests/fixtures/export" \
            -name '*.json' -exec cp --backup=numbered -t "$out" {} +
        ;;
    esac
}

# --- run --------------------------------------------------------------------------------------
run() { # TARGET SECONDS -> prints "TARGET EXECS STATUS"
    local t=$1 secs=$2 log=target/fuzz-$1.log status=ok dict=()
    seed "$t"
    mkdir -p "corpus/$t" "regressions/$t"
    [[ -f dicts/$t.dict ]] && dict=(-dict="dicts/$t.dict")
    if ! "$bin_dir/$t" "corpus/$t" "$seeds/$t" "${dict[@]}" \
        -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-5}" -rss_limit_mb="${FUZZ_RSS_MB:-1024}" \
        -artifact_prefix="regressions/$t/" -print_final_stats=1 >"$log" 2>&1; then
        status="FAILED (see fuzz/$log; input kept in fuzz/regressions/$t/)"
    fi
    rmdir "regressions/$t" 2>/dev/null || true
    local execs
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    printf '%-20s %12s  %s\n' "$t" "${execs:-?}" "$status"
    [[ $status == ok ]] && return 0
    # CI keeps only what is printed: the failure's message and the kept input, so that it can
    # be replayed without the machine it was found on.
    sed -n '/panicked at\|ERROR: libFuzzer/,/^stack backtrace:\|^SUMMARY/p' "$log" | head -40 | sed 's/^/    /'
    local input
    for input in "regressions/$t"/{crash,timeout,oom,leak,slow-unit}-*; do
        [[ -f $input ]] || continue
        printf '    %s (base64):\n' "$input"
        head -c 4096 "$input" | base64 -w 96 | sed 's/^/    /'
    done
    return 1
}

if [[ $1 == all ]]; then
    secs=${2:-20}
    jobs=${FUZZ_JOBS:-$(nproc)}
    (( jobs > 4 )) && jobs=4
    (( jobs < 1 )) && jobs=1
    failed=0
    # libFuzzer uses one core: targets run side by side, each for its full time, and print
    # their lines in target order at the end.
    pids=()
    names=()
    for t in $(targets); do
        while (( $(jobs -rp | wc -l) >= jobs )); do
            wait -n || true
        done
        run "$t" "$secs" >"target/fuzz-$t.result" &
        pids+=($!)
        names+=("$t")
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || failed=1
    done
    printf '%-20s %12s  %s\n' target executions result
    for t in "${names[@]}"; do
        cat "target/fuzz-$t.result"
    done
    exit $failed
fi
targets | grep -qx "$1" || { echo "no fuzz target '$1' (scripts/fuzz.sh list)" >&2; exit 2; }
run "$1" "${2:-60}"
