#!/usr/bin/env bash
# The Java Event Hubs blob checkpoint store (azure-messaging-eventhubs-checkpointstore-blob
# from Maven Central, version in pom.xml) against runnel's blob store (crate blob/). The
# check is blob/tests/java_clients.rs, ignored in a plain `cargo test` because it needs
# this Maven build: the script compiles BlobCheckpointStoreCheck.java and resolves its
# runtime classpath into target/compat-java-blob/ (redone only when the pom or a source
# changed), then runs that test with JAVA_BLOB_CLASSPATH set; it serves the blob store
# in-process on a free loopback port. Needs java + javac 17 and mvn.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

die() {
  echo "FAIL: $*" >&2
  exit 1
}
command -v java >/dev/null || die "java not on PATH"
command -v mvn >/dev/null || die "mvn not on PATH"

work="${CARGO_TARGET_DIR:-$root/target}/compat-java-blob"
stamp="$work/classpath.txt"
mkdir -p "$work"
if [[ ! -f "$stamp" || -n "$(find "$here/pom.xml" "$here/src" -newer "$stamp" -print -quit)" ]]; then
  t0=$SECONDS
  rm -f "$stamp"
  mvn -B --no-transfer-progress -f "$here/pom.xml" -Dcompat.build.dir="$work/build" \
    compile dependency:build-classpath -Dmdep.outputFile="$stamp.tmp" -Dmdep.includeScope=runtime ||
    die "the Maven build of the Java blob check failed"
  mv "$stamp.tmp" "$stamp"
  echo "== maven build: $((SECONDS - t0)) s"
fi
export JAVA_BLOB_CLASSPATH="$work/build/classes:$(cat "$stamp")"

cd "$root"
cargo test -p runnel-blob --test java_clients -- --include-ignored
