#!/usr/bin/env bash
# Client quotas with Apache Kafka's own tools (4.4, from tests/kafka/kafka.sh):
# kafka-configs --alter/--describe of user, client-id and ip quotas (the Java Admin's
# alterClientQuotas/describeClientQuotas), Kafka's refusals as the tool prints them, and
# the Java producer over its producer_byte_rate seeing throttle time
# (kafka-producer-perf-test --print-metrics: produce-throttle-time-max).
#
#   tests/compat/kafka_quotas.sh                          # against runnel (see lib.sh)
#   KAFKA_QUOTAS_TARGET=kafka tests/compat/kafka_quotas.sh  # the same checks against Kafka
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KT="$REPO_ROOT/tests/kafka/kafka.sh"
TARGET="${KAFKA_QUOTAS_TARGET:-runnel}"
"$KT" fetch >/dev/null

KAFKA_DIR=""
_cleanup() {
  local rc=$?
  if [[ -n "$KAFKA_DIR" ]]; then
    "$KT" stop "$KAFKA_DIR" || true
    [[ $rc -ne 0 ]] || rm -rf "$KAFKA_DIR"
  fi
  (exit $rc)
  _stop_broker
}
trap _cleanup EXIT

if [[ "$TARGET" == kafka ]]; then
  KAFKA_DIR="$(mktemp -d -t kafka-quotas-ref-XXXXXX)"
  read -r port _ < <("$KT" start "$KAFKA_DIR") || true
  [[ "$port" =~ ^[0-9]+$ ]] || fail "Kafka did not start"
  BOOTSTRAP="127.0.0.1:$port"
  work="$KAFKA_DIR/tools"
else
  [[ "$TARGET" == runnel ]] || fail "KAFKA_QUOTAS_TARGET is runnel or kafka, not $TARGET"
  start_broker
  work="$BROKER_DIR/tools"
fi
mkdir -p "$work"
echo "== kafka-configs quotas against $TARGET at $BOOTSTRAP"

FAST_JVM="-Xmx512m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
# `tool NAME ARGS...`: sets RC, OUT, ALL.
tool() {
  local name="$1"
  shift
  set +e
  KAFKA_HEAP_OPTS="$FAST_JVM" timeout 180 "$KT" tool "$name" --bootstrap-server "$BOOTSTRAP" "$@" \
    </dev/null >"$work/out" 2>"$work/err"
  RC=$?
  set -e
  OUT="$(cat "$work/out")"
  ALL="$OUT"$'\n'"$(cat "$work/err")"
  [[ $RC -ne 124 ]] || fail "$name $* did not finish"
}
want() {
  [[ $RC -eq $1 ]] || fail "$3: exit $RC, want $1:"$'\n'"$ALL"
  grep -qF -- "$2" <<<"$ALL" || fail "$3: no '$2' in:"$'\n'"$ALL"
}
configs() { tool kafka-configs "$@"; }

configs --alter --add-config 'producer_byte_rate=1024,consumer_byte_rate=2048' --entity-type users --entity-name alice
want 0 "Completed updating config for user alice." "--add-config for a user"
configs --alter --add-config 'request_percentage=50' --entity-type users --entity-name alice \
  --entity-type clients --entity-name app
want 0 "Completed updating config for user alice." "--add-config for a user's client id"
configs --alter --add-config 'producer_byte_rate=4096' --entity-type users --entity-default
want 0 "Completed updating default config for users in the cluster." "--add-config for the default user"
configs --alter --add-config 'connection_creation_rate=10' --entity-type ips --entity-name 127.0.0.2
want 0 "Completed updating config for ip 127.0.0.2." "--add-config for an ip"
ok "kafka-configs --alter --add-config for users, a user's client, the default user and an ip"

configs --alter --add-config 'producer_byte_rate=10.5' --entity-type clients --entity-name c2
want 1 "InvalidRequestException: producer_byte_rate cannot be a fractional value." "a fractional byte rate"
configs --alter --add-config 'producer_byte_rate=0' --entity-type clients --entity-name c2
want 1 "InvalidRequestException: Quota producer_byte_rate must be greater than 0" "a zero rate"
ok "kafka-configs refusals: Kafka's InvalidRequestException messages"

configs --describe --entity-type users --entity-name alice
want 0 "Quota configs for user-principal 'alice' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0" "--describe a user"
configs --describe --entity-type users
want 0 "Quota configs for the default user-principal are producer_byte_rate=4096.0" "--describe users"
grep -qF "Quota configs for user-principal 'alice' are" <<<"$OUT" || fail "--describe users lacks alice:"$'\n'"$ALL"
configs --describe --entity-type users --entity-name alice --entity-type clients --entity-name app
want 0 "Quota configs for user-principal 'alice', client-id 'app' are request_percentage=50.0" "--describe a user's client"
configs --describe --entity-type ips
want 0 "Quota configs for ip '127.0.0.2' are connection_creation_rate=10.0" "--describe ips"
ok "kafka-configs --describe: users, the default user, a user's client, ips"

configs --alter --delete-config consumer_byte_rate --entity-type users --entity-name alice
want 0 "Completed updating config for user alice." "--delete-config"
configs --describe --entity-type users --entity-name alice
want 0 "Quota configs for user-principal 'alice' are producer_byte_rate=1024.0" "--describe after --delete-config"
ok "kafka-configs --delete-config removes one quota"

# The Java producer over its quota: 300 kB at once is over 10 KiB/s in a 10 s window.
configs --alter --add-config 'producer_byte_rate=10240' --entity-type clients --entity-name slow-java
want 0 "Completed updating config for client slow-java." "--add-config for a client id"
set +e
KAFKA_HEAP_OPTS="-Xmx512m" timeout 180 "$KT" tool kafka-producer-perf-test --topic quota-perf \
  --num-records 300 --record-size 1000 --throughput -1 --print-metrics \
  --producer-props bootstrap.servers="$BOOTSTRAP" client.id=slow-java acks=1 \
  >"$work/perf.out" 2>"$work/perf.err"
RC=$?
set -e
[[ $RC -eq 0 ]] || fail "kafka-producer-perf-test exit $RC:"$'\n'"$(tail -20 "$work/perf.err")"
line="$(grep -E '^producer-metrics:produce-throttle-time-max:\{client-id=slow-java\}' "$work/perf.out" || true)"
max="$(awk '{print $NF}' <<<"$line")"
[[ -n "$max" ]] || fail "no produce-throttle-time-max in the perf test's metrics"
awk -v m="$max" 'BEGIN { exit !(m + 0 > 0) }' || fail "the Java producer saw no throttling: $line"
ok "the Java producer over producer_byte_rate sees throttle time (produce-throttle-time-max $max ms)"

echo "kafka_quotas: $CHECKS checks passed against $TARGET"
