#!/usr/bin/env bash
# Apache Kafka's own command-line tools (4.4, from tests/kafka/kafka.sh) against a fresh
# runnel broker, checked on what they print: kafka-topics, kafka-configs,
# kafka-consumer-groups (a classic group and a KIP-848 one), the console producer and
# consumer, the perf tests, kafka-get-offsets, kafka-delete-records,
# kafka-broker-api-versions, kafka-acls (which must fail cleanly), kafka-transactions
# (list, describe, describe-producers, find-hanging and abort of a transaction a killed
# producer left open), and kafka-acls against a second, authorizer-enabled runnel broker.
#
#   tests/compat/kafka_tools.sh                # against runnel (RUNNEL_BIN, see lib.sh)
#   KAFKA_TOOLS_TARGET=kafka tests/compat/kafka_tools.sh   # the same checks against Kafka
#   KAFKA_TOOLS_RECORD=DIR tests/compat/kafka_tools.sh     # keep every tool's output,
#                                              # normalised (ids, ports, times), in DIR
#   tests/compat/kafka_tools.sh --compare      # both, then diff the two recordings
#
# Where runnel differs from Kafka on purpose the check says which answer each gives.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KT="$REPO_ROOT/tests/kafka/kafka.sh"
TARGET="${KAFKA_TOOLS_TARGET:-runnel}"
RECORD="${KAFKA_TOOLS_RECORD:-}"

if [[ "${1:-}" == "--compare" ]]; then
  out="$(mktemp -d -t kafka-tools-compare-XXXXXX)"
  KAFKA_TOOLS_TARGET=runnel KAFKA_TOOLS_RECORD="$out/runnel" bash "$0" || fail "the checks failed against runnel"
  KAFKA_TOOLS_TARGET=kafka KAFKA_TOOLS_RECORD="$out/kafka" bash "$0" || fail "the checks failed against Kafka"
  echo "== differences in what the tools print, runnel (-) against Kafka (+), in $out:"
  diff -ru "$out/runnel" "$out/kafka" || true
  exit 0
fi

started=$SECONDS
"$KT" fetch >/dev/null
java_version="$(java -version 2>&1 | sed -n 1p)"
echo "== Kafka's tools $("$KT" tool kafka-topics --version 2>/dev/null | sed -n 1p) on $java_version, against $TARGET"

# --- the broker ------------------------------------------------------------------------
KAFKA_DIR=""
BG_PIDS=()
_cleanup() {
  local rc=$?
  local p
  for p in "${BG_PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  if [[ -n "$KAFKA_DIR" ]]; then
    "$KT" stop "$KAFKA_DIR" || true
    if [[ $rc -ne 0 ]]; then
      echo "----- last 40 lines of Kafka's log ($KAFKA_DIR/kafka.log) -----" >&2
      tail -n 40 "$KAFKA_DIR/kafka.log" >&2 || true
    else
      rm -rf "$KAFKA_DIR"
    fi
  fi
  (exit $rc)
  _stop_broker
}
trap _cleanup EXIT

if [[ "$TARGET" == kafka ]]; then
  KAFKA_DIR="$(mktemp -d -t kafka-tools-ref-XXXXXX)"
  read -r port _ < <("$KT" start "$KAFKA_DIR") || true
  [[ "$port" =~ ^[0-9]+$ ]] || fail "Kafka did not start"
  BOOTSTRAP="127.0.0.1:$port"
  work="$KAFKA_DIR/tools"
  echo "Apache Kafka listening on $BOOTSTRAP (in $KAFKA_DIR)"
else
  [[ "$TARGET" == runnel ]] || fail "KAFKA_TOOLS_TARGET is runnel or kafka, not $TARGET"
  # The reference broker has no initial rebalance delay (kafka.sh); neither does this one.
  start_broker --set group.initial.rebalance.delay.ms=0 --set metrics.listener=
  work="$BROKER_DIR/tools"
fi
mkdir -p "$work"
[[ -z "$RECORD" ]] || mkdir -p "$RECORD"
is_runnel() { [[ "$TARGET" == runnel ]]; }

# --- running a tool --------------------------------------------------------------------
# JVM start-up dominates: C1 only, a small heap, and a class data sharing archive of the
# classes an admin tool loads (made by the first call, cached per JDK) take it from
# ~4 s to ~1.5 s. A stale archive is ignored by the JVM, silently.
cds_dir="${RUNNEL_KAFKA_CACHE:-$HOME/.cache/runnel/kafka}/cds"
mkdir -p "$cds_dir"
cds="$cds_dir/tools-$(printf '%s\n%s\n' "$java_version" "$("$KT" classpath)" | cksum | cut -d' ' -f1).jsa"
FAST_JVM="-Xmx512m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"
if [[ ! -s "$cds" ]]; then
  # One real admin run against the broker, archived at exit (to a temp name: atomic).
  KAFKA_HEAP_OPTS="$FAST_JVM" KAFKA_OPTS="-XX:ArchiveClassesAtExit=$cds.$$" \
    "$KT" tool kafka-topics --bootstrap-server "$BOOTSTRAP" --describe >/dev/null 2>&1 || true
  [[ -s "$cds.$$" ]] && mv "$cds.$$" "$cds"
  rm -f "$cds.$$"
fi

# `tool LABEL NAME ARGS...` runs a tool against the broker (stdin from $TOOL_IN, or
# nothing) with a timeout, so nothing can hang the script. Sets RC, OUT (stdout), ERR
# (stderr), ALL (both), SECS; with KAFKA_TOOLS_RECORD, saves the normalised output.
TOOL_IN=/dev/null
TOOL_TIMEOUT=120
CALLS=0
tool() {
  local label="$1" name="$2"
  shift 2
  CALLS=$((CALLS + 1))
  local opts="$FAST_JVM -XX:SharedArchiveFile=$cds"
  # The perf tests run long enough for the optimising compiler to pay off.
  [[ "$name" == kafka-*-perf-test ]] && opts="-Xmx512m -Xshare:auto -Xlog:cds=off -XX:SharedArchiveFile=$cds"
  local t0=$SECONDS
  set +e
  KAFKA_HEAP_OPTS="$opts" timeout "$TOOL_TIMEOUT" "$KT" tool "$name" --bootstrap-server "$BOOTSTRAP" "$@" \
    <"$TOOL_IN" >"$work/$label.out" 2>"$work/$label.err"
  RC=$?
  set -e
  SECS=$((SECONDS - t0))
  OUT="$(cat "$work/$label.out")"
  ERR="$(cat "$work/$label.err")"
  ALL="$OUT"$'\n'"$ERR"
  [[ $RC -ne 124 ]] || fail "$name $* did not finish within ${TOOL_TIMEOUT} s"
  if [[ -n "$RECORD" ]]; then
    {
      echo "\$ $name $*"
      echo "exit $RC"
      cat "$work/$label.out" "$work/$label.err"
    } | normalise "$label" >"$RECORD/$(printf '%02d' "$CALLS")-$label.txt"
  fi
}

