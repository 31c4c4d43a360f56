#!/usr/bin/env bash
# Size and speed of the web app — a bench, not a test: prints a table, fails only when it
# cannot measure. Builds dist/ (scripts/build-web.sh; SPOOL_BENCH_NO_BUILD=1 reuses it) for the
# sizes, and the same app with its `bench` feature (web/src/bench.rs, never shipped) into
# target/web-bench/; serves that on localhost, opens `/?bench` in headless Chromium through
# chromedriver, and reads the figures the page writes into <pre id="bench">.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/test-tools.sh"  # Chromium and chromedriver
bench_dist="${CARGO_TARGET_DIR:-$root/target}/web-bench"
if [ "${SPOOL_BENCH_NO_BUILD:-}" != 1 ]; then
  SPOOL_WEB_FEATURES=bench SPOOL_WEB_OUT="$bench_dist" "$root/scripts/build-web.sh" >/dev/null
  "$root/scripts/build-web.sh" >/dev/null
fi
wasm=$(ls "$root/dist"/*.wasm | head -n1)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
driver_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$bench_dist" "$http_port" >/dev/null 2>&1 &
http_pid=$!
chromedriver --port="$driver_port" >/dev/null 2>&1 &
driver_pid=$!
profile=$(mktemp -d)
cleanup() {
  kill "$http_pid" "$driver_pid" 2>/dev/null || true
  rm -rf "$profile"
}
trap cleanup EXIT

figures=$(python3 - "$driver_port" "http://127.0.0.1:$http_port/?bench" "$profile" "$(command -v chromium)" <<'PY'
# A minimal WebDriver client (standard library only): one session, one page, poll one element.
import json, sys, time, urllib.request

driver, url, profile, chromium = sys.argv[1:5]
base = f"http://127.0.0.1:{driver}"

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)["value"]

deadline = time.time() + 30
while True:
    try:
        call("GET", "/status")
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("chromedriver did not start")
        time.sleep(0.2)

args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,900"]
session = call("POST", "/session", {"capabilities": {"alwaysMatch": {
    "goog:chromeOptions": {"binary": chromium, "args": args}}}})["sessionId"]
try:
    call("POST", f"/session/{session}/url", {"url": url})
    text = ""
    deadline = time.time() + 300
    while time.time() < deadline:
        text = call("POST", f"/session/{session}/execute/sync", {
            "script": "const e = document.getElementById('bench'); return e ? e.textContent : '';",
            "args": []})
        if "done" in text or "error" in text:
            break
        time.sleep(0.5)
    print(text)
finally:
    call("DELETE", f"/session/{session}")
PY
)

value() { awk -v k="$1" '$1 == k { print $2 }' <<<"$figures"; }
if ! grep -q '^done' <<<"$figures"; then
  echo "the bench page did not finish:" >&2
  echo "$figures" >&2
  exit 1
fi
raw_kb=$(( $(stat -c %s "$wasm") / 1024 ))
gzip_kb=$(( $(gzip -9 -c "$wasm" | wc -c) / 1024 ))

printf '%-42s %12s   %s\n' "measure" "value" "target"
printf '%-42s %9s KB\n' "wasm bundle" "$raw_kb"
printf '%-42s %9s KB   %s\n' "wasm bundle, gzip -9" "$gzip_kb" "< 600 KB"
printf '%-42s %9s ms\n' "first render (from navigation)" "$(value first_render_ms)"
printf '%-42s %9s ms\n' "check 1k notebooks (load_text)" "$(value check_1k_ms)"
printf '%-42s %9s ms   %s\n' "lay out 1k notebooks (draw_plan)" "$(value layout_1k_ms)" "a few ms"
printf '%-42s %9s ms\n' "check 10k notebooks (load_text)" "$(value check_10k_ms)"
printf '%-42s %9s ms\n' "one edit of 10k: the reducer alone" "$(value edit_10k_reducer_ms)"
printf '%-42s %9s ms\n' "one edit of 10k: with check and dry run" "$(value edit_10k_ms)"
printf '%-42s %9s ms   %s\n' "simulate 10k notebooks" "$(value simulate_10k_ms)" "< 200 ms"
printf '%-42s %9s ms\n' "dry run 10k (simulate + baseline)" "$(value dry_run_10k_ms)"
