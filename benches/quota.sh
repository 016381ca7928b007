#!/usr/bin/env bash
# Does a producer_byte_rate quota hold over a window? A producer at full speed against a
# quota on the default client id; the rate the broker actually took in, from its own
# runnel_topic_bytes_in_total, over the whole run and over the run after the first
# quota window (a new client may use a whole window's worth at once, as in Kafka, since
# the rate is measured over at least quota.window.num - 1 windows).
#
#   benches/quota.sh                      # runnel perf (Rust client; the broker's mute
#                                         # holds it) and, if Kafka's tools are cached,
#                                         # kafka-producer-perf-test (honours throttle_time_ms)
#   QUOTA_RATE=1048576 QUOTA_SECONDS=40 benches/quota.sh
#   benches/quota.sh --record             # also append the figures to BENCHMARKS.md
#   QUOTA_NO_KAFKA=1 benches/quota.sh     # without the reference run on Apache Kafka
#
# RUNNEL_BIN picks the broker (default: the release build if there is one, else debug).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="${RUNNEL_BIN:-}"
if [[ -z "$bin" ]]; then
  if [[ -x "$target/release/runnel" ]]; then bin="$target/release/runnel"; else bin="$target/debug/runnel"; fi
fi
[[ -x "$bin" ]] || { echo "no broker binary at $bin (cargo build -p runnel)" >&2; exit 1; }
rate="${QUOTA_RATE:-1048576}"
seconds="${QUOTA_SECONDS:-40}"
# After one whole window (quota.window.num samples of 1 s): past the first burst.
warm=12
record=""
[[ "${1:-}" != "--record" ]] || record=1

dir="$(mktemp -d -t runnel-quota-bench-XXXXXX)"
broker_pid=""
kafka_dir=""
cleanup() {
  [[ -z "$kafka_dir" ]] || "$root/tests/kafka/kafka.sh" stop "$kafka_dir" >/dev/null 2>&1 || true
  [[ -z "$broker_pid" ]] || kill "$broker_pid" 2>/dev/null || true
  [[ -z "$broker_pid" ]] || wait "$broker_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$bin" serve --data-dir "$dir/data" --listen 127.0.0.1:0 --set metrics.listener=127.0.0.1:0 \
  >"$dir/stdout" 2>"$dir/stderr" </dev/null &
broker_pid=$!
for _ in $(seq 1 300); do
  grep -q '^runnel metrics on ' "$dir/stdout" 2>/dev/null && break
  sleep 0.1
done
bootstrap="$(sed -n 's/^runnel listening on //p' "$dir/stdout" | head -1)"
metrics="$(sed -n 's/^runnel metrics on //p' "$dir/stdout" | head -1)"
[[ -n "$bootstrap" && -n "$metrics" ]] || { echo "the broker did not start" >&2; cat "$dir/stderr" >&2; exit 1; }

"$bin" --bootstrap-server "$bootstrap" quotas alter --entity 'client-id=<default>' \
  --add-config "producer_byte_rate=$rate" >/dev/null

# Bytes the broker appended to a topic so far.
bytes_in() {
  curl -s "http://$metrics/metrics" |
    awk -v t="$1" '$1 == "runnel_topic_bytes_in_total{topic=\"" t "\"}" { print $2 }' | tail -1
}
throttles() {
  curl -s "http://$metrics/metrics" |
    awk '$1 == "runnel_throttled_responses_total{quota_type=\"produce\"}" { print $2 }'
}

results=()
# `measure TOPIC LABEL CMD...`: run CMD (a producer at full speed for $seconds s) and
# sample the topic's bytes after the first window ($warm s) and when it has finished.
measure() {
  local topic="$1" label="$2" bytes_in="${BYTES_IN:-bytes_in}"
  shift 2
  local before t0 at10 end t_end t10
  before="$("$bytes_in" "$topic")"
  before="${before:-0}"
  "$@" >"$dir/$topic.out" 2>&1 &
  local pid=$!
  t0="$(date +%s.%N)"
  sleep "$warm"
  at10="$("$bytes_in" "$topic")"
  at10="${at10:-0}"
  t10="$(date +%s.%N)"
  wait "$pid" || { echo "$label failed:" >&2; tail -20 "$dir/$topic.out" >&2; exit 1; }
  end="$("$bytes_in" "$topic")"
  t_end="$(date +%s.%N)"
  local line
  line="$(awk -v label="$label" -v b="$before" -v a="$at10" -v e="$end" -v t0="$t0" -v t10="$t10" \
    -v te="$t_end" -v q="$rate" 'BEGIN {
    whole = (e - b) / (te - t0); after = (e - a) / (te - t10);
    printf "| %s | %.0f | %.0f (%.2fx) | %.0f (%.2fx) | %.1f s |", label, q, whole, whole / q, after, after / q, te - t0 }')"
  results+=("$line")
  echo "$line"
}

