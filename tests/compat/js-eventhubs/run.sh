#!/usr/bin/env bash
# The JavaScript Event Hubs SDK (@azure/event-hubs, pure JS over rhea) against runnel's
# Event Hubs AMQP endpoint, with kafkajs for the Kafka <-> AMQP part. See
# eventhubs_check.js for the scenarios; it starts its own broker (broker.js) with the
# AMQP listener on a free port and connects with an unchanged emulator-style connection
# string (`Endpoint=sb://127.0.0.1:PORT;...;UseDevelopmentEmulator=true`: plain AMQP,
# the port taken from the Endpoint).
#
#   tests/compat/js-eventhubs/run.sh     # builds nothing: RUNNEL_BIN, or the debug
#                                        # binary under $CARGO_TARGET_DIR or target/
#
# Installs the exact versions in package-lock.json with `npm ci` into node_modules/ here
# (git-ignored), once: a stamp of the lock file and the node version skips it next time.
# Needs node >= 20 with npm.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

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
  t0=$SECONDS
  echo "== npm ci in $here"
  (cd "$here" && env -u npm_config_jobs -u JOBS npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
  echo "$key" >"$stamp"
  echo "== installed in $((SECONDS - t0)) s"
fi
(cd "$here" && node -e '
  console.log(`== @azure/event-hubs ${require("@azure/event-hubs/package.json").version} (@azure/core-amqp ${require("@azure/core-amqp/package.json").version}, rhea ${require("rhea/package.json").version}); kafkajs ${require("kafkajs/package.json").version}; node ${process.version}`);
') || die "the installed clients do not load"

exec node "$here/eventhubs_check.js"
