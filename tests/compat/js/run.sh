#!/usr/bin/env bash
# The JavaScript Kafka clients against runnel: kafkajs (pure JS) and
# @confluentinc/kafka-javascript (librdkafka underneath), each check against its own
# throwaway broker. See kafkajs_check.js and confluent_check.js for what they check.
#
#   tests/compat/js/run.sh                        # both checks, a fresh runnel each
#   tests/compat/js/run.sh kafkajs                # one check (kafkajs | confluent)
#   tests/compat/js/run.sh --bootstrap HOST:PORT  # against a broker already running
#   tests/compat/js/run.sh --kafka                # against Apache Kafka (tests/kafka/kafka.sh)
#
# Installs the exact versions in package-lock.json with `npm ci` into node_modules/ here
# (git-ignored), once: a stamp of the lock file and the node version skips it next time,
# and the native build is cached in ~/.cache/runnel/compat-js (JS_COMPAT_CACHE) for the
# next clone (JS_COMPAT_REINSTALL=1 rebuilds).
#
# @confluentinc/kafka-javascript is native. Its install script first tries to download
# a prebuilt binary from GitHub releases (not reachable here; build_from_source skips the
# attempt) and otherwise builds from source with node-gyp: its npm tarball carries the
# librdkafka sources (the version it was released with). The package's own configure
# step passes --install-deps, which downloads OpenSSL, zlib and zstd sources from the
# internet; CKJS_LINKING=dynamic drops that and builds librdkafka against the system's
# libraries instead (the .node file finds its librdkafka.so through an $ORIGIN rpath).
# Debian's own librdkafka-dev (2.0.2 on bookworm) cannot be used: the binding needs
# librdkafka >= 2.4 APIs and fails to compile against it.
# Needs: node >= 20 with its headers (Debian/NodeSource node has them under
# <prefix>/include/node), make, g++, python3 (node-gyp), and the headers of zlib and
# zstd (apt-get install zlib1g-dev libzstd-dev) so librdkafka has the gzip and zstd
# codecs; snappy and lz4 are built into librdkafka.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
compat="$(cd "$here/.." && pwd)"
root="$(cd "$compat/../.." && pwd)"

die() {
  echo "FAIL: $*" >&2
  exit 1
}

bootstrap=""
use_kafka=false
checks=()
while (($# > 0)); do
  case "$1" in
  --bootstrap) bootstrap="${2:?--bootstrap needs HOST:PORT}"; shift 2 ;;
  --kafka) use_kafka=true; shift ;;
  kafkajs | confluent) checks+=("$1"); shift ;;
  *) die "unknown argument '$1' (want kafkajs, confluent, --bootstrap HOST:PORT or --kafka)" ;;
  esac
