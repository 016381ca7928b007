#!/usr/bin/env bash
# The JavaScript Event Hubs blob checkpoint store (@azure/eventhubs-checkpointstore-blob
# over @azure/storage-blob) against runnel's blob store (crate blob/). The check itself is
# blob/tests/js_clients.rs, ignored in a plain `cargo test` because it needs these
# packages: this script installs the exact versions in package-lock.json with `npm ci`
# into node_modules/ here (git-ignored), once (a stamp of the lock file and the node
# version skips it next time), then runs that test, which serves the blob store
# in-process on a free loopback port and runs blob_checkpoint_store_check.js against it.
# Needs node 20+ and npm (@azure/storage-blob 12.34.0 declares node >= 22 but runs on 20).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

die() {
  echo "FAIL: $*" >&2
  exit 1
}
command -v node >/dev/null || die "node not on PATH (Node.js 20+)"
command -v npm >/dev/null || die "npm not on PATH"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "node $(node --version) is too old: need 20+"

key="$(cat "$here/package-lock.json" <(node --version) | sha256sum | cut -c1-16)"
stamp="$here/node_modules/.runnel-compat-stamp"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$key" ]]; then
  echo "== npm ci in $here"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false) || die "npm ci failed"
  echo "$key" >"$stamp"
fi
(cd "$here" && node -e '
  console.log(`== @azure/eventhubs-checkpointstore-blob ${require("@azure/eventhubs-checkpointstore-blob/package.json").version}, @azure/storage-blob ${require("@azure/storage-blob/package.json").version}; node ${process.version}`);
') || die "the installed packages do not load"

cd "$root"
cargo test -p runnel-blob --test js_clients -- --include-ignored
