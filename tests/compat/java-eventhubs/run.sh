#!/usr/bin/env bash
# The Azure SDK for Java (azure-messaging-eventhubs from azure-sdk-bom, see pom.xml) and
# kafka-clients against Runnel's Event Hubs AMQP endpoint: EventHubsAmqpCheck.java.
#   tests/compat/java-eventhubs/run.sh
# Starts a throwaway runnel broker (RUNNEL_BIN, see ../lib.sh) with a plain AMQP listener
# on a free port, makes Manage, Send and Listen policies with `runnel sas policy`, and
# passes their connection strings as the emulator's are written
# (Endpoint=sb://127.0.0.1:PORT;...;UseDevelopmentEmulator=true); the SDK takes the port
# from the Endpoint, so no customEndpointAddress is needed.
# Needs java + javac 17 and mvn; the build goes to target/compat-java-eventhubs/
# (git-ignored) and is redone only when the pom or a source changed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "$here/../lib.sh"

command -v java >/dev/null || fail "java not on PATH"
command -v mvn >/dev/null || fail "mvn not on PATH"

work="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/compat-java-eventhubs"
stamp="$work/classpath.txt"
mkdir -p "$work"
if [[ ! -f "$stamp" || -n "$(find "$here/pom.xml" "$here/src" -newer "$stamp" -print -quit)" ]]; then
  t0=$SECONDS
  rm -f "$stamp"
  mvn -B --no-transfer-progress -f "$here/pom.xml" -Dcompat.build.dir="$work/build" \
    compile dependency:build-classpath -Dmdep.outputFile="$stamp.tmp" -Dmdep.includeScope=runtime ||
    fail "the Maven build of the Event Hubs Java check failed"
  mv "$stamp.tmp" "$stamp"
  echo "== maven build: $((SECONDS - t0)) s"
fi
classpath="$work/build/classes:$(cat "$stamp")"

start_broker --set eventhubs.amqp.listener=127.0.0.1:0
amqp=""
for _ in $(seq 1 100); do
  amqp="$(sed -n 's/^runnel amqp on //p' "$BROKER_DIR/stdout")"
  [[ -n "$amqp" ]] && break
  sleep 0.1
done
[[ -n "$amqp" ]] || fail "the broker printed no 'runnel amqp on ADDR' line"
echo "amqp on $amqp"

# A policy's connection string, as the emulator's: its name and primary key, plain AMQP.
policy() {
  local out key
  out="$("$RUNNEL_BIN" sas policy add "$1" --rights "$2" --data-dir "$BROKER_DIR/data")" ||
    fail "runnel sas policy add $1 --rights $2"
  key="$(sed -n 's/^primary:.*SharedAccessKey=\([^;]*\).*/\1/p' <<<"$out")"
  [[ -n "$key" ]] || fail "no primary key in: $out"
  echo "Endpoint=sb://$amqp;SharedAccessKeyName=$1;SharedAccessKey=$key;UseDevelopmentEmulator=true"
}
manage="$(policy RootManageSharedAccessKey Manage)"
send="$(policy SendOnly Send)"
listen="$(policy ListenOnly Listen)"
# The running broker picks up new policies within about 2 s.
sleep 3

# COMPAT_IDLE_SECONDS: how long the idle connection idles (150 s, past two 60 s timeouts);
# COMPAT_REFUSALS: how often each refused link is tried (5).
java -Dcompat.idle.seconds="${COMPAT_IDLE_SECONDS:-150}" -Dcompat.refusals="${COMPAT_REFUSALS:-5}" -cp "$classpath" runnel.compat.eventhubs.EventHubsAmqpCheck "$BOOTSTRAP" "$amqp" \
  "$manage" "$send" "$listen" || fail "EventHubsAmqpCheck failed (its output is above)"
