#!/usr/bin/env bash
# Transactional against non-transactional produce (issue 16): benches/transactions.rs
# (librdkafka) against this tree's release broker, then, with KAFKA=1, against Apache
# Kafka (tests/kafka/kafka.sh, a single KRaft node) at its defaults and with
# flush.messages=1 (an fsync per append, as Runnel's acks=all). Each broker gets the
# same interleaved rounds of the four modes (idempotent; transactional with 1, 10 and
# 100 batches per transaction). After Runnel's run the segment files are read back to
# check what a "batch" was: every data batch must hold exactly BATCH_RECORDS records,
# and each transaction must have left one commit marker per partition.
#
# Usage: benches/transactions.sh            Runnel only (about 3 minutes)
#        KAFKA=1 benches/transactions.sh    and Apache Kafka (twice)
#        ROUNDS=5 BATCHES=1000 BATCH_RECORDS=128 RECORD_SIZE=1024 PARTITIONS=1
#        PIPELINE=1 ...                     wait for acks only before a commit
#        APPEND=0 ...                       do not touch BENCHMARKS.md
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
ROUNDS=${ROUNDS:-5}
BATCHES=${BATCHES:-1000}
BATCH_RECORDS=${BATCH_RECORDS:-128}
RECORD_SIZE=${RECORD_SIZE:-1024}
PARTITIONS=${PARTITIONS:-1}
PIPELINE=${PIPELINE:-0}
KAFKA=${KAFKA:-0}
APPEND=${APPEND:-1}
PORT=${PORT:-19492}
KAFKA_PORT=${KAFKA_PORT:-19493}
log() { echo "[txn $(date -u +%H:%M:%S)] $*" >&2; }
out=$root/target/txn-bench/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  [[ -d $out/kafka ]] && "$root/tests/kafka/kafka.sh" stop "$out/kafka" >/dev/null 2>&1
  [[ -d $out/kafka-flush ]] && "$root/tests/kafka/kafka.sh" stop "$out/kafka-flush" >/dev/null 2>&1
  rm -rf "$out/data" "$out/kafka" "$out/kafka-flush"
}
trap cleanup EXIT

log "building (release)"
cargo build --release -p runnel --bin runnel -q || exit 1
RUNNEL=${CARGO_TARGET_DIR:-$root/target}/release/runnel
BENCH=$(cargo bench --bench transactions --no-run --message-format=json -q 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    try: m = json.loads(l)
    except Exception: continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "transactions" and m.get("executable"):
        print(m["executable"])')
[[ -x $BENCH ]] || { log "could not build benches/transactions.rs"; exit 1; }

args=(--rounds "$ROUNDS" --batches "$BATCHES" --batch-records "$BATCH_RECORDS"
  --record-size "$RECORD_SIZE" --partitions "$PARTITIONS")
[[ $PIPELINE == 1 ]] && args+=(--pipeline)

# The fsync cost of the moment, on the disk the brokers write to.
mkdir -p "$out/data"
dsync_ms() {
  dd if=/dev/zero of="$out/dsync.tmp" bs=16k count=200 oflag=dsync 2>&1 |
    awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i-1); printf "%.3f\n", s / 200 * 1000 }'
  rm -f "$out/dsync.tmp"
}
dsync_before=$(dsync_ms)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "16 KiB O_DSYNC write: $dsync_before ms; load $load_before"

"$RUNNEL" serve --data-dir "$out/data" --listen "127.0.0.1:$PORT" >"$out/runnel.out" 2>"$out/runnel.err" &
rpid=$!
pids+=("$rpid")
for _ in $(seq 1 600); do
  grep -q "runnel listening on" "$out/runnel.out" 2>/dev/null && break
  kill -0 $rpid 2>/dev/null || { log "runnel did not start: $(tail -3 "$out/runnel.err")"; exit 1; }
  sleep 0.05
done
echo "transactions --brokers 127.0.0.1:$PORT ${args[*]}" >>"$out/commands.txt"
log "runnel: transactions ${args[*]}"
"$BENCH" --brokers "127.0.0.1:$PORT" "${args[@]}" --json "$out/runnel.json" >"$out/runnel.md" 2>"$out/runnel.err.bench" ||
  { log "bench failed against runnel: $(tail -3 "$out/runnel.err.bench")"; exit 1; }
cat "$out/runnel.md"

