#!/usr/bin/env bash
# The compat suite: real third-party Kafka clients against `runnel serve`: kcat,
# confluent-kafka (and its transactions, confluent_kafka_txn_check.py), kafka-python,
# aiokafka, the Java client (and its transactions, with kill -9 of the broker) and Kafka
# Streams (exactly_once_v2 too), franz-go, Sarama and kafka-go, kafkajs and
# @confluentinc/kafka-javascript, and Apache Kafka's own command-line tools
# (kafka_tools.sh, kafka-transactions among them; kafka_quotas.sh: client quotas with
# kafka-configs and the Java producer); and TLS and SASL with confluent-kafka,
# kafka-python, kcat and the
# Java client (security_check.py); Event Hubs connection strings and ACLs with
# confluent-kafka and the Java client (event_hubs_check.py); the Event Hubs AMQP endpoint
# with the Python, JavaScript and Java Event Hubs SDKs (event_hubs_amqp_check.py,
# js-eventhubs/, java-eventhubs/) and as the emulator's drop-in
# (event_hubs_emulator_check.py); the JavaScript and Java
# Event Hubs blob checkpoint stores against runnel's blob store (js-blob/run.sh,
# java-blob/run.sh).
#   tests/compat/run.sh            # builds the broker (debug) unless RUNNEL_BIN is set
# Needs kcat on PATH, the Python clients from requirements.txt (PYTHON selects the
# interpreter; .ci/run uses a venv under target/), a JDK 17 with Maven for java/ and the
# Kafka tools, Go for go/, Node.js with npm for js/ (each fetches its dependencies from
# Maven Central, the Go module proxy or npm; see js/run.sh for its build needs).
# Each check starts its own broker.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
PYTHON="${PYTHON:-python3}"

if [[ -z "${RUNNEL_BIN:-}" ]]; then
  (cd "$root" && cargo build -p runnel --bin runnel)
  export RUNNEL_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/runnel"
fi

passed=0
failed=0
failures=()
run() {
  local name="$1"
  shift
  echo
  echo "===== compat: $name ====="
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "===== compat: $name FAILED =====" >&2
  fi
}

run kcat bash "$here/kcat.sh"
run confluent-kafka "$PYTHON" "$here/confluent_kafka_check.py"
run confluent-kafka-transactions "$PYTHON" "$here/confluent_kafka_txn_check.py"
run kafka-python "$PYTHON" "$here/kafka_python_check.py"
run aiokafka "$PYTHON" "$here/aiokafka_check.py"
run java-client bash "$here/java/run.sh" client
run kafka-streams bash "$here/java/run.sh" streams
run java-transactions bash "$here/java/run.sh" transactions
run go-clients bash "$here/go/run.sh"
run js-clients bash "$here/js/run.sh"
run js-blob bash "$here/js-blob/run.sh"
run java-blob bash "$here/java-blob/run.sh"
run kafka-tools bash "$here/kafka_tools.sh"
run kafka-quotas bash "$here/kafka_quotas.sh"
run security "$PYTHON" "$here/security_check.py"
run event-hubs "$PYTHON" "$here/event_hubs_check.py"
run event-hubs-amqp "$PYTHON" "$here/event_hubs_amqp_check.py"
run event-hubs-js bash "$here/js-eventhubs/run.sh"
run event-hubs-java bash "$here/java-eventhubs/run.sh"
run event-hubs-emulator "$PYTHON" "$here/event_hubs_emulator_check.py"
run event-hubs-processor "$PYTHON" "$here/event_hubs_processor_check.py"

echo
if ((failed > 0)); then
  echo "compat failures: ${failures[*]}" >&2
fi
echo "compat: $passed passed, $failed failed"
((failed == 0))
