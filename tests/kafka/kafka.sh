#!/usr/bin/env bash
# Apache Kafka as the reference broker, fetched from Maven Central and cached outside the
# repo. Nothing of Kafka is committed.
#
#   tests/kafka/kafka.sh fetch                 # resolve the jars (once), print the libs dir
#   tests/kafka/kafka.sh start DIR [PORT]      # a single-node KRaft broker in DIR, in the
#                                              # background; prints "PORT PID" when ready;
#                                              # a DIR it ran in before is restarted with
#                                              # its data and ports
#   tests/kafka/kafka.sh stop DIR              # stop the broker started in DIR
#   tests/kafka/kafka.sh tool NAME ARGS...     # kafka-topics, kafka-configs, ... (below)
#   tests/kafka/kafka.sh java CLASS ARGS...    # any main class on Kafka's classpath
#   tests/kafka/kafka.sh classpath             # the classpath, for javac/java users
#
# KAFKA_VERSION (default below) picks the release; RUNNEL_KAFKA_CACHE (default
# ~/.cache/runnel/kafka) is where the jars go. For `tool` and `java`, KAFKA_HEAP_OPTS
# (default -Xmx1g) and KAFKA_OPTS are extra JVM options. Extra broker settings for `start`:
# KAFKA_SET="flush.messages=1 num.partitions=3" (space-separated name=value).
# The broker's settings are matched to Runnel's where that is fair: one node,
# num.partitions=1, offsets.topic.replication.factor=1, auto.create.topics.enable=true,
# group.initial.rebalance.delay.ms=0 (both brokers default to 3000 ms; the tests start
# Runnel with 0 too, so that groups form at once).
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
cache="${RUNNEL_KAFKA_CACHE:-$HOME/.cache/runnel/kafka}/$KAFKA_VERSION"
libs="$cache/libs"

die() {
  echo "kafka.sh: $*" >&2
  exit 1
}