# Ids, ports, paths, times, client-generated names and measurements vary between runs.
# A 22-character token with a digit, '_' or '-' in it is a topic or member id.
normalise() {
  local perf=""
  [[ "$1" != perf-* ]] || perf=1
  PERF="$perf" WORK="${work%/tools}" perl -pe '
    s/\Q$ENV{WORK}\E/DIR/g;
    s/127\.0\.0\.1:\d+/127.0.0.1:PORT/g;
    s/console-consumer-[0-9a-f-]{36}/console-consumer-UUID/g;
    s/(?<![\w-])(?=[\w-]*[\d_-])[\w-]{22}(?![\w-])/ID22/g;
    s/^\[\d{4}-[\d-]+ [\d:,]+\]/[TIME]/;
    s/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}/DATETIME/g;
    s/\b(deadlineMs|tries|nextAllowedTryMs)=\d+/$1=N/g;
    s/\t1\d{12}\t/\tTIMESTAMP\t/g;
    s/\d+(\.\d+)?/N/g if $ENV{PERF};
  '
}

has() { grep -qF -- "$2" <<<"$1"; }
expect_rc() {
  [[ $RC -eq $1 ]] || fail "$2: exit code $RC, want $1; output:"$'\n'"$ALL"
}
expect() {
  has "$ALL" "$1" || fail "$2: no '$1' in the output:"$'\n'"$ALL"
}
expect_not() {
  ! has "$ALL" "$1" || fail "$2: '$1' in the output:"$'\n'"$ALL"
}
# The rows of a tool's table whose first column is $1 (whitespace squeezed to one space).
rows() { awk -v g="$1" '$1 == g { $1 = $1; print }' <<<"$OUT"; }

# ==== kafka-broker-api-versions =========================================================
tool api-versions kafka-broker-api-versions
expect_rc 0 "kafka-broker-api-versions"
expect "(id: 1 rack: null isFenced: false) -> (" "kafka-broker-api-versions"
for api in 'Produce(0)' 'Fetch(1)' 'ListOffsets(2)' 'Metadata(3)' 'OffsetCommit(8)' 'OffsetFetch(9)' \
  'FindCoordinator(10)' 'JoinGroup(11)' 'ApiVersions(18)' 'CreateTopics(19)' 'DeleteRecords(21)' \
  'DescribeAcls(29)' 'DescribeConfigs(32)' 'IncrementalAlterConfigs(44)' 'OffsetDelete(47)' \
  'ConsumerGroupHeartbeat(68)' 'ConsumerGroupDescribe(69)' 'DescribeTopicPartitions(75)'; do
  grep -F "	$api: " <<<"$OUT" | grep -qE ': [0-9]+( to [0-9]+)? \[usable: [0-9]+\],?$' ||
    fail "kafka-broker-api-versions does not list $api as usable:"$'\n'"$OUT"
done
! grep -qiE 'error|exception' <<<"$ALL" || fail "kafka-broker-api-versions printed an error:"$'\n'"$ALL"
ok "kafka-broker-api-versions lists the broker's APIs, each usable ($(grep -c 'usable:' <<<"$OUT") of them), no errors"

# ==== kafka-topics ======================================================================
tool topics-create kafka-topics --create --topic kt-orders --partitions 3 \
  --config retention.ms=3600000 --config max.message.bytes=2000000
expect_rc 0 "kafka-topics --create"
[[ "$OUT" == "Created topic kt-orders." ]] || fail "kafka-topics --create printed: $ALL"
ok "kafka-topics --create --partitions 3 --config ...: 'Created topic kt-orders.'"

tool topics-create-again kafka-topics --create --topic kt-orders --partitions 3
expect_rc 1 "kafka-topics --create of an existing topic"
expect "Error while executing topic command : Topic 'kt-orders' already exists." "existing topic"
expect "org.apache.kafka.common.errors.TopicExistsException" "existing topic"
ok "kafka-topics --create of an existing topic: TopicExistsException, exit 1"

tool topics-bad-name kafka-topics --create --topic 'kt/bad'
expect_rc 1 "kafka-topics --create with a bad name"
expect "Error while executing topic command : Topic name is invalid: 'kt/bad' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'" "bad name"
expect "org.apache.kafka.common.errors.InvalidTopicException" "bad name"
ok "kafka-topics --create with a bad name: Kafka's InvalidTopicException message"

tool topics-bad-config kafka-topics --create --topic kt-bad-config --config no.such.config=1
expect_rc 1 "kafka-topics --create with an unknown config"
expect "Error while executing topic command : Unknown topic config name: no.such.config" "unknown config"
expect "org.apache.kafka.common.errors.InvalidConfigurationException" "unknown config"
ok "kafka-topics --create with an unknown config: InvalidConfigurationException"

tool topics-rf kafka-topics --create --topic kt-rf --replication-factor 2
expect_rc 1 "kafka-topics --create --replication-factor 2"
expect "Error while executing topic command : Unable to replicate the partition 2 time(s): The target replication factor of 2 cannot be reached because only 1 broker(s) are registered" "replication factor 2"
expect "org.apache.kafka.common.errors.InvalidReplicationFactorException" "replication factor 2"
ok "kafka-topics --create --replication-factor 2 on one broker: InvalidReplicationFactorException"

tool topics-create-doomed kafka-topics --create --topic kt-doomed
expect_rc 0 "kafka-topics --create kt-doomed"

tool topics-list kafka-topics --list --exclude-internal
expect_rc 0 "kafka-topics --list"
[[ "$OUT" == $'kt-doomed\nkt-orders' ]] || fail "kafka-topics --list --exclude-internal printed:"$'\n'"$ALL"
ok "kafka-topics --list --exclude-internal: exactly the two topics created"

tool topics-describe kafka-topics --describe --topic kt-orders
expect_rc 0 "kafka-topics --describe"
head_line="$(head -n 1 <<<"$OUT")"
[[ "$head_line" =~ ^Topic:\ kt-orders$'\t'TopicId:\ [A-Za-z0-9_-]{22}$'\t'PartitionCount:\ 3$'\t'ReplicationFactor:\ 1$'\t'Configs:\ (.*)$ ]] ||
  fail "kafka-topics --describe header: $head_line"
configs="${BASH_REMATCH[1]}"
for c in retention.ms=3600000 max.message.bytes=2000000; do
  [[ ",$configs," == *",$c,"* ]] || fail "kafka-topics --describe Configs lacks $c: $configs"
done
want=""
for p in 0 1 2; do
  want+=$'\t'"Topic: kt-orders"$'\t'"Partition: $p"$'\t'"Leader: 1"$'\t'"Replicas: 1"$'\t'"Isr: 1"$'\t'"Elr: "$'\t'"LastKnownElr: "$'\n'
done
[[ "$(tail -n +2 <<<"$OUT")"$'\n' == "$want" ]] || fail "kafka-topics --describe partitions:"$'\n'"$OUT"
ok "kafka-topics --describe: 3 partitions, leader 1, replicas/isr 1, empty ELR (DescribeTopicPartitions), Configs: $configs"

