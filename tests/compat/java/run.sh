#!/usr/bin/env bash
# The official Apache Kafka Java client (org.apache.kafka:kafka-clients) against runnel;
# see src/main/java/runnel/compat/JavaClientCheck.java for what it checks. Builds the
# check with Maven (`mvn -q -B package` into this directory's target/, git-ignored),
# starts a throwaway broker, runs the check against it.
# Needs java (17+) and mvn on PATH, and Maven Central (or a mirror in ~/.m2/settings.xml).
# Not yet listed in ../run.sh: the `rust` machine kind cannot reach Maven Central.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "$here/../lib.sh"

command -v java >/dev/null || fail "java not on PATH (apt-get install default-jdk-headless)"
command -v mvn >/dev/null || fail "mvn not on PATH (apt-get install maven)"
echo "== $(java -version 2>&1 | head -n 1); $(mvn -v 2>/dev/null | head -n 1 | sed 's/\x1b\[[0-9;]*m//g')"
(cd "$here" && mvn -q -B package) || fail "mvn package of the Java check failed (see above)"
jar="$here/target/java-client-check.jar"
[[ -f "$jar" && -d "$here/target/lib" ]] || fail "mvn package did not produce $jar and target/lib/"

start_broker
log="$BROKER_DIR/java-client.log"
java -cp "$jar:$here/target/lib/*" runnel.compat.JavaClientCheck "$BOOTSTRAP" 2>&1 | tee "$log"
# The default producer is idempotent: it must have got a producer id (InitProducerId).
grep -q "ProducerId set to [0-9]* with epoch" "$log" ||
  fail "the default (idempotent) producer never logged 'ProducerId set to ...': no InitProducerId?"
ok "the default producer got a producer id: $(grep -o "ProducerId set to [0-9]* with epoch [0-9]*" "$log" | head -n 1)"
echo "java-client: all checks passed"
