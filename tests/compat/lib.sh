# Shared bash helpers for the compat scripts: start a throwaway broker and fail loudly.
# Source it; then `start_broker [extra serve args...]` sets BOOTSTRAP, BROKER_PID and
# BROKER_DIR, and the broker is stopped (and its log shown on failure) when the script
# exits.

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$COMPAT_DIR/../.." && pwd)"
RUNNEL_BIN="${RUNNEL_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/runnel}"
BROKER_PID=""
BROKER_DIR=""
BOOTSTRAP=""
CHECKS=0

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

ok() {
  CHECKS=$((CHECKS + 1))
  echo "  ok: $*"
}

_stop_broker() {
  local rc=$?
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 300); do
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "broker did not stop within 30 s of SIGTERM; killing it" >&2
      kill -KILL "$BROKER_PID" 2>/dev/null || true
      rc=1
    fi
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -n "$BROKER_DIR" && -f "$BROKER_DIR/stderr.log" ]]; then
    echo "----- last 60 lines of the broker's stderr ($BROKER_DIR/stderr.log) -----" >&2
    tail -n 60 "$BROKER_DIR/stderr.log" >&2 || true
  elif [[ -n "$BROKER_DIR" ]]; then
    rm -rf "$BROKER_DIR"
  fi
  exit $rc
}
trap _stop_broker EXIT

start_broker() {
  [[ -x "$RUNNEL_BIN" ]] || fail "broker binary $RUNNEL_BIN missing (cargo build -p runnel, or set RUNNEL_BIN)"
  BROKER_DIR="$(mktemp -d -t runnel-compat-XXXXXX)"
  # The broker reads RUNNEL_* variables as settings: start it without any (hermetic).
  # No metrics listener: its default port would clash between brokers.
  local unset_runnel=()
  for v in $(compgen -e | grep '^RUNNEL_' || true); do unset_runnel+=(-u "$v"); done
  env "${unset_runnel[@]}" RUST_LOG="${RUST_LOG:-info}" "$RUNNEL_BIN" serve --data-dir "$BROKER_DIR/data" \
    --listen 127.0.0.1:0 --set metrics.listener= "$@" >"$BROKER_DIR/stdout" 2>"$BROKER_DIR/stderr.log" </dev/null &
  BROKER_PID=$!
  local line=""
  for _ in $(seq 1 600); do
    # Wait for a whole first line (a newline), not a partial write.
    if [[ "$(wc -l <"$BROKER_DIR/stdout")" -ge 1 ]]; then
      line="$(head -n 1 "$BROKER_DIR/stdout")"
      break
    fi
    kill -0 "$BROKER_PID" 2>/dev/null || fail "broker exited before it was ready"
    sleep 0.1
  done
  [[ "$line" == "runnel listening on "* ]] || fail "no ready line from the broker within 60 s (got: '$line')"
  BOOTSTRAP="${line#runnel listening on }"
  echo "broker pid $BROKER_PID listening on $BOOTSTRAP (data $BROKER_DIR/data)"
}