tool topics-alter kafka-topics --alter --topic kt-orders --partitions 5
expect_rc 0 "kafka-topics --alter --partitions 5"
[[ -z "$OUT" ]] || fail "kafka-topics --alter printed: $ALL"
tool topics-alter-down kafka-topics --alter --topic kt-orders --partitions 4
expect_rc 1 "kafka-topics --alter to fewer partitions"
expect "Error while executing topic command : The topic kt-orders currently has 5 partition(s); 4 would not be an increase." "fewer partitions"
expect "org.apache.kafka.common.errors.InvalidPartitionsException" "fewer partitions"
ok "kafka-topics --alter --partitions 5 succeeds; 5 -> 4 fails with Kafka's InvalidPartitionsException message"

tool topics-delete kafka-topics --delete --topic kt-doomed
expect_rc 0 "kafka-topics --delete"
[[ -z "$OUT" ]] || fail "kafka-topics --delete printed: $ALL"
tool topics-describe-deleted kafka-topics --describe --topic kt-doomed
expect_rc 1 "kafka-topics --describe of a deleted topic"
expect "Error while executing topic command : Topic 'kt-doomed' does not exist as expected" "deleted topic"
ok "kafka-topics --delete; describing the deleted topic then says it does not exist"

# The partitions added by --alter, from kafka-get-offsets.
tool offsets-altered kafka-get-offsets --topic kt-orders
expect_rc 0 "kafka-get-offsets --topic kt-orders"
[[ "$OUT" == $'kt-orders:0:0\nkt-orders:1:0\nkt-orders:2:0\nkt-orders:3:0\nkt-orders:4:0' ]] ||
  fail "kafka-get-offsets after --alter --partitions 5:"$'\n'"$ALL"
ok "kafka-get-offsets lists the 5 partitions of the altered topic, all at offset 0"

# ==== kafka-configs =====================================================================
tool configs-describe kafka-configs --describe --entity-type topics --entity-name kt-orders
expect_rc 0 "kafka-configs --describe topic"
want="Dynamic configs for topic kt-orders are:
  max.message.bytes=2000000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:max.message.bytes=2000000, DEFAULT_CONFIG:message.max.bytes=1048588}
  retention.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000"
[[ "$OUT" == "$want"* ]] || fail "kafka-configs --describe topic printed:"$'\n'"$ALL"
ok "kafka-configs --describe topic: the two overrides with their synonyms"

tool configs-describe-all kafka-configs --describe --entity-type topics --entity-name kt-orders --all
expect_rc 0 "kafka-configs --describe --all topic"
expect "All configs for topic kt-orders are:" "--all"
for line in "  cleanup.policy=delete sensitive=false synonyms={DEFAULT_CONFIG:log.cleanup.policy=delete}" \
  "  retention.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000" \
  "  segment.bytes=1073741824 sensitive=false synonyms={DEFAULT_CONFIG:log.segment.bytes=1073741824}" \
  "  min.insync.replicas=1 sensitive=false synonyms={" \
  "  compression.type=producer sensitive=false synonyms={DEFAULT_CONFIG:compression.type=producer}"; do
  grep -qF -- "$line" <<<"$OUT" || fail "kafka-configs --describe --all lacks '$line':"$'\n'"$OUT"
done
n_configs="$(grep -c ' sensitive=' <<<"$OUT")"
((n_configs >= 30)) || fail "kafka-configs --describe --all listed $n_configs configs"
ok "kafka-configs --describe --all topic: $n_configs configs with values, sources and synonyms"

tool configs-add kafka-configs --alter --entity-type topics --entity-name kt-orders \
  --add-config 'retention.bytes=1000000,cleanup.policy=[compact,delete]'
expect_rc 0 "kafka-configs --alter --add-config"
[[ "$OUT" == "Completed updating config for topic kt-orders." ]] || fail "kafka-configs --add-config printed: $ALL"
tool configs-delete kafka-configs --alter --entity-type topics --entity-name kt-orders --delete-config retention.ms
expect_rc 0 "kafka-configs --alter --delete-config"
[[ "$OUT" == "Completed updating config for topic kt-orders." ]] || fail "kafka-configs --delete-config printed: $ALL"
tool configs-after kafka-configs --describe --entity-type topics --entity-name kt-orders
expect_rc 0 "kafka-configs --describe after altering"
want="Dynamic configs for topic kt-orders are:
  cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete, DEFAULT_CONFIG:log.cleanup.policy=delete}
  max.message.bytes=2000000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:max.message.bytes=2000000, DEFAULT_CONFIG:message.max.bytes=1048588}
  retention.bytes=1000000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.bytes=1000000, DEFAULT_CONFIG:log.retention.bytes=-1}"
[[ "$OUT" == "$want" ]] || fail "kafka-configs --describe after --add-config/--delete-config:"$'\n'"$ALL"
ok "kafka-configs --add-config (a list value too) and --delete-config; --describe shows exactly the result"

tool configs-bad-value kafka-configs --alter --entity-type topics --entity-name kt-orders --add-config retention.bytes=abc
expect_rc 1 "kafka-configs --add-config with a bad value"
expect "org.apache.kafka.common.errors.InvalidConfigurationException: Invalid value abc for configuration retention.bytes: Not a number of type LONG" "bad value"
tool configs-no-topic kafka-configs --alter --entity-type topics --entity-name kt-nosuch --add-config retention.ms=1
expect_rc 1 "kafka-configs --alter of a missing topic"
expect "org.apache.kafka.common.errors.UnknownTopicOrPartitionException: The topic 'kt-nosuch' does not exist." "missing topic"
tool configs-delete-unknown kafka-configs --alter --entity-type topics --entity-name kt-orders --delete-config no.such.config
expect_rc 0 "kafka-configs --delete-config of an unknown name"
[[ "$OUT" == "Completed updating config for topic kt-orders." ]] || fail "--delete-config no.such.config printed: $ALL"
ok "kafka-configs: a bad value and a missing topic fail with Kafka's errors; deleting an unknown name is a no-op"

tool configs-broker kafka-configs --describe --entity-type brokers --entity-name 1
expect_rc 0 "kafka-configs --describe broker"
[[ "$OUT" == "Dynamic configs for broker 1 are:" ]] || fail "kafka-configs --describe broker 1 printed:"$'\n'"$ALL"
tool configs-broker-all kafka-configs --describe --entity-type brokers --entity-name 1 --all
expect_rc 0 "kafka-configs --describe broker --all"
expect "All configs for broker 1 are:" "broker --all"
# Runnel lists the settings it has, Kafka all ~350 of its broker configs; both say which
# were set (STATIC_BROKER_CONFIG, then the default) and which are defaults.
for line in "  group.initial.rebalance.delay.ms=0 sensitive=false synonyms={STATIC_BROKER_CONFIG:group.initial.rebalance.delay.ms=0" \
  "  delete.topic.enable=true sensitive=false synonyms={DEFAULT_CONFIG:delete.topic.enable=true}" \
  "  fetch.max.bytes=57671680 sensitive=false synonyms={DEFAULT_CONFIG:fetch.max.bytes=57671680}" \
  "  socket.request.max.bytes=104857600 sensitive=false synonyms={DEFAULT_CONFIG:socket.request.max.bytes=104857600}" \
  "sensitive=false synonyms={STATIC_BROKER_CONFIG:log.dirs="; do
  grep -qF -- "$line" <<<"$OUT" || fail "kafka-configs --describe broker --all lacks '$line':"$'\n'"$OUT"