done
((${#checks[@]} > 0)) || checks=(kafkajs confluent)

# --- prerequisites --------------------------------------------------------------------
command -v node >/dev/null || die "node not on PATH (Node.js 20+)"
command -v npm >/dev/null || die "npm not on PATH"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "node $(node --version) is too old: need 20+"
# What the native build needs; checked only when it is about to run.
check_build_tools() {
  for tool in make g++ python3; do
    command -v "$tool" >/dev/null || die "$tool not on PATH (needed to build @confluentinc/kafka-javascript)"
  done
  for h in zlib.h zstd.h; do
    echo '#include <'"$h"'>' | g++ -fsyntax-only -x c++ - 2>/dev/null ||
      die "<$h> not found: apt-get install zlib1g-dev libzstd-dev (librdkafka's gzip and zstd codecs)"
  done
  # node-gyp needs node's headers: use the ones installed beside node rather than let it
  # download them from nodejs.org.
  node_prefix="$(node -p 'require("path").resolve(process.execPath, "../..")')"
  if [[ -z "${npm_config_nodedir:-}" && -f "$node_prefix/include/node/node_api.h" ]]; then
    export npm_config_nodedir="$node_prefix"
  fi
  [[ -n "${npm_config_nodedir:-}" || -n "$(npm config get nodedir 2>/dev/null | grep -v '^null$' || true)" ]] ||
    die "no node headers at $node_prefix/include/node: set npm_config_nodedir to a node source/headers dir"
}

# --- install --------------------------------------------------------------------------
# The native build takes minutes, so its three products (the .node binding and the two
# librdkafka shared objects it loads through its $ORIGIN/../deps runpath) are kept in a
# cache outside the repo, as tests/kafka/kafka.sh keeps Kafka's jars, keyed by the lock
# file and the node version; with a cache hit, npm ci skips the install scripts and the
# products are copied back.
key="$(cat "$here/package-lock.json" <(node --version) | sha256sum | cut -c1-16)"
stamp="$here/node_modules/.runnel-compat-stamp"
pkg="$here/node_modules/@confluentinc/kafka-javascript"
native="$pkg/build/Release/confluent-kafka-javascript.node"
cache="${JS_COMPAT_CACHE:-$HOME/.cache/runnel/compat-js}/$key"
products=(build/Release/confluent-kafka-javascript.node build/deps/librdkafka.so.1 build/deps/librdkafka++.so.1)
npm_ci() {
  (cd "$here" && env -u npm_config_jobs -u JOBS npm ci --no-audit --no-fund --loglevel=error "$@")
}
if [[ "${JS_COMPAT_REINSTALL:-}" == 1 || ! -f "$stamp" || "$(cat "$stamp")" != "$key" || ! -f "$native" ]]; then
  t0=$SECONDS
  if [[ "${JS_COMPAT_REINSTALL:-}" != 1 && -f "$cache/.complete" ]]; then
    echo "== npm ci in $here, the native build from $cache"
    npm_ci --ignore-scripts || die "npm ci failed"
    for f in "${products[@]}"; do
      mkdir -p "$pkg/$(dirname "$f")"
      cp "$cache/$(basename "$f")" "$pkg/$f"
    done
  else
    check_build_tools
    echo "== npm ci in $here (builds librdkafka and the native binding: minutes)"
    # No npm_config_jobs (npm_ci drops it): the package's gyp files are not safe under a
    # parallel top-level make (the binding races librdkafka's configure step for
    # config.h); librdkafka itself is built with make -j all the same.
    # build_from_source skips the download attempt (npm warns that it does not know the
    # setting but passes it on; without it the download fails and falls back the same).
    CKJS_LINKING=dynamic npm_config_build_from_source=true npm_ci || die "npm ci failed"
    [[ -f "$native" ]] || die "npm ci did not build $native"
    rm -rf "$cache.tmp"
    mkdir -p "$cache.tmp"
    for f in "${products[@]}"; do cp -L "$pkg/$f" "$cache.tmp/"; done
    touch "$cache.tmp/.complete"
    rm -rf "$cache"
    mv "$cache.tmp" "$cache"
  fi
  echo "$key" >"$stamp"
  echo "== installed in $((SECONDS - t0)) s"
fi
(cd "$here" && node -e '
  const k = require("@confluentinc/kafka-javascript");
  console.log(`== kafkajs ${require("kafkajs/package.json").version}; @confluentinc/kafka-javascript ${require("@confluentinc/kafka-javascript/package.json").version} on librdkafka ${k.librdkafkaVersion} (${k.features.join(",")}); node ${process.version}`);
') || die "the installed clients do not load"

# --- the broker(s) ----------------------------------------------------------------------
kafka_dir=""
stop_kafka() {
  if [[ -n "$kafka_dir" ]]; then
    "$root/tests/kafka/kafka.sh" stop "$kafka_dir" >/dev/null 2>&1 || true
    rm -rf "$kafka_dir"
  fi
}
if $use_kafka; then
  [[ -z "$bootstrap" ]] || die "--kafka and --bootstrap exclude each other"
  kafka_dir="$(mktemp -d -t runnel-js-kafka-XXXXXX)"
  trap stop_kafka EXIT
  read -r kafka_port _ < <("$root/tests/kafka/kafka.sh" start "$kafka_dir") || die "Apache Kafka did not start"
  bootstrap="127.0.0.1:$kafka_port"
  echo "== Apache Kafka on $bootstrap"
fi

script_for() {
  case "$1" in
  kafkajs) echo "$here/kafkajs_check.js" ;;
  confluent) echo "$here/confluent_check.js" ;;
  esac
}

passed=0
failed=0
for check in "${checks[@]}"; do
  echo
  echo "===== js: $check ====="
  t0=$SECONDS
  if [[ -n "$bootstrap" ]]; then
    if node "$(script_for "$check")" "$bootstrap"; then
      echo "  ok: $check against $bootstrap ($((SECONDS - t0)) s)"
      passed=$((passed + 1))
    else
      echo "FAIL: $check against $bootstrap" >&2
      failed=$((failed + 1))
    fi
    continue
  fi
  # A fresh runnel per check, in a subshell so lib.sh's exit trap stops it (and shows its
  # log on failure). The group setting matches tests/kafka/kafka.sh's Kafka.
  if (
    # shellcheck source=../lib.sh
    source "$compat/lib.sh"
    start_broker --set group.initial.rebalance.delay.ms=0
    node "$(script_for "$check")" "$BOOTSTRAP" || fail "$check check failed against runnel at $BOOTSTRAP"
    ok "$check against runnel ($((SECONDS - t0)) s)"
  ); then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done

echo
echo "js: $passed passed, $failed failed"
((failed == 0))