# Read the segment files back: data batches and their record counts, control batches.
check=$(python3 - "$out/data" "$BATCH_RECORDS" <<'PY'
import os, struct, sys, collections
data, want = sys.argv[1], int(sys.argv[2])
per_mode = collections.defaultdict(lambda: [0, 0, collections.Counter()])  # data, control, sizes
for d in sorted(os.listdir(data)):
    full = os.path.join(data, d)
    if not d.startswith("txnbench-") or not os.path.isdir(full):
        continue
    mode = d.split("-")[1]
    for f in sorted(os.listdir(full)):
        if not f.endswith(".log"):
            continue
        b = open(os.path.join(full, f), "rb").read()
        i = 0
        while i + 61 <= len(b):
            length = struct.unpack_from(">i", b, i + 8)[0]
            if length <= 0:
                break
            attrs = struct.unpack_from(">h", b, i + 21)[0]
            count = struct.unpack_from(">i", b, i + 57)[0]
            m = per_mode[mode]
            if attrs & 0x20:
                m[1] += 1
            else:
                m[0] += 1
                m[2][count] += 1
            i += 12 + length
for mode, (n, c, sizes) in sorted(per_mode.items()):
    ok = "ok" if set(sizes) == {want} else "NOT all %d" % want
    print("%s: %d data batches (records per batch: %s, %s), %d control batches" %
          (mode, n, dict(sizes), ok, c))
PY
)
log "segment check:"$'\n'"$check"
dsync_after=$(dsync_ms)
log "16 KiB O_DSYNC write after: $dsync_after ms"
kill $rpid 2>/dev/null; wait $rpid 2>/dev/null

kafka_md=""
if [[ $KAFKA == 1 ]]; then
  for k in kafka kafka-flush; do
    set_=""
    [[ $k == kafka-flush ]] && set_="flush.messages=1"
    started=$(KAFKA_SET="$set_" "$root/tests/kafka/kafka.sh" start "$out/$k" "$KAFKA_PORT" 2>"$out/$k.start.err") ||
      { log "Apache Kafka did not start: $(tail -3 "$out/$k.start.err")"; continue; }
    log "Apache Kafka ($k${set_:+, $set_}): transactions ${args[*]}"
    echo "KAFKA_SET=\"$set_\" tests/kafka/kafka.sh start DIR $KAFKA_PORT; transactions --brokers 127.0.0.1:$KAFKA_PORT ${args[*]}" >>"$out/commands.txt"
    "$BENCH" --brokers "127.0.0.1:$KAFKA_PORT" "${args[@]}" --json "$out/$k.json" >"$out/$k.md" 2>"$out/$k.err.bench" ||
      log "bench failed against $k: $(tail -3 "$out/$k.err.bench")"
    cat "$out/$k.md"
    desc="at its defaults (no fsync)"
    [[ -n $set_ ]] && desc="with $set_ (an fsync per append)"
    kafka_md+=$'\n'"Apache Kafka ${KAFKA_VERSION:-4.4.0} $desc, same rounds:"$'\n\n'"$(cat "$out/$k.md")"$'\n'
    "$root/tests/kafka/kafka.sh" stop "$out/$k" >/dev/null 2>&1
  done
fi

cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
commit=$(git -C "$root" rev-parse --short HEAD)
mode_text="each batch waits for its acknowledgement before the next is sent"
[[ $PIPELINE == 1 ]] && mode_text="batches pipelined (5 in flight), acknowledgements awaited only before a commit"
entry=$(cat <<MD

### $(date -u '+%Y-%m-%d %H:%M') UTC, benches/transactions.sh (commit $commit)

Machine: $(nproc) vCPUs ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), data on
$(df "$out" | awk 'NR==2 {print $1}'); load average at the start $load_before; one 16 KiB \`oflag=dsync\` write
$dsync_before ms before, $dsync_after ms after. librdkafka (benches/transactions.rs), acks=all,
idempotent; a batch is $BATCH_RECORDS records of $RECORD_SIZE B to one partition (librdkafka's
\`batch.num.messages\`, \`linger.ms\` 10 s: one batch per produce request), $mode_text;
$BATCHES batches per run over $PARTITIONS partition(s); $ROUNDS rounds, the modes interleaved.
MB/s = 10^6 B of record values.

$(cat "$out/runnel.md")

Segment check (the topics' .log files read back):

\`\`\`
$check
\`\`\`
$kafka_md
Command: \`benches/transactions.sh\` (ROUNDS=$ROUNDS BATCHES=$BATCHES BATCH_RECORDS=$BATCH_RECORDS RECORD_SIZE=$RECORD_SIZE PARTITIONS=$PARTITIONS PIPELINE=$PIPELINE KAFKA=$KAFKA), that is
\`cargo bench --bench transactions -- --brokers HOST:PORT ${args[*]}\`; every run's figures are in target/txn-bench/.
MD
)
echo "$entry" >"$out/entry.md"
if [[ $APPEND == 1 ]]; then
  echo "$entry" >>"$root/BENCHMARKS.md"
  log "appended to BENCHMARKS.md"
fi
log "done: $out"
