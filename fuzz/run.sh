#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for FUZZ_SECONDS (default 20) from its
# committed seeds (fuzz/seeds/<target>/, copied to a temporary corpus so the repo is
# not touched). Prints each target's executions and fails on any crash, leak, timeout or
# out-of-memory; the input that did it is kept under <target dir>/fuzz/artifacts/.
#
# Needs a nightly toolchain (libFuzzer's instrumentation and ASan are nightly-only):
# without one it says so and exits 0. cargo-fuzz is installed if missing
# (`cargo install cargo-fuzz --locked`, into ~/.cargo/bin, so once a machine).
#
#   FUZZ_SECONDS=60 bash fuzz/run.sh            # every target, 60 s each
#   FUZZ_TARGETS="decompress sasl" bash fuzz/run.sh
#
# The build is cargo-fuzz's default (optimized, debug assertions, AddressSanitizer)
# except under CI=true, where a from-scratch build of the broker's dependency tree that
# way takes most of the step's time budget: there it is built without a sanitizer at
# opt-level 1, and two targets run at once (2 cores). FUZZ_SANITIZER (address, none),
# FUZZ_OPT_LEVEL and FUZZ_PARALLEL override either way.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
fuzz_dir="$(pwd)"
root="$(cd .. && pwd)"
seconds="${FUZZ_SECONDS:-20}"
# Its own target dir under the CI one: nightly with sanitizer flags must not clobber
# the stable build's artifacts.
target_dir="${CARGO_TARGET_DIR:-$root/target}/fuzz"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
# Incremental caches only cost disk here.
export CARGO_INCREMENTAL=0

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly Rust toolchain here, so the fuzz targets are NOT run (rustup toolchain install nightly)"
  exit 0
fi
echo "fuzz: $(cargo +nightly --version)"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  if ! cargo install cargo-fuzz --locked; then
    echo "fuzz: cargo-fuzz could not be installed" >&2
    exit 1
  fi
fi
echo "fuzz: $(cargo +nightly fuzz --version)"

if [[ ${CI:-} == true ]]; then
  sanitizer="${FUZZ_SANITIZER:-none}"
  opt_level="${FUZZ_OPT_LEVEL:-1}"
  parallel="${FUZZ_PARALLEL:-2}"
else
  sanitizer="${FUZZ_SANITIZER:-address}"
  opt_level="${FUZZ_OPT_LEVEL:-3}"
  parallel="${FUZZ_PARALLEL:-1}"
fi
# One target dir per build flavour, so switching does not rebuild the other.
target_dir="$target_dir/$sanitizer-o$opt_level"
export CARGO_PROFILE_RELEASE_OPT_LEVEL="$opt_level"

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
t0=$SECONDS
echo "fuzz: building (sanitizer $sanitizer, opt-level $opt_level, debug assertions) into $target_dir"
if ! cargo +nightly fuzz build -s "$sanitizer" --target-dir "$target_dir"; then
  echo "fuzz: build FAILED" >&2
  exit 1
fi
build_s=$((SECONDS - t0))
echo "fuzz: built in ${build_s} s"
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
artifacts="$target_dir/artifacts"

# Runs one target; its report goes to $work/<target>.report, its verdict to .rc.
fuzz_one() {
  local t="$1"
  local corpus="$work/corpus/$t" log="$work/$t.log" report="$work/$t.report"
  mkdir -p "$corpus" "$artifacts/$t" "$work/tmp/$t"
  if [[ -d "$fuzz_dir/seeds/$t" ]]; then
    cp "$fuzz_dir/seeds/$t"/* "$corpus"/ 2>/dev/null
  fi
  local seeds
  seeds=$(find "$corpus" -type f | wc -l)
  echo "fuzz: $t for ${seconds} s from $seeds seeds"
  # -timeout: an input that takes 10 s is a hang. -rss_limit_mb/-malloc_limit_mb: the
  # defaults (2 GiB) catch unbounded allocation. TMPDIR keeps storage_state's scratch
  # file out of the repo.
  TMPDIR="$work/tmp/$t" "$bin_dir/$t" "$corpus" \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t/" >"$log" 2>&1
  local rc=$?
  local execs cov
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  if [[ -z "$execs" ]]; then
    execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -1)
  fi
  cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1, features \2, corpus \3/p' "$log" | tail -1)
  if [[ $rc -eq 0 ]]; then
    echo "$t ${execs:-?} ok ($cov)" >"$report"
  else
    {
      echo "fuzz: $t FAILED (exit $rc) after ${execs:-?} executions; artifacts in $artifacts/$t/"
      grep -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY|Test unit written" "$log" | head -20
      tail -40 "$log"
    } >&2
    echo "$t ${execs:-?} FAILED" >"$report"
  fi
  echo "fuzz: $(cat "$report")"
  echo "$rc" >"$work/$t.rc"
}

running=0
for t in $targets; do
  fuzz_one "$t" &
  running=$((running + 1))
  if ((running >= parallel)); then
    wait -n
    running=$((running - 1))
  fi
done
wait

failed=()
summary=()
for t in $targets; do
  summary+=("$(cat "$work/$t.report" 2>/dev/null || echo "$t ? no report")")
  [[ "$(cat "$work/$t.rc" 2>/dev/null)" == 0 ]] || failed+=("$t")
done
echo
echo "fuzz: target executions result (${seconds} s each, $parallel at a time; build ${build_s} s, total $((SECONDS - t0)) s)"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no findings"