echo "quota producer_byte_rate=$rate B/s on client-id=<default>; broker $bin; ${seconds}s runs"
echo "| producer | quota B/s | broker took in, whole run B/s | after the first 12 s B/s | run |"
echo "|---|---|---|---|---|"
measure quota-rust "runnel perf (Rust client)" \
  "$bin" --bootstrap-server "$bootstrap" perf produce --topic quota-rust --partitions 1 \
  --record-size 1024 --duration "${seconds}s" --acks 1

# --num-records far more than the quota lets through; the timeout ends the run.
java_perf() {
  KAFKA_HEAP_OPTS="-Xmx512m" timeout -s TERM "$seconds" "$root/tests/kafka/kafka.sh" tool kafka-producer-perf-test \
    --topic quota-java --num-records 100000000 --record-size 1024 --throughput -1 \
    --producer-props bootstrap.servers="$bootstrap" acks=1 client.id=perf-java || true
}
java=""
if "$root/tests/kafka/kafka.sh" fetch >/dev/null 2>&1; then
  java=1
  measure quota-java "kafka-producer-perf-test (Java client)" java_perf
fi
throttled="$(throttles)"
echo "produce responses throttled by runnel: $throttled"

# The reference: Apache Kafka 4.4 with the same quota and the same Java producer. Its
# intake is its log end offset times the record size (kafka-get-offsets).
kafka_bytes() {
  local n
  n="$(KAFKA_HEAP_OPTS="-Xmx256m -XX:TieredStopAtLevel=1" "$root/tests/kafka/kafka.sh" tool kafka-get-offsets \
    --bootstrap-server "$bootstrap" --topic "$1" 2>/dev/null | awk -F: '{ s += $3 } END { print s + 0 }')"
  echo $((n * 1024))
}
if [[ -n "$java" && -z "${QUOTA_NO_KAFKA:-}" ]]; then
  kafka_dir="$(mktemp -d -t runnel-quota-bench-kafka-XXXXXX)"
  if read -r kport _ < <("$root/tests/kafka/kafka.sh" start "$kafka_dir") && [[ "$kport" =~ ^[0-9]+$ ]]; then
    bootstrap="127.0.0.1:$kport"
    KAFKA_HEAP_OPTS="-Xmx256m" "$root/tests/kafka/kafka.sh" tool kafka-configs --bootstrap-server "$bootstrap" \
      --alter --add-config "producer_byte_rate=$rate" --entity-type clients --entity-default >/dev/null
    "$root/tests/kafka/kafka.sh" tool kafka-topics --bootstrap-server "$bootstrap" --create \
      --topic quota-java --partitions 1 >/dev/null 2>&1 || true
    BYTES_IN=kafka_bytes measure quota-java "Apache Kafka 4.4: kafka-producer-perf-test (Java client)" java_perf
    "$root/tests/kafka/kafka.sh" stop "$kafka_dir" >/dev/null 2>&1 || true
    rm -rf "$kafka_dir"
    kafka_dir=""
  else
    echo "(Kafka did not start: no reference row)"
  fi
fi

if [[ -n "$record" ]]; then
  {
    echo
    echo "### $(date -u +%Y-%m-%d), producer_byte_rate holds over a window"
    echo
    echo "\`benches/quota.sh --record\` (QUOTA_RATE=$rate, QUOTA_SECONDS=$seconds) on $(nproc) cores,"
    echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(uname -sr); broker \`runnel\`"
    echo "($(basename "$(dirname "$bin")") build). A producer at full speed against"
    echo "\`producer_byte_rate=$rate\` on \`client-id=<default>\` for ${seconds} s; the broker's"
    echo "\`runnel_topic_bytes_in_total\` sampled at the start, after 12 s and when the"
    echo "producer has finished (the Rust client drains what it queued in ${seconds} s at the quota, so"
    echo "its run is longer)."
    echo
    echo "| producer | quota B/s | broker took in, whole run B/s | after the first 12 s B/s | run |"
    echo "|---|---|---|---|---|"
    for r in "${results[@]}"; do echo "$r"; done
    echo
    echo "Produce responses runnel throttled: $throttled. The Kafka row is Apache Kafka 4.4 (tests/kafka/kafka.sh)"
    echo "with the same quota and producer; its intake is its log end offset x 1024 (kafka-get-offsets)."
  } >>"$root/BENCHMARKS.md"
  echo "appended to BENCHMARKS.md"
fi
[[ -n "$java" ]] || echo "(Kafka's tools not available: Java producer skipped)"