fetch() {
  if [[ -f "$libs/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not on PATH"
  mkdir -p "$cache"
  # kafka_2.13 is the broker (kafka.Kafka, StorageTool); kafka-tools holds the command
  # line tools; slf4j 2 with log4j-slf4j2-impl routes the clients' slf4j logging to log4j2.
  cat >"$cache/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>runnel.reference</groupId>
  <artifactId>apache-kafka</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-server</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.25.5</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$libs.tmp"
  echo "kafka.sh: fetching Apache Kafka $KAFKA_VERSION from Maven Central into $cache" >&2
  mvn -q -B -f "$cache/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs.tmp" -Dmdep.includeScope=runtime >&2 ||
    die "maven could not resolve Kafka $KAFKA_VERSION"
  # Quiet by default: warnings and errors to stderr.
  cat >"$libs.tmp/log4j2.properties" <<'EOF'
status = error
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${env:KAFKA_LOG_LEVEL:-warn}
rootLogger.appenderRef.console.ref = STDERR
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
EOF
  touch "$libs.tmp/.complete"
  rm -rf "$libs"
  mv "$libs.tmp" "$libs"
}

# Jars only (log4j2.properties is named by -Dlog4j2.configurationFile): class data
# sharing archives (-XX:SharedArchiveFile, see KAFKA_OPTS) refuse a directory on the path.
classpath() {
  fetch
  local cp=""
  local j
  for j in "$libs"/*.jar; do
    cp="${cp:+$cp:}$j"
  done
  echo "$cp"
}

java_main() {
  local cls="$1"
  shift
  local cp
  cp="$(classpath)"
  # shellcheck disable=SC2086
  exec java ${KAFKA_HEAP_OPTS:--Xmx1g} ${KAFKA_OPTS:-} \
    -Dlog4j2.configurationFile="$libs/log4j2.properties" -cp "$cp" "$cls" "$@"
}

tool_class() {
  case "$1" in
  kafka-topics) echo org.apache.kafka.tools.TopicCommand ;;
  kafka-configs) echo org.apache.kafka.tools.ConfigCommand ;;
  kafka-consumer-groups) echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  kafka-acls) echo org.apache.kafka.tools.AclCommand ;;
  kafka-transactions) echo org.apache.kafka.tools.TransactionsCommand ;;
  kafka-producer-perf-test) echo org.apache.kafka.tools.ProducerPerformance ;;
  kafka-consumer-perf-test) echo org.apache.kafka.tools.ConsumerPerformance ;;
  kafka-console-producer) echo org.apache.kafka.tools.ConsoleProducer ;;
  kafka-console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  kafka-get-offsets) echo org.apache.kafka.tools.GetOffsetShell ;;
  kafka-delete-records) echo org.apache.kafka.tools.DeleteRecordsCommand ;;
  kafka-broker-api-versions) echo org.apache.kafka.tools.BrokerApiVersionsCommand ;;
  kafka-dump-log) echo org.apache.kafka.tools.DumpLogSegments ;;
  kafka-storage) echo kafka.tools.StorageTool ;;
  *) die "unknown tool $1" ;;
  esac
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  local dir="${1:?usage: kafka.sh start DIR [PORT]}"
  local port="${2:-}"
  local controller_port=""
  fetch
  mkdir -p "$dir/data"
  dir="$(cd "$dir" && pwd)"
  # A directory Kafka already ran in is restarted with its data and ports, not formatted.
  local restart=false
  if [[ -f "$dir/data/meta.properties" && -f "$dir/kafka.controller_port" ]]; then
    restart=true
    controller_port="$(cat "$dir/kafka.controller_port")"
    [[ -n "$port" ]] || port="$(cat "$dir/kafka.port")"
  fi
  [[ -n "$port" ]] || port="$(free_port)"
  [[ -n "$controller_port" ]] || controller_port="$(free_port)"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=50
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  local kv
  for kv in ${KAFKA_SET:-}; do
    echo "$kv" >>"$dir/server.properties"
  done
  local cp
  cp="$(classpath)"
  local heap="${KAFKA_HEAP_OPTS:--Xmx1g -Xms1g}"
  # shellcheck disable=SC2086
  $restart || java -cp "$cp" -Dlog4j2.configurationFile="$libs/log4j2.properties" kafka.tools.StorageTool \
    format -t "$(java -cp "$cp" -Dlog4j2.configurationFile="$libs/log4j2.properties" kafka.tools.StorageTool random-uuid)" \
    -c "$dir/server.properties" >"$dir/format.log" 2>&1 || {
    cat "$dir/format.log" >&2
    die "storage format failed"
  }
  # shellcheck disable=SC2086
  nohup java $heap -Dlog4j2.configurationFile="$libs/log4j2.properties" -cp "$cp" \
    kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/kafka.pid"
  echo "$port" >"$dir/kafka.port"
  echo "$controller_port" >"$dir/kafka.controller_port"
  local i
  for i in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 50 "$dir/kafka.log" >&2
      die "Kafka exited during start (log: $dir/kafka.log)"
    fi
    # KafkaRaftServer logs "Kafka Server started" (at info, which the config keeps for
    # that logger) once the listener is up and the broker is registered.
    if grep -q "Kafka Server started" "$dir/kafka.log" 2>/dev/null; then
      echo "$port $pid"
      return 0
    fi
    sleep 0.2
  done
  die "Kafka did not start within 120 s (log: $dir/kafka.log)"
}

stop() {
  local dir="${1:?usage: kafka.sh stop DIR}"
  [[ -f "$dir/kafka.pid" ]] || return 0
  local pid
  pid="$(cat "$dir/kafka.pid")"
  kill "$pid" 2>/dev/null || true
  # A controlled shutdown of many partitions takes a while: up to 60 s, then kill -9.
  local i
  for i in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/kafka.pid"
}

cmd="${1:-}"
shift || true
case "$cmd" in
fetch)
  fetch
  echo "$libs"
  ;;
classpath) classpath ;;
start) start "$@" ;;
stop) stop "$@" ;;
tool)
  name="${1:?usage: kafka.sh tool NAME ARGS...}"
  shift
  java_main "$(tool_class "$name")" "$@"
  ;;
java) java_main "$@" ;;
*)
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
