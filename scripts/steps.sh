# Sourced by the set-up scripts: `step "what"` prints what the script is doing now and, when the
# next step starts (or the script ends), how long the previous one took — on stderr, so that
# scripts that print a path on stdout keep doing so. Nested scripts indent their steps.
_step_indent=${SPOOL_STEP_INDENT:-}
export SPOOL_STEP_INDENT="$_step_indent  "
_step_name=""
_step_t0=0
_step_now() { date +%s%N; }
_step_close() {
  [ -n "$_step_name" ] || return 0
  local ms=$(( ($(_step_now) - _step_t0) / 1000000 ))
  printf '%s   %s: %d.%d s\n' "$_step_indent" "$_step_name" $((ms / 1000)) $((ms % 1000 / 100)) >&2
  _step_name=""
}
step() {
  _step_close
  _step_name=$1
  _step_t0=$(_step_now)
  printf '%s== %s\n' "$_step_indent" "$1" >&2
}
trap _step_close EXIT

# The Python environment (scripts/python-env.sh) is mostly downloads and unpacking: the scripts
# make it in the background while the compilers run. `python_env_wait` exports SPOOL_PYTHON.
# Both use the script's `root`.
python_env_start() {
  mkdir -p "$root/target"
  "$root/scripts/python-env.sh" >"$root/target/python-env.path" &
  _python_env=$!
}
python_env_wait() {
  if ! wait "$_python_env"; then
    echo "error: the Python environment could not be made (scripts/python-env.sh)" >&2
    exit 1
  fi
  SPOOL_PYTHON=$(cat "$root/target/python-env.path")
  export SPOOL_PYTHON
}
