#!/usr/bin/env bash
# The official Apache Kafka Java client (kafka-clients) against runnel; see
# src/main/java/runnel/compat/JavaClientCheck.java for what it checks. Builds the check
# with plain javac (no Maven), starts a throwaway broker, runs the check against it.
#
# Where the client jar comes from, and why: CI's `rust` machine kind reaches PyPI and
# Debian but not Maven Central, and Debian does not package kafka-clients. The PyPI wheel
# atoti-server-kafka==0.9.16 ships, as _atoti_server_kafka/__resources__/plugin.jar, the
# Apache-licensed Kafka Java client 3.9.2 unshaded (org/apache/kafka/..., plus lz4-java),
# so we download that wheel with pip (pinned by sha256) and put plugin.jar on the
# classpath. The rest comes from Debian: slf4j-api + slf4j-simple (logging; the client
# needs slf4j-api), zstd-jni and snappy-java (the zstd and snappy codecs; their native
# libraries come with them). No Maven: the check is one source file, compiled with javac
# against that classpath (so it follows the kafka-clients 3.9 API).
#
# Needs java + javac (17+; apt-get install default-jdk-headless), the Debian packages
# libslf4j-java libzstd-jni-java libsnappy-java, and PYTHON (default python3) with pip
# and access to PyPI the first time. Everything lands in target/compat-java/ (git-ignored).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "$here/../lib.sh"
PYTHON="${PYTHON:-python3}"

command -v java >/dev/null || fail "java not on PATH (apt-get install default-jdk-headless)"
command -v javac >/dev/null || fail "javac not on PATH (apt-get install default-jdk-headless)"

work="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/compat-java"
mkdir -p "$work"

# --- the kafka-clients classes, from the PyPI wheel ---------------------------------
wheel_req="atoti-server-kafka==0.9.16"
wheel_sha256="6f8988f0f10dd39a184f73d627df56bf256d92a690265f72475a15e132f056a0"
kafka_jar="$work/plugin.jar"
if [[ ! -f "$kafka_jar" ]]; then
  echo "== downloading $wheel_req from PyPI (for the kafka-clients jar inside it)"
  echo "$wheel_req --hash=sha256:$wheel_sha256" >"$work/wheel-requirements.txt"
  "$PYTHON" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
    --require-hashes -r "$work/wheel-requirements.txt" -d "$work/wheel" ||
    fail "pip download of $wheel_req failed"
  wheel="$(ls "$work"/wheel/atoti_server_kafka-0.9.16-*.whl)"
  "$PYTHON" - "$wheel" "$kafka_jar.tmp" <<'PY' || fail "could not extract plugin.jar from the wheel"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl, whl.open("_atoti_server_kafka/__resources__/plugin.jar") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  mv "$kafka_jar.tmp" "$kafka_jar"
fi
kafka_version="$("$PYTHON" - "$kafka_jar" <<'PY'
import sys, zipfile
props = zipfile.ZipFile(sys.argv[1]).read("kafka/kafka-version.properties").decode()
print(dict(l.split("=", 1) for l in props.splitlines() if "=" in l)["version"])
PY
)" || fail "$kafka_jar has no kafka/kafka-version.properties: not the Kafka client?"

# --- the Debian jars ----------------------------------------------------------------
classpath="$kafka_jar"
for j in slf4j-api slf4j-simple zstd-jni snappy-java; do
  [[ -f "/usr/share/java/$j.jar" ]] ||
    fail "/usr/share/java/$j.jar missing (apt-get install libslf4j-java libzstd-jni-java libsnappy-java)"
  classpath="$classpath:/usr/share/java/$j.jar"
done

# --- compile the check --------------------------------------------------------------
echo "== $(java -version 2>&1 | head -n 1); kafka-clients $kafka_version from $wheel_req"
rm -rf "$work/classes"
javac --release 17 -encoding UTF-8 -d "$work/classes" -cp "$classpath" \
  "$here/src/main/java/runnel/compat/JavaClientCheck.java" || fail "javac of the Java check failed"
cp "$here/simplelogger.properties" "$work/classes/"
classpath="$work/classes:$classpath"

# --- run it against a throwaway broker ------------------------------------------------
start_broker
log="$BROKER_DIR/java-client.log"
set +e
java -cp "$classpath" runnel.compat.JavaClientCheck "$BOOTSTRAP" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
((rc == 0)) || fail "the Java check failed (exit code $rc; its log is above)"
# The default producer is idempotent: it must have got a producer id (InitProducerId).
grep -q "ProducerId set to [0-9]* with epoch" "$log" ||
  fail "the default (idempotent) producer never logged 'ProducerId set to ...': no InitProducerId?"
ok "the default producer got a producer id: $(grep -o "ProducerId set to [0-9]* with epoch [0-9]*" "$log" | head -n 1)"
echo "java-client: all checks passed"