done
tool configs-broker-default kafka-configs --describe --entity-type brokers --entity-default
expect_rc 0 "kafka-configs --describe --entity-default"
expect "Default configs for brokers in the cluster are:" "--entity-default"
ok "kafka-configs --describe broker 1 (no dynamic configs), --all (settings and defaults told apart), --entity-default"

# ==== kafka-console-producer / kafka-console-consumer ===================================
printf '%s\n' $'origin:kafka-tools,seq:1\tk1\tfirst value' $'origin:kafka-tools,seq:2\tk2\tsecond, with a comma' \
  $'seq:3\tk1\tthird\tvalue with a tab' >"$work/console.in"
TOOL_IN="$work/console.in" tool console-produce kafka-console-producer --topic kt-console \
  --reader-property parse.key=true --reader-property parse.headers=true --command-property acks=all
expect_rc 0 "kafka-console-producer"
TOOL_IN=/dev/null
tool console-consume kafka-console-consumer --topic kt-console --from-beginning --max-messages 3 \
  --timeout-ms 30000 --formatter-property print.key=true --formatter-property print.headers=true \
  --formatter-property print.partition=true --formatter-property print.offset=true
expect_rc 0 "kafka-console-consumer"
want="Partition:0	Offset:0	origin:kafka-tools,seq:1	k1	first value
Partition:0	Offset:1	origin:kafka-tools,seq:2	k2	second, with a comma
Partition:0	Offset:2	seq:3	k1	third	value with a tab"
[[ "$OUT" == "$want" ]] || fail "kafka-console-consumer printed:"$'\n'"$OUT"$'\n'"want:"$'\n'"$want"
expect "Processed a total of 3 messages" "kafka-console-consumer"
ok "kafka-console-producer -> kafka-console-consumer: 3 records with keys, headers, partition and offset, exactly"

# ==== kafka-consumer-groups =============================================================
tool groups-topic kafka-topics --create --topic kt-groups --partitions 3
expect_rc 0 "kafka-topics --create kt-groups"
for i in $(seq 1 30); do printf 'key-%d\tvalue %d\n' "$i" "$i"; done >"$work/groups.in"
TOOL_IN="$work/groups.in" tool groups-produce kafka-console-producer --topic kt-groups \
  --reader-property parse.key=true --command-property acks=all
expect_rc 0 "kafka-console-producer kt-groups"
TOOL_IN=/dev/null
tool groups-end kafka-get-offsets --topic kt-groups
expect_rc 0 "kafka-get-offsets kt-groups"
declare -A END
while IFS=: read -r _ p o; do END[$p]=$o; done <<<"$OUT"
((${END[0]} + ${END[1]} + ${END[2]} == 30)) || fail "kt-groups end offsets: $OUT"
for p in 0 1 2; do ((${END[$p]} >= 2)) || fail "keys must spread over all partitions, got: $OUT"; done
ok "30 keyed records over kt-groups' 3 partitions (end offsets ${END[0]}/${END[1]}/${END[2]})"

# A classic group: consumes everything and commits on close.
tool groups-consume kafka-console-consumer --topic kt-groups --group kt-classic --from-beginning \
  --max-messages 30 --timeout-ms 30000
expect_rc 0 "kafka-console-consumer --group kt-classic"
expect "Processed a total of 30 messages" "kafka-console-consumer --group kt-classic"

# `table_is ROWS...`: $OUT's rows of group $GROUP, whitespace squeezed, are exactly these
# (in any order: the tool prints some tables in hash order).
table_is() {
  local want
  want="$(printf '%s\n' "$@" | sort)"
  [[ "$(rows "$GROUP" | sort)" == "$want" ]] || fail "$LABEL: rows of $GROUP:"$'\n'"$(rows "$GROUP")"$'\n'"want:"$'\n'"$want"$'\n'"output:"$'\n'"$ALL"
}
GROUP=kt-classic
tool groups-list kafka-consumer-groups --list
expect_rc 0 "kafka-consumer-groups --list"
grep -qx kt-classic <<<"$OUT" || fail "kafka-consumer-groups --list lacks kt-classic: $OUT"
ok "kafka-consumer-groups --list shows the classic group"

LABEL="--describe (classic, no members)"
tool groups-describe kafka-consumer-groups --describe --group kt-classic
expect_rc 0 "$LABEL"
expect "Consumer group 'kt-classic' has no active members." "$LABEL"
table_is "kt-classic kt-groups 0 ${END[0]} ${END[0]} 0 - - -" \
  "kt-classic kt-groups 1 ${END[1]} ${END[1]} 0 - - -" \
  "kt-classic kt-groups 2 ${END[2]} ${END[2]} 0 - - -"
ok "kafka-consumer-groups --describe: committed offsets at the log end, lag 0, no members"

LABEL="--reset-offsets --to-earliest --dry-run"
tool groups-reset-dry kafka-consumer-groups --reset-offsets --group kt-classic --topic kt-groups --to-earliest --dry-run
expect_rc 0 "$LABEL"
table_is "kt-classic kt-groups 2 0" "kt-classic kt-groups 1 0" "kt-classic kt-groups 0 0"
LABEL="--reset-offsets --to-offset 2 --execute"
tool groups-reset-offset kafka-consumer-groups --reset-offsets --group kt-classic --topic kt-groups:0 --to-offset 2 --execute
expect_rc 0 "$LABEL"
table_is "kt-classic kt-groups 0 2"
LABEL="--reset-offsets --shift-by -1 --execute"
tool groups-reset-shift kafka-consumer-groups --reset-offsets --group kt-classic --topic kt-groups --shift-by -1 --execute
expect_rc 0 "$LABEL"
table_is "kt-classic kt-groups 2 $((END[2] - 1))" "kt-classic kt-groups 1 $((END[1] - 1))" "kt-classic kt-groups 0 1"
LABEL="--describe after resets"
tool groups-describe-reset kafka-consumer-groups --describe --group kt-classic
expect_rc 0 "$LABEL"
table_is "kt-classic kt-groups 0 1 ${END[0]} $((END[0] - 1)) - - -" \
  "kt-classic kt-groups 1 $((END[1] - 1)) ${END[1]} 1 - - -" \
  "kt-classic kt-groups 2 $((END[2] - 1)) ${END[2]} 1 - - -"
ok "kafka-consumer-groups --reset-offsets --dry-run changes nothing; --to-offset, --shift-by --execute; --describe shows offsets and lag"

