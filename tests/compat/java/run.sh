#!/usr/bin/env bash
# The Apache Kafka Java client (kafka-clients) and Kafka Streams, from Maven Central
# (versions in pom.xml), against a broker:
#   tests/compat/java/run.sh client [BOOTSTRAP]            # JavaClientCheck.java
#   tests/compat/java/run.sh streams [BOOTSTRAP [--eos=works|refused]]  # StreamsCheck.java
#   tests/compat/java/run.sh transactions [BOOTSTRAP]      # TransactionsCheck.java
#   tests/compat/java/run.sh security SSL SASL_PLAINTEXT SASL_SSL CA_PEM  # SecurityCheck.java
#   tests/compat/java/run.sh eventhubs eventhubs|acls ARGS...  # EventHubsCheck.java
# Without BOOTSTRAP each starts a throwaway runnel broker (RUNNEL_BIN, see ../lib.sh), and
# the Streams check also runs its exactly_once_v2 app, which must count exactly
# (--eos=works); the transactions check starts (and kill -9s and restarts) its own broker.
# With BOOTSTRAP the check runs against that broker (e.g. Apache Kafka, to prove it).
# Needs java + javac 17 and mvn. Maven resolves into its default ~/.m2 (a cold resolve
# fetches about 100 MB, rocksdbjni being 73 MB of it); the build goes to
# target/compat-java/ (git-ignored) and is redone only when the pom or a source changed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "$here/../lib.sh"

case "${1:-}" in
client) main=runnel.compat.JavaClientCheck ;;
streams) main=runnel.compat.StreamsCheck ;;
transactions) main=runnel.compat.TransactionsCheck ;;
# Run by ../security_check.py, which starts the secured broker and passes its listeners.
security) main=runnel.compat.SecurityCheck ;;
# Run by ../event_hubs_check.py: connection strings and ACLs.
eventhubs) main=runnel.compat.EventHubsCheck ;;
*) fail "usage: $0 client|streams|transactions|security|eventhubs [BOOTSTRAP [ARGS...]]" ;;
esac
shift
args=("$@")

command -v java >/dev/null || fail "java not on PATH"
command -v mvn >/dev/null || fail "mvn not on PATH"

work="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/compat-java"
stamp="$work/classpath.txt"
mkdir -p "$work"
if [[ ! -f "$stamp" || -n "$(find "$here/pom.xml" "$here/src" -newer "$stamp" -print -quit)" ]]; then
  t0=$SECONDS
  rm -f "$stamp"
  mvn -B --no-transfer-progress -f "$here/pom.xml" -Dcompat.build.dir="$work/build" \
    compile dependency:build-classpath -Dmdep.outputFile="$stamp.tmp" -Dmdep.includeScope=runtime ||
    fail "the Maven build of the Java checks failed"
  mv "$stamp.tmp" "$stamp"
  echo "== maven build: $((SECONDS - t0)) s"
fi
classpath="$work/build/classes:$(cat "$stamp")"

if ((${#args[@]} == 0)) && [[ "$main" == runnel.compat.TransactionsCheck ]]; then
  # It kill -9s and restarts its broker on the same data dir, so it runs the broker itself.
  [[ -x "$RUNNEL_BIN" ]] || fail "broker binary $RUNNEL_BIN missing (cargo build -p runnel, or set RUNNEL_BIN)"
  args=(--runnel "$RUNNEL_BIN")
elif ((${#args[@]} == 0)); then
  start_broker
  args=("$BOOTSTRAP")
  if [[ "$main" == runnel.compat.StreamsCheck ]]; then
    args+=(--eos=works)
  fi
fi
java -Dcompat.state.dir="$work/streams-state" -cp "$classpath" "$main" "${args[@]}" ||
  fail "$main ${args[*]} failed (its output is above)"
