#!/usr/bin/env bash
# The Go Kafka clients against runnel: franz-go (kgo + kadm), IBM/sarama and
# segmentio/kafka-go. One Go module here (go.mod/go.sum pin the versions); the check
# program (compatcheck, main.go) has one subcommand per client, takes the bootstrap
# address, and exits non-zero on the first check that fails:
#
#   franz          kgo's default producer (idempotent, snappy), codecs, consumers, a
#                  classic group resumed from its commits, and kadm's admin calls
#   franz-kip848   KIP-848 groups (group.protocol=consumer, kgo.ServerSideBalancer):
#                  uniform and range assignors, resumed from their commits; two members
#                  splitting the partitions
#   sarama         default and idempotent SyncProducers, codecs, a ConsumerGroup resumed
#                  from its commits, ClusterAdmin; at Sarama's default protocol version
#                  and at its newest (Sarama has no KIP-848 consumer)
#   kafka-go       the default Writer (acks=0), codecs, Readers, a group Reader resumed
#                  from its commits, Conn, and the Client's admin requests (kafka-go has
#                  no idempotent producer and no KIP-848 consumer)
#   fetch-sessions raw Fetch requests with each KIP-227 session id/epoch combination
#
# Each check runs against its own fresh broker. Usage:
#
#   tests/compat/go/run.sh [CHECK...]           # all checks by default, against runnel
#   tests/compat/go/run.sh --kafka [CHECK...]   # against Apache Kafka (tests/kafka/kafka.sh),
#                                               # to confirm what the checks expect
#
# Needs only Go (1.26+); modules come from the Go module proxy into Go's module cache
# the first time. The binary goes to target/compat-go/ (git-ignored).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "$here/../lib.sh"

against=runnel
if [[ "${1:-}" == "--kafka" ]]; then
  against=kafka
  shift
fi
checks=("$@")
if [[ ${#checks[@]} -eq 0 ]]; then
  checks=(franz franz-kip848 sarama kafka-go fetch-sessions)
fi

command -v go >/dev/null || fail "go not on PATH (Go 1.26+ is needed)"
work="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/compat-go"
mkdir -p "$work"
echo "== $(go version); $(cd "$here" && go list -m -f '{{.Path}} {{.Version}}' github.com/twmb/franz-go github.com/twmb/franz-go/pkg/kadm github.com/IBM/sarama github.com/segmentio/kafka-go | paste -sd, - | sed 's/,/, /g')"
start=$SECONDS
(cd "$here" && go build -mod=readonly -buildvcs=false -o "$work/compatcheck" .) || fail "go build of the Go checks failed"
echo "built $work/compatcheck in $((SECONDS - start)) s"

passed=0
failed=()
if [[ "$against" == kafka ]]; then
  # One Kafka for all checks (it takes ~20 s to start); the checks use fresh names.
  kdir="$(mktemp -d -t runnel-compat-go-kafka-XXXXXX)"
  trap '"$REPO_ROOT/tests/kafka/kafka.sh" stop "$kdir" >/dev/null 2>&1 || true; rm -rf "$kdir"' EXIT
  read -r kport _ < <("$REPO_ROOT/tests/kafka/kafka.sh" start "$kdir") || fail "Apache Kafka did not start"
  echo "Apache Kafka listening on 127.0.0.1:$kport"
  for check in "${checks[@]}"; do
    if "$work/compatcheck" -bootstrap "127.0.0.1:$kport" "$check"; then
      passed=$((passed + 1))
    else
      failed+=("$check")
    fi
  done
else
  for check in "${checks[@]}"; do
    # A subshell per check: its own broker, stopped (log shown on failure) when it ends.
    # Kafka's tests/kafka/kafka.sh runs with group.initial.rebalance.delay.ms=0 too; the
    # metrics listener is off so that parallel brokers do not fight over its port.
    if (
      trap _stop_broker EXIT
      start_broker --set group.initial.rebalance.delay.ms=0 --set metrics.listener=
      "$work/compatcheck" -bootstrap "$BOOTSTRAP" "$check"
    ); then
      passed=$((passed + 1))
    else
      failed+=("$check")
    fi
  done
fi

echo "go clients against $against: ${#checks[@]} checks in $((SECONDS - start)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
  fail "go clients against $against: $passed passed, ${#failed[@]} failed (${failed[*]})"
fi
echo "go clients: $passed passed, 0 failed"
