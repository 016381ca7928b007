#!/usr/bin/env bash
# The differential harness: starts Apache Kafka (tests/kafka/kafka.sh, jars cached under
# ~/.cache/runnel/kafka), runs tests/differential against it and a Runnel the test starts
# itself, and stops Kafka. The report is target/differential-report.md.
#
#   tests/kafka/differential.sh            # every scenario
#   DIFFERENTIAL_ONLY=fetch,metadata tests/kafka/differential.sh
#   KAFKA_BOOTSTRAP=127.0.0.1:9092 tests/kafka/differential.sh   # a Kafka already running
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root="$(pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"

# Build first, while Kafka is not yet competing for the CPU.
cargo build -q --test differential
cargo build -q -p runnel --bin runnel

dir=""
if [[ -z "${KAFKA_BOOTSTRAP:-}" ]]; then
  dir="$(mktemp -d "${TMPDIR:-/tmp}/runnel-differential-kafka.XXXXXX")"
  cleanup() {
    tests/kafka/kafka.sh stop "$dir" || true
    rm -rf "$dir"
  }
  trap cleanup EXIT
  t0=$SECONDS
  read -r port _ < <(tests/kafka/kafka.sh start "$dir")
  echo "differential.sh: Kafka on 127.0.0.1:$port (started in $((SECONDS - t0)) s)"
  export KAFKA_BOOTSTRAP="127.0.0.1:$port"
fi
rc=0
cargo test -q --test differential -- --ignored --nocapture || rc=$?
if [[ -f "$target/differential-report.md" ]]; then
  echo "differential.sh: report in $target/differential-report.md"
fi
if [[ $rc -ne 0 && -n "$dir" ]]; then
  echo "differential.sh: last lines of Kafka's log:" >&2
  tail -n 20 "$dir/kafka.log" >&2 || true
fi
exit "$rc"