LABEL="--reset-offsets --to-latest --execute"
tool groups-reset-latest kafka-consumer-groups --reset-offsets --group kt-classic --all-topics --to-latest --execute
expect_rc 0 "$LABEL"
table_is "kt-classic kt-groups 2 ${END[2]}" "kt-classic kt-groups 1 ${END[1]}" "kt-classic kt-groups 0 ${END[0]}"
LABEL="--reset-offsets --to-earliest --execute"
tool groups-reset-earliest kafka-consumer-groups --reset-offsets --group kt-classic --topic kt-groups --to-earliest --execute
expect_rc 0 "$LABEL"
table_is "kt-classic kt-groups 2 0" "kt-classic kt-groups 1 0" "kt-classic kt-groups 0 0"
LABEL="--reset-offsets --to-datetime --execute"
tool groups-reset-datetime kafka-consumer-groups --reset-offsets --group kt-classic --topic kt-groups \
  --to-datetime "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%S.000)" --execute
expect_rc 0 "$LABEL"
# No record is that new: every partition falls back to its latest offset.
table_is "kt-classic kt-groups 2 ${END[2]}" "kt-classic kt-groups 1 ${END[1]}" "kt-classic kt-groups 0 ${END[0]}"
expect "Warn: Partition 0 from topic kt-groups is empty. Falling back to latest known offset." "$LABEL"
tool groups-reset-datetime-old kafka-consumer-groups --reset-offsets --group kt-classic --topic kt-groups \
  --to-datetime 2000-01-01T00:00:00.000 --execute
expect_rc 0 "$LABEL"
table_is "kt-classic kt-groups 2 0" "kt-classic kt-groups 1 0" "kt-classic kt-groups 0 0"
ok "kafka-consumer-groups --reset-offsets --to-latest, --to-earliest, --to-datetime (future: latest; 2000: earliest)"

LABEL="--delete-offsets"
tool groups-delete-offsets kafka-consumer-groups --delete-offsets --group kt-classic --topic kt-groups:1
expect_rc 0 "$LABEL"
expect "Request succeeded for deleting offsets from group kt-classic." "$LABEL"
[[ "$(rows kt-groups)" == "kt-groups 1 Successful" ]] || fail "$LABEL printed:"$'\n'"$ALL"
tool groups-describe-deleted kafka-consumer-groups --describe --group kt-classic
expect_rc 0 "--describe after --delete-offsets"
LABEL="--describe after --delete-offsets"
table_is "kt-classic kt-groups 0 0 ${END[0]} ${END[0]} - - -" "kt-classic kt-groups 2 0 ${END[2]} ${END[2]} - - -"
ok "kafka-consumer-groups --delete-offsets removes partition 1's offset; --describe no longer lists it"

# Live groups: a classic and a consumer-protocol (KIP-848) console consumer, in the
# background; quick auto-commits so their offsets show.
start_consumer() {
  local group="$1"
  shift
  KAFKA_HEAP_OPTS="$FAST_JVM -XX:SharedArchiveFile=$cds" "$KT" tool kafka-console-consumer \
    --bootstrap-server "$BOOTSTRAP" --topic kt-groups --group "$group" --from-beginning \
    --consumer-property auto.commit.interval.ms=200 "$@" \
    >"$work/$group.out" 2>"$work/$group.err" </dev/null &
  BG_PIDS+=($!)
}
start_consumer kt-live-classic
start_consumer kt-live-848 --consumer-property group.protocol=consumer
records_read() { grep -c '^value ' "$work/$1.out" || true; }
for _ in $(seq 1 600); do
  if [[ "$(records_read kt-live-classic)" -ge 30 && "$(records_read kt-live-848)" -ge 30 ]]; then
    break
  fi
  sleep 0.1
done
for g in kt-live-classic kt-live-848; do
  [[ "$(records_read "$g")" -eq 30 ]] ||
    fail "console consumer $g read $(records_read "$g") records in 60 s, want 30:"$'\n'"$(cat "$work/$g.out" "$work/$g.err")"
done
sleep 1 # an auto-commit after the last record

LABEL="--describe (live groups)"
tool groups-live kafka-consumer-groups --describe --group kt-live-classic --group kt-live-848
expect_rc 0 "$LABEL"
for GROUP in kt-live-classic kt-live-848; do
  rows "$GROUP" >"$work/live-rows"
  [[ "$(wc -l <"$work/live-rows")" -eq 3 ]] || fail "$LABEL: rows of $GROUP:"$'\n'"$ALL"
  for p in 0 1 2; do
    grep -qE "^$GROUP kt-groups $p ${END[$p]} ${END[$p]} 0 [^ ]+ /127\.0\.0\.1 console-consumer$" "$work/live-rows" ||
      fail "$LABEL: $GROUP partition $p:"$'\n'"$ALL"
  done
done
classic_id="$(rows kt-live-classic | sed -n 1p | cut -d' ' -f7)"
kip848_id="$(rows kt-live-848 | sed -n 1p | cut -d' ' -f7)"
[[ "$classic_id" == console-consumer-* && ${#kip848_id} -eq 22 ]] ||
  fail "$LABEL: member ids '$classic_id' and '$kip848_id'"
ok "kafka-consumer-groups --describe of two live groups: each member owns all 3 partitions, offsets at the end, lag 0"

LABEL="--describe --members --verbose"
tool groups-members kafka-consumer-groups --describe --group kt-live-classic --group kt-live-848 --members --verbose
expect_rc 0 "$LABEL"
GROUP=kt-live-classic
table_is "kt-live-classic $classic_id /127.0.0.1 console-consumer 3 - kt-groups:0,1,2 - -"
m848="$(rows kt-live-848)"
[[ "$m848" =~ ^kt-live-848\ $kip848_id\ /127\.0\.0\.1\ console-consumer\ 3\ ([0-9]+)\ kt-groups:0,1,2\ ([0-9]+)\ kt-groups:0,1,2$ ]] ||
  fail "$LABEL: kt-live-848 member: $m848"$'\n'"$ALL"
epoch="${BASH_REMATCH[1]}"
[[ "${BASH_REMATCH[2]}" == "$epoch" ]] || fail "$LABEL: current epoch $epoch, target ${BASH_REMATCH[2]}"
ok "kafka-consumer-groups --members --verbose: the classic member's assignment; the KIP-848 member at epoch $epoch, current = target"

LABEL="--describe --state --verbose"
tool groups-state kafka-consumer-groups --describe --group kt-live-classic --group kt-live-848 --state --verbose
expect_rc 0 "$LABEL"
GROUP=kt-live-classic
table_is "kt-live-classic $BOOTSTRAP (1) range Stable - - 1"
GROUP=kt-live-848
table_is "kt-live-848 $BOOTSTRAP (1) uniform Stable $epoch $epoch 1"
ok "kafka-consumer-groups --state --verbose: classic 'range Stable', KIP-848 'uniform Stable' at group epoch $epoch"

LABEL="changes to live groups"
tool groups-live-reset kafka-consumer-groups --reset-offsets --group kt-live-848 --topic kt-groups --to-earliest --execute
expect "Error: Assignments can only be reset if the group 'kt-live-848' is inactive, but the current state is Stable." "$LABEL"
tool groups-live-delete-offsets kafka-consumer-groups --delete-offsets --group kt-live-848 --topic kt-groups
expect "Error: Encountered some partition-level error, see the follow-up details." "$LABEL"
[[ "$(grep -c 'GroupSubscribedToTopicException: Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it.' <<<"$OUT")" -eq 3 ]] ||
  fail "--delete-offsets of a live group:"$'\n'"$ALL"
tool groups-live-delete kafka-consumer-groups --delete --group kt-live-classic
expect "* Group 'kt-live-classic' could not be deleted due to: org.apache.kafka.common.errors.GroupNotEmptyException: The group is not empty." "$LABEL"
ok "kafka-consumer-groups refuses --reset-offsets, --delete-offsets and --delete on live groups, with Kafka's errors"

# The members leave (SIGTERM closes the consumers).
for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
BG_PIDS=()

LABEL="--describe --state (after the members left)"
tool groups-left kafka-consumer-groups --describe --group kt-live-classic --group kt-live-848 --state --verbose
expect_rc 0 "$LABEL"
GROUP=kt-live-classic
table_is "kt-live-classic $BOOTSTRAP (1) - Empty - - 0"
GROUP=kt-live-848
rows kt-live-848 | grep -qE "^kt-live-848 $BOOTSTRAP \(1\) uniform Empty [0-9]+ [0-9]+ 0$" ||
  fail "$LABEL: kt-live-848:"$'\n'"$ALL"
LABEL="--reset-offsets of the emptied KIP-848 group"
tool groups-848-reset kafka-consumer-groups --reset-offsets --group kt-live-848 --topic kt-groups:2 --to-offset 1 --execute
expect_rc 0 "$LABEL"
table_is "kt-live-848 kt-groups 2 1"
tool groups-848-describe kafka-consumer-groups --describe --group kt-live-848
LABEL="--describe of the emptied KIP-848 group"
expect "Consumer group 'kt-live-848' has no active members." "$LABEL"
table_is "kt-live-848 kt-groups 0 ${END[0]} ${END[0]} 0 - - -" "kt-live-848 kt-groups 1 ${END[1]} ${END[1]} 0 - - -" \
  "kt-live-848 kt-groups 2 1 ${END[2]} $((END[2] - 1)) - - -"
ok "after the members leave both groups are Empty; the KIP-848 group's offsets reset and describe"

tool groups-delete kafka-consumer-groups --delete --group kt-classic --group kt-live-848
expect_rc 0 "kafka-consumer-groups --delete"
grep -qE "^Deletion of requested consumer groups \('kt-(classic|live-848)', 'kt-(classic|live-848)'\) was successful\.$" <<<"$OUT" ||
  fail "kafka-consumer-groups --delete of two groups printed:"$'\n'"$ALL"
tool groups-delete-missing kafka-consumer-groups --delete --group kt-classic
expect "* Group 'kt-classic' could not be deleted due to: org.apache.kafka.common.errors.GroupIdNotFoundException: The group id does not exist." "--delete of a deleted group"
tool groups-describe-missing kafka-consumer-groups --describe --group kt-classic
expect "Error: Executing consumer group command failed due to org.apache.kafka.common.errors.GroupIdNotFoundException: Group kt-classic not found." "--describe of a deleted group"
tool groups-list-after kafka-consumer-groups --list
expect_rc 0 "kafka-consumer-groups --list"
# (The console consumer without --group made an empty console-consumer-NNNNN group.)
[[ "$(grep -v '^console-consumer-[0-9]*$' <<<"$OUT")" == "kt-live-classic" ]] ||
  fail "kafka-consumer-groups --list after --delete:"$'\n'"$ALL"
ok "kafka-consumer-groups --delete of a classic and a KIP-848 group; then GroupIdNotFoundException and gone from --list"

# ==== perf tests, kafka-get-offsets, kafka-delete-records ===============================
tool perf-topic kafka-topics --create --topic kt-perf --partitions 3
expect_rc 0 "kafka-topics --create kt-perf"
for acks in all 1; do
  tool "perf-produce-acks-$acks" kafka-producer-perf-test --topic kt-perf --num-records 100000 \
    --record-size 100 --throughput -1 --command-property "acks=$acks"
  expect_rc 0 "kafka-producer-perf-test acks=$acks"
  grep -qE '^100000 records sent, [0-9.]+ records/sec \([0-9.]+ MB/sec\), [0-9.]+ ms avg latency, [0-9.]+ ms max latency, [0-9]+ ms 50th, [0-9]+ ms 95th, [0-9]+ ms 99th, [0-9]+ ms 99.9th\.$' <<<"$OUT" ||
    fail "kafka-producer-perf-test acks=$acks summary:"$'\n'"$ALL"
  ok "kafka-producer-perf-test acks=$acks: $(tail -n 1 <<<"$OUT" | cut -d, -f1-2)"
done
tool perf-offsets kafka-get-offsets --topic kt-perf
expect_rc 0 "kafka-get-offsets kt-perf"
total=0
while IFS=: read -r t p o; do
  [[ "$t" == kt-perf ]] || fail "kafka-get-offsets printed: $OUT"
  total=$((total + o))
done <<<"$OUT"
((total == 200000)) || fail "kt-perf holds $total records, want 200000: $OUT"
ok "kafka-get-offsets: the perf topic's 3 partitions end at offsets summing to 200000"

tool perf-consume kafka-consumer-perf-test --topic kt-perf --num-records 200000 --timeout 60000 --group kt-perf-consumer
expect_rc 0 "kafka-consumer-perf-test"
summary="$(grep -E '^[0-9]{4}-' <<<"$OUT" | tail -n 1)"
[[ "$(cut -d, -f5 <<<"$summary" | tr -d ' ')" == 200000 ]] || fail "kafka-consumer-perf-test summary:"$'\n'"$ALL"
ok "kafka-consumer-perf-test consumed 200000 records ($(cut -d, -f3 <<<"$summary" | tr -d ' ') MB)"

tool offsets-earliest kafka-get-offsets --topic-partitions 'kt-perf:0,kt-groups:1' --time -2
expect_rc 0 "kafka-get-offsets --time -2"
[[ "$OUT" == $'kt-groups:1:0\nkt-perf:0:0' ]] || fail "kafka-get-offsets --time -2:"$'\n'"$ALL"
echo '{"version":1,"partitions":[{"topic":"kt-perf","partition":0,"offset":1000},{"topic":"kt-groups","partition":1,"offset":-1}]}' >"$work/delete.json"
tool delete-records kafka-delete-records --offset-json-file "$work/delete.json"
expect_rc 0 "kafka-delete-records"
expect "Records delete operation completed:" "kafka-delete-records"
expect "partition: kt-perf-0	low_watermark: 1000" "kafka-delete-records"
expect "partition: kt-groups-1	low_watermark: ${END[1]}" "kafka-delete-records"
tool offsets-deleted kafka-get-offsets --topic-partitions 'kt-perf:0,kt-groups:1' --time -2
expect_rc 0 "kafka-get-offsets --time -2 after delete"
[[ "$OUT" == "kt-groups:1:${END[1]}"$'\n'"kt-perf:0:1000" ]] || fail "kafka-get-offsets --time -2 after kafka-delete-records:"$'\n'"$ALL"
tool offsets-by-time kafka-get-offsets --topic kt-groups --time 0
expect_rc 0 "kafka-get-offsets --time 0"
# Partition 1 is empty now: no record at or after time 0, so no line for it.
[[ "$OUT" == $'kt-groups:0:0\nkt-groups:2:0' ]] || fail "kafka-get-offsets --time 0:"$'\n'"$ALL"
ok "kafka-delete-records (an offset, and -1 = the high watermark) moves the log start offsets kafka-get-offsets --time -2 and --time 0 show"

# ==== kafka-acls: no ACLs here; it must fail cleanly
tool acls-list kafka-acls --list
expect_rc 1 "kafka-acls --list"
expect "Error while executing ACL command: org.apache.kafka.common.errors.SecurityDisabledException: No Authorizer is configured on the broker" "kafka-acls --list"
((SECS < 30)) || fail "kafka-acls --list took $SECS s"
tool acls-add kafka-acls --add --allow-principal User:alice --operation Read --topic kt-orders
expect_rc 1 "kafka-acls --add"
expect "SecurityDisabledException: No Authorizer is configured on the broker" "kafka-acls --add"
tool acls-remove kafka-acls --remove --force --allow-principal User:alice --operation Read --topic kt-orders
expect_rc 1 "kafka-acls --remove"
expect "SecurityDisabledException: No Authorizer is configured." "kafka-acls --remove"
ok "kafka-acls --list/--add/--remove fail at once with SecurityDisabledException, as on a Kafka broker without an authorizer"

# ==== kafka-acls against a broker with the StandardAuthorizer (runnel only: the reference
# broker here has no SASL listener), side by side with `runnel acls`
if is_runnel; then
  acl_dir="$(mktemp -d -t runnel-compat-acls-XXXXXX)"
  acl_unset=()
  for v in $(compgen -e | grep '^RUNNEL_' || true); do acl_unset+=(-u "$v"); done
  env "${acl_unset[@]}" RUST_LOG=warn "$RUNNEL_BIN" serve --data-dir "$acl_dir/data" \
    --set metrics.listener= --set listeners=SASL_PLAINTEXT://127.0.0.1:0 \
    --set 'plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" user_alice="alice-secret";' \
    --set authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer \
    --set super.users=User:admin >"$acl_dir/stdout" 2>"$acl_dir/stderr.log" </dev/null &
  BG_PIDS+=($!)
  acl_line=""
  for _ in $(seq 1 300); do
    if [[ "$(wc -l <"$acl_dir/stdout")" -ge 1 ]]; then acl_line="$(head -n 1 "$acl_dir/stdout")"; break; fi
    sleep 0.1
  done
  [[ "$acl_line" == "runnel listening on "* ]] || fail "the authorizer broker did not start: $(tail -5 "$acl_dir/stderr.log")"
  for who in admin alice; do
    printf '%s\n' 'security.protocol=SASL_PLAINTEXT' 'sasl.mechanism=PLAIN' \
      "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"$who\" password=\"$who-secret\";" \
      >"$acl_dir/$who.properties"
  done
  plain_bootstrap="$BOOTSTRAP"
  BOOTSTRAP="${acl_line#runnel listening on }"

  tool acls-authz-add kafka-acls --command-config "$acl_dir/admin.properties" --add \
    --allow-principal User:alice --consumer --topic kt-orders --group kt-billing
  expect_rc 0 "kafka-acls --add --consumer"
  expect 'Adding ACLs for resource `ResourcePattern(resourceType=GROUP, name=kt-billing, patternType=LITERAL)`' "kafka-acls --add --consumer"
  tool acls-authz-list kafka-acls --command-config "$acl_dir/admin.properties" --list --topic kt-orders
  expect_rc 0 "kafka-acls --list"
  expect 'Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=kt-orders, patternType=LITERAL)`:' "kafka-acls --list"
  expect '(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)' "kafka-acls --list"
  expect '(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)' "kafka-acls --list"
  # runnel acls lists the same lines (entry order aside), and kafka-acls sees runnel's.
  ours="$("$RUNNEL_BIN" --bootstrap-server "$BOOTSTRAP" --command-config "$acl_dir/admin.properties" acls list --topic kt-orders)" ||
    fail "runnel acls list failed"
  [[ "$(sort <<<"$ours")" == "$(sort <<<"$OUT")" ]] || fail "runnel acls list and kafka-acls --list differ:"$'\n'"$ours"$'\n----\n'"$OUT"
  "$RUNNEL_BIN" --bootstrap-server "$BOOTSTRAP" --command-config "$acl_dir/admin.properties" acls add \
    --allow-principal User:alice --producer --topic kt-orders >/dev/null || fail "runnel acls add --producer failed"
  tool acls-authz-list2 kafka-acls --command-config "$acl_dir/admin.properties" --list --principal User:alice
  expect_rc 0 "kafka-acls --list --principal"
  expect 'ACLs for principal `User:alice`' "kafka-acls --list --principal"
  expect '(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)' "kafka-acls --list --principal"
  tool acls-authz-denied kafka-acls --command-config "$acl_dir/alice.properties" --add \
    --allow-principal User:alice --operation All --topic '*'
  expect_rc 1 "kafka-acls --add as a user who is not a super user"
  expect "ClusterAuthorizationException" "kafka-acls --add as a user who is not a super user"
  tool acls-authz-remove kafka-acls --command-config "$acl_dir/admin.properties" --remove --force --topic kt-orders
  expect_rc 0 "kafka-acls --remove --force --topic"
  tool acls-authz-list3 kafka-acls --command-config "$acl_dir/admin.properties" --list
  expect_rc 0 "kafka-acls --list after --remove"
  expect_not "name=kt-orders" "kafka-acls --list after --remove"
  expect 'ResourcePattern(resourceType=GROUP, name=kt-billing, patternType=LITERAL)' "kafka-acls --list after --remove"
  BOOTSTRAP="$plain_bootstrap"
  ok "kafka-acls --add/--list/--remove with --command-config (SASL/PLAIN) against the StandardAuthorizer: what runnel acls adds and lists, kafka-acls sees, and a non-super user is refused"
fi

# ==== kafka-transactions: a transaction left open by a transactional producer that was
# killed (kafka-producer-perf-test with one long transaction, kill -9), seen by list,
# describe, describe-producers and find-hanging, then aborted with `abort`: a
# read_committed reader, held at its first offset until then, moves past it.
tool tx-topic kafka-topics --create --topic kt-txn --partitions 1
expect_rc 0 "kafka-topics --create kt-txn"
tool tx-list-empty kafka-transactions list
((SECS < 30)) || fail "kafka-transactions list took $SECS s"
expect_rc 0 "kafka-transactions list"
[[ "$(tr -s ' \t' ' ' <<<"$OUT")" == "TransactionalId Coordinator ProducerId TransactionState " ]] ||
  fail "kafka-transactions list before any transaction:"$'\n'"$ALL"
ok "kafka-transactions list with no transactional producer yet: the header, no rows"

# 50 records/s in one transaction of 10 minutes (its timeout 15); killed once it has written.
KAFKA_HEAP_OPTS="$FAST_JVM -XX:SharedArchiveFile=$cds" "$KT" tool kafka-producer-perf-test \
  --bootstrap-server "$BOOTSTRAP" --topic kt-txn --num-records 1000000 --record-size 20 --throughput 50 \
  --transactional-id kt-tx --transaction-duration-ms 600000 \
  --command-property transaction.timeout.ms=900000 linger.ms=10 \
  >"$work/tx-producer.out" 2>&1 </dev/null &
tx_pid=$!
BG_PIDS+=("$tx_pid")
written=0
for _ in $(seq 1 60); do
  tool tx-offsets kafka-get-offsets --topic kt-txn
  written="$(sed -n 's/^kt-txn:0://p' <<<"$OUT")"
  [[ "${written:-0}" -ge 20 ]] && break
  kill -0 "$tx_pid" 2>/dev/null || fail "the transactional perf test exited:"$'\n'"$(cat "$work/tx-producer.out")"
  sleep 0.5
done
[[ "${written:-0}" -ge 20 ]] || fail "the transactional perf test wrote no records within the wait (kt-txn:0 at '$written')"
kill -KILL "$tx_pid"
wait "$tx_pid" 2>/dev/null || true
tool tx-offsets kafka-get-offsets --topic kt-txn
written="$(sed -n 's/^kt-txn:0://p' <<<"$OUT")"
ok "kafka-producer-perf-test --transactional-id kt-tx wrote $written records in one open transaction, then was killed (SIGKILL)"

tool tx-list kafka-transactions list
expect_rc 0 "kafka-transactions list"
row="$(rows kt-tx)"
[[ "$row" =~ ^kt-tx\ 1\ ([0-9]+)\ Ongoing$ ]] || fail "kafka-transactions list: no 'kt-tx 1 PID Ongoing' row:"$'\n'"$ALL"
tx_producer="${BASH_REMATCH[1]}"
ok "kafka-transactions list: kt-tx, coordinator 1, producer id $tx_producer, Ongoing"

tool tx-describe kafka-transactions describe --transactional-id kt-tx
expect_rc 0 "kafka-transactions describe"
row="$(rows 1)"
read -r _ d_id d_pid _ d_state d_timeout d_start _ d_parts <<<"$row"
[[ "$d_id" == kt-tx && "$d_pid" == "$tx_producer" && "$d_state" == Ongoing && "$d_timeout" == 900000 &&
  "$d_start" =~ ^1[0-9]{12}$ && "$d_parts" == kt-txn-0 ]] ||
  fail "kafka-transactions describe --transactional-id kt-tx:"$'\n'"$ALL"
ok "kafka-transactions describe --transactional-id kt-tx: Ongoing, timeout 900000 ms, a start time, partitions kt-txn-0"

tool tx-producers kafka-transactions describe-producers --topic kt-txn --partition 0
expect_rc 0 "kafka-transactions describe-producers"
row="$(rows "$tx_producer")"
read -r _ p_epoch p_coord p_seq p_ts p_start <<<"$row"
[[ "$p_epoch" =~ ^[0-9]+$ && "$p_seq" =~ ^[0-9]+$ && "$p_ts" =~ ^1[0-9]{12}$ && "$p_start" == 0 ]] ||
  fail "kafka-transactions describe-producers --topic kt-txn --partition 0: no row for producer $tx_producer with its transaction starting at 0:"$'\n'"$ALL"
ok "kafka-transactions describe-producers --topic kt-txn --partition 0: producer $tx_producer, epoch $p_epoch, last sequence $p_seq, coordinator epoch $p_coord, current transaction from offset 0"

# find-hanging: the open transaction is a candidate (--max-transaction-timeout 0), but the
# coordinator still has kt-txn-0 in it (ListTransactions by producer id, then
# DescribeTransactions): not hanging, so only the header, from either scope.
for scope in "--broker-id 1" "--topic kt-txn"; do
  # shellcheck disable=SC2086
  tool "tx-hanging-${scope%% *}" kafka-transactions find-hanging $scope --max-transaction-timeout 0
  expect_rc 0 "kafka-transactions find-hanging $scope"
  [[ "$(tr -s ' \t' ' ' <<<"$OUT")" == "Topic Partition ProducerId ProducerEpoch CoordinatorEpoch StartOffset LastTimestamp Duration(min) " ]] ||
    fail "kafka-transactions find-hanging $scope --max-transaction-timeout 0:"$'\n'"$ALL"
done
ok "kafka-transactions find-hanging --broker-id 1 / --topic kt-txn --max-transaction-timeout 0: none hanging (the coordinator tracks kt-txn-0)"

# A record written after the transaction started, outside it: read_committed stops at the
# LSO (the transaction's first offset) and does not see it yet.
TOOL_IN="$work/tx-plain.txt"
echo "after-the-transaction" >"$TOOL_IN"
tool tx-plain kafka-console-producer --topic kt-txn
TOOL_IN=/dev/null
expect_rc 0 "kafka-console-producer kt-txn"
tool tx-read-held kafka-console-consumer --topic kt-txn --from-beginning --isolation-level read_committed \
  --timeout-ms 3000
expect "Processed a total of 0 messages" "read_committed consumer behind the open transaction"
ok "a read_committed kafka-console-consumer reads nothing: the open transaction holds the LSO at 0"

tool tx-abort kafka-transactions abort --topic kt-txn --partition 0 --start-offset 0
expect_rc 0 "kafka-transactions abort --topic kt-txn --partition 0 --start-offset 0"
tool tx-producers-after kafka-transactions describe-producers --topic kt-txn --partition 0
expect_rc 0 "kafka-transactions describe-producers after the abort"
[[ "$(rows "$tx_producer" | awk '{print $6}')" == None ]] ||
  fail "kafka-transactions describe-producers after abort: producer $tx_producer still has a transaction open:"$'\n'"$ALL"
tool tx-read-past kafka-console-consumer --topic kt-txn --from-beginning --isolation-level read_committed \
  --timeout-ms 5000
[[ "$OUT" == "after-the-transaction" ]] ||
  fail "read_committed kafka-console-consumer after the abort: want only the record written outside the transaction:"$'\n'"$ALL"
expect "Processed a total of 1 messages" "read_committed consumer after the abort"
tool tx-read-all kafka-console-consumer --topic kt-txn --from-beginning --isolation-level read_uncommitted \
  --max-messages "$((written + 1))" --timeout-ms 10000
expect "Processed a total of $((written + 1)) messages" "read_uncommitted consumer after the abort"
ok "kafka-transactions abort --start-offset 0: the producer has no open transaction left (describe-producers: None), and read_committed moves past the aborted records to the one after them (read_uncommitted still reads them)"

echo "kafka tools: $CHECKS checks passed against $TARGET ($CALLS tool runs, $((SECONDS - started)) s)"
