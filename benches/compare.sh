#!/usr/bin/env bash
# Workloads W1-W7 of the performance issue, run in one go against Runnel, Apache Kafka
# (a single KRaft node from tests/kafka/kafka.sh, its defaults), a second peer broker
# (tansu with memory storage, when installed) and the machine's physical references
# (iperf3 over loopback, dd to the data disk), with two independent clients: `runnel
# perf` (our Rust client) and benches/rdkafka_perf.rs (librdkafka). Prints each figure
# with its ratio to the peers and to the physical reference, and appends a dated entry
# to BENCHMARKS.md. Kafka does not fsync by default, so W3 and W5 run against Kafka twice:
# at its default and with flush.messages=1 (an fsync per append, as Runnel's acks=all).
#
# Usage: benches/compare.sh            full run (about 10 minutes)
#        QUICK=1 benches/compare.sh    small counts, to check the script
#        APPEND=0 ...                  do not touch BENCHMARKS.md
#        KAFKA=0 ...                   leave Apache Kafka out
#        IDLE_ONLY=1 ...               only W6 and W7 (idle partitions, idle connections)
#        AB_BASE=PATH ...              A/B: W1 and W2 only, the runnel broker at PATH ("before")
#                                      against this tree's ("after"), interleaved rounds
# Settings (environment): TANSU_BIN (default /work/cache/tansu/bin/tansu, else `tansu`
# on PATH), W1_RECORDS (default 1000000), W3_RECORDS (1000000), W4_SECONDS (10),
# W6_TOPICS (1000), W7_CONNECTIONS (10000), DATA_DIR (default target/compare-data, on
# the disk dd measures). A/B mode: AB_ROUNDS (default 3), AB_BASE_LABEL (how the entry
# names the base, e.g. its commit; default the path). Clients are this tree's in both.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
QUICK=${QUICK:-0}
APPEND=${APPEND:-1}
if [[ $QUICK == 1 ]]; then
  : "${W1_RECORDS:=50000}" "${W3_RECORDS:=20000}" "${W4_SECONDS:=3}" "${W6_TOPICS:=50}" "${W7_CONNECTIONS:=500}"
fi
W1_RECORDS=${W1_RECORDS:-1000000}
W3_RECORDS=${W3_RECORDS:-1000000}
W4_SECONDS=${W4_SECONDS:-10}
W6_TOPICS=${W6_TOPICS:-1000}
W7_CONNECTIONS=${W7_CONNECTIONS:-10000}
DATA_DIR=${DATA_DIR:-$root/target/compare-data}
RUNNEL_PORT=${RUNNEL_PORT:-19092}
PEER_PORT=${PEER_PORT:-29092}
# Below the ephemeral range (32768-60999): W7's 10,000 client sockets take local ports
# there, and one of them on Kafka's port stopped it from binding.
KAFKA_PORT=${KAFKA_PORT:-19192}
KAFKA=${KAFKA:-1}
IDLE_ONLY=${IDLE_ONLY:-0}
IPERF_PORT=${IPERF_PORT:-15201}
AB_BASE=${AB_BASE:-}
AB_ROUNDS=${AB_ROUNDS:-3}
if [[ -n $AB_BASE ]]; then
  [[ -x $AB_BASE ]] || { echo "AB_BASE=$AB_BASE is not an executable runnel binary" >&2; exit 1; }
  AB_BASE=$(realpath "$AB_BASE")
fi

out=$root/target/compare/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
rm -rf "$DATA_DIR"
mkdir -p "$DATA_DIR"
log() { echo "[compare $(date -u +%H:%M:%S)] $*" >&2; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT

# The system Python starts fastest (a pyenv shim costs half a second per call).
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
# JSON field from a file: jget FILE a.b.c (prints "nan" when missing).
jget() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
try:
    v = json.load(open(sys.argv[1]))
    for k in sys.argv[2].split('.'):
        v = v[k]
    print(v if v is not None else "nan")
except Exception:
    print("nan")
EOF
}
# Arithmetic with awk: calc 'EXPR' (nan-safe: prints nan on a bad operand).
# A missing figure ("nan", or empty) in EXPR gives nan: awk would read a bare nan as 0.
calc() {
  if [[ $1 == *nan* ]]; then echo nan; return; fi
  awk "BEGIN { r = $1; if (r != r) print \"nan\"; else printf \"%.6g\\n\", r }" 2>/dev/null || echo nan
}
fmt() { awk -v v="$1" -v d="${2:-1}" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else printf "%.*f\n", d, v }'; }
ratio() { # ratio A B -> "1.23x" or n/a
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2fx\n", a / b }'
}
pct() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.0f%%\n", 100 * a / b }'
}
rss_mb() { awk '/VmRSS/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo nan; }

# --- build ---------------------------------------------------------------------------
log "building (release)"
cargo build --release -p runnel --bin runnel -q || exit 1
RUNNEL=${CARGO_TARGET_DIR:-$root/target}/release/runnel
RDK=$(cargo bench --bench rdkafka_perf --no-run --message-format=json -q 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    try: m = json.loads(l)
    except Exception: continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "rdkafka_perf" and m.get("executable"):
        print(m["executable"])')
[[ -x $RDK ]] || { log "could not build benches/rdkafka_perf.rs"; exit 1; }

TANSU=${TANSU_BIN:-/work/cache/tansu/bin/tansu}
[[ -x $TANSU ]] || TANSU=$(command -v tansu || true)

# --- the machine ---------------------------------------------------------------------
nproc_=$(nproc)
mem_gib=$(free -g | awk '/Mem:/ {print $2}')
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
kernel=$(uname -r)
disk=$(df "$DATA_DIR" | awk 'NR==2 {print $1}')
fstype=$(df -T "$DATA_DIR" | awk 'NR==2 {print $2}')
log "machine: nproc=$nproc_ mem=${mem_gib}GiB cpu=$cpu kernel=$kernel data=$disk ($fstype)"

# --- physical references -------------------------------------------------------------
# (Not in A/B mode: it compares two brokers on the same machine.)
if [[ -z $AB_BASE ]]; then
# Guest memory is not pre-touched: this VM hands freed memory back to the host (virtio
# balloon free page reporting), so pages touched and freed go cold again, and handing
# back many GB stalled the VM's fsyncs for ~500 ms at a time for a minute afterwards
# (BENCHMARKS.md, 2026-11-24).
if ! command -v iperf3 >/dev/null; then
  log "iperf3 missing; trying apt-get install iperf3"
  (apt-get install -y -q iperf3 >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q iperf3 >/dev/null 2>&1; }) || true
fi
iperf_mbs=nan
if command -v iperf3 >/dev/null; then
  iperf3 -s -1 -p "$IPERF_PORT" >/dev/null 2>&1 &
  pids+=("$!")
  sleep 0.5
  iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t 5 -J >"$out/iperf3.json" 2>/dev/null
  bps=$(jget "$out/iperf3.json" end.sum_received.bits_per_second)
  iperf_mbs=$(calc "$bps / 8 / 1e6")
  log "iperf3 loopback: $(fmt "$(calc "$bps / 1e9")" 1) Gbit/s = $(fmt "$iperf_mbs" 0) MB/s"
fi
dd_rate() { # dd_rate ARGS... -> MB/s
  dd if=/dev/zero "$@" 2>&1 | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i-1); printf "%.1f\n", $1 / s / 1e6 }'
}
ddf=$DATA_DIR/dd.tmp
w3_bytes=$((W3_RECORDS * 1024))
w3_mib=$(((w3_bytes + 1048575) / 1048576))
dd_cache=$(dd_rate of="$ddf" bs=1M count=1024); rm -f "$ddf"; sync
dd_sync=$(dd_rate of="$ddf" bs=1M count="$w3_mib" conv=fdatasync); rm -f "$ddf"; sync
dsync_ms=$(dd if=/dev/zero of="$ddf" bs=16k count=200 oflag=dsync 2>&1 |
  awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i-1); printf "%.3f\n", s / 200 * 1000 }')
rm -f "$ddf"
log "dd: page cache $dd_cache MB/s; fdatasync ($w3_mib MiB) $dd_sync MB/s; 16 KiB O_DSYNC write $dsync_ms ms"
fi

# --- brokers -------------------------------------------------------------------------
# start_runnel DIR PORT LOG -> sets BROKER_PID, STARTUP_S (the broker is BROKER_BIN,
# default this tree's; A/B mode sets it per run)
start_runnel() {
  local dir=$1 port=$2 logf=$3 t0
  t0=$(date +%s.%N)
  "${BROKER_BIN:-$RUNNEL}" serve --data-dir "$dir" --listen "127.0.0.1:$port" >"$logf.out" 2>"$logf.err" &
  BROKER_PID=$!
  pids+=("$BROKER_PID")
  for _ in $(seq 1 1200); do
    if grep -q "runnel listening on" "$logf.out" 2>/dev/null; then
      STARTUP_S=$(calc "$(date +%s.%N) - $t0")
      return 0
    fi
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.01
  done
  log "runnel did not start: $(tail -5 "$logf.err")"
  STARTUP_S=nan
  return 1
}
wait_port() { # wait_port PORT PID
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
PEER_PID=
start_peer() {
  [[ -n $TANSU && -x $TANSU ]] || return 1
  "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$PEER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PEER_PORT" \
    --storage-engine memory://tansu/ \
    >"$out/peer.out" 2>"$out/peer.err" &
  PEER_PID=$!
  pids+=("$PEER_PID")
  wait_port "$PEER_PORT" "$PEER_PID" || { log "peer did not start: $(tail -5 "$out/peer.err")"; PEER_PID=; return 1; }
  sleep 1
}

# Apache Kafka: start_kafka NAME [SETTINGS...] -> sets KAFKA_PID (empty if it failed).
KAFKA_PID=
start_kafka() {
  local name=$1
  shift
  KAFKA_PID=
  [[ $KAFKA == 1 ]] || return 1
  local started
  started=$(KAFKA_SET="$*" "$root/tests/kafka/kafka.sh" start "$DATA_DIR/$name" "$KAFKA_PORT" 2>"$out/$name.start.err") ||
    { log "Kafka ($name) did not start: $(tail -3 "$out/$name.start.err")"; return 1; }
  KAFKA_PID=${started#* }
  pids+=("$KAFKA_PID")
  echo "KAFKA_SET=\"$*\" tests/kafka/kafka.sh start DIR $KAFKA_PORT" >>"$out/commands.txt"
}
stop_kafka() {
  [[ -n $KAFKA_PID ]] || return 0
  "$root/tests/kafka/kafka.sh" stop "$DATA_DIR/$1"
  KAFKA_PID=
}
# Peak RSS of a process so far (VmHWM), in MB.
hwm_mb() { awk '/VmHWM/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo nan; }

# One run of a workload, each client: run NAME CLIENT BROKER ARGS...; JSON in $out/NAME.json
run_perf() {
  local name=$1 bootstrap=$2
  shift 2
  log "$name: runnel perf $*"
  echo "runnel --bootstrap-server $bootstrap --output json perf $*" >>"$out/commands.txt"
  timeout 600 "$RUNNEL" --bootstrap-server "$bootstrap" --output json perf "$@" >"$out/$name.json" 2>"$out/$name.err" ||
    log "$name failed: $(tail -3 "$out/$name.err")"
}
run_rdk() {
  local name=$1 bootstrap=$2
  shift 2
  log "$name: rdkafka_perf $*"
  echo "rdkafka_perf --brokers $bootstrap $*" >>"$out/commands.txt"
  timeout 600 "$RDK" --brokers "$bootstrap" "$@" >"$out/$name.json" 2>"$out/$name.err" ||
    log "$name failed: $(tail -3 "$out/$name.err")"
}

runnel_bs=127.0.0.1:$RUNNEL_PORT
peer_bs=127.0.0.1:$PEER_PORT
# batch.size 1000000 is librdkafka's default (and what rdkafka_performance used for the
# peer figure in the issue); Kafka's Java default, 16384, is shown as W1-16k.
W1="--partitions 8 --record-size 1024 --acks 1 --batch-size 1000000 --num-records $W1_RECORDS"
W1S="--partitions 8 --record-size 1024 --acks 1 --batch-size 16384 --num-records $((W1_RECORDS / 2))"
W4="--partitions 8 --record-size 1024 --rate 5000 --duration $W4_SECONDS --linger-ms 0"

# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo nan; }
# with_cpu PID NAME CMD...: run CMD and record PID's CPU seconds during it in NAME.cpu.
with_cpu() {
  local pid=$1 name=$2
  shift 2
  local c0 c1
  c0=$(cpu_s "$pid")
  "$@"
  c1=$(cpu_s "$pid")
  if [[ $c0 == nan || $c1 == nan ]]; then echo nan; else calc "$c1 - $c0"; fi >"$out/$name.cpu"
}

# Runs W1, W2 and W4 against one broker with both clients: suite PREFIX BOOTSTRAP PID
suite() {
  local p=$1 bs=$2 pid=$3
  # W1/W2 with runnel perf on topic w1-rp, with librdkafka on w1-rk. The broker's CPU
  # during W1 is recorded too: throughput is shared with the client on 2 vCPUs, CPU
  # per GB is the broker's own cost.
  with_cpu "$pid" "$p-w1-rp" run_perf "$p-w1-rp" "$bs" produce --topic w1-rp $W1
  with_cpu "$pid" "$p-w1-rk" run_rdk "$p-w1-rk" "$bs" produce --topic w1-rk $W1
  run_perf "$p-w1s-rp" "$bs" produce --topic w1s-rp $W1S
  run_rdk "$p-w1s-rk" "$bs" produce --topic w1s-rk $W1S
  sync
  run_perf "$p-w2-rp" "$bs" consume --topic w1-rp
  run_rdk "$p-w2-rk" "$bs" consume --topic w1-rk
  run_perf "$p-w2t-rp" "$bs" consume --topic w1-rp --fetch-max-wait-ms 10
  run_rdk "$p-w2t-rk" "$bs" consume --topic w1-rk -X fetch.wait.max.ms=10
  run_perf "$p-w4-rp" "$bs" e2e --topic w4-rp $W4 --acks 1
  run_rdk "$p-w4-rk" "$bs" e2e --topic w4-rk $W4 --acks 1
}

# --- A/B mode: W1 and W2 on a base broker and on this tree's, interleaved -------------
# Same clients (this tree's `runnel perf` and rdkafka_perf), a fresh broker and data dir
# per run. Rounds alternate which side goes first (B A, A B, B A, ...) so a drift in the
# machine's load falls on both sides alike.
if [[ -n $AB_BASE ]]; then
  : >"$out/commands.txt"
  cur_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  [[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || cur_rev="$cur_rev with uncommitted changes"
  AB_BASE_LABEL=${AB_BASE_LABEL:-$AB_BASE}
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  ab_run() { # ab_run before|after ROUND
    local side=$1 n=$2 p="ab-$1-$2" dir="$DATA_DIR/ab-$1-$2"
    if [[ $side == before ]]; then BROKER_BIN=$AB_BASE; else BROKER_BIN=$RUNNEL; fi
    log "round $n, $side: $BROKER_BIN"
    if start_runnel "$dir" "$RUNNEL_PORT" "$out/$p"; then
      with_cpu "$BROKER_PID" "$p-w1-rp" run_perf "$p-w1-rp" "$runnel_bs" produce --topic w1-rp $W1
      with_cpu "$BROKER_PID" "$p-w1-rk" run_rdk "$p-w1-rk" "$runnel_bs" produce --topic w1-rk $W1
      sync
      with_cpu "$BROKER_PID" "$p-w2-rp" run_perf "$p-w2-rp" "$runnel_bs" consume --topic w1-rp
      with_cpu "$BROKER_PID" "$p-w2-rk" run_rdk "$p-w2-rk" "$runnel_bs" consume --topic w1-rk
      kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null
    fi
    rm -rf "$dir"
    BROKER_BIN=
  }
  for n in $(seq 1 "$AB_ROUNDS"); do
    if ((n % 2 == 1)); then ab_run before "$n"; ab_run after "$n"; else ab_run after "$n"; ab_run before "$n"; fi
  done
  load1=$(cut -d' ' -f1-3 /proc/loadavg)
  # Per-round figures and each side's median (min-max); MB = 10^6 bytes of record values.
  "$PY" - "$out" "$AB_ROUNDS" "$W1_RECORDS" >"$out/ab-table.md" <<'EOF'
import json, os, statistics, sys
out, rounds, records = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
gb = records * 1024 / 1e9
NOISE = 0.05
def fig(side, n, w, c, what):
    base = os.path.join(out, f"ab-{side}-{n}-{w}-{c}")
    try:
        j = json.load(open(base + ".json"))
        if not j.get("records") or j.get("errors"):
            return None
        if what == "mbs":
            return float(j["mb_per_sec"])
        return float(open(base + ".cpu").read()) / gb
    except Exception:
        return None
rows = [("W1", "mbs", "W1 produce, acks=1 (MB/s)"), ("W2", "mbs", "W2 consume (MB/s)"),
        ("W1", "cpu", "W1 broker CPU-s per GB"), ("W2", "cpu", "W2 broker CPU-s per GB")]
clients = [("rp", "runnel perf"), ("rk", "librdkafka")]
f = lambda v, d=1: "n/a" if v is None else f"{v:.{d}f}"
cols = [(w, what, c, f"{w} {'MB/s' if what == 'mbs' else 'CPU-s/GB'} {cn}") for w, what, _ in rows for c, cn in clients]
print("| round | broker | " + " | ".join(h for *_, h in cols) + " |")
print("|---|---|" + "---|" * len(cols))
for n in range(1, rounds + 1):
    for side in (("before", "after") if n % 2 else ("after", "before")):
        vals = [f(fig(side, n, w.lower(), c, what), 1 if what == "mbs" else 2) for w, what, c, _ in cols]
        print(f"| {n} | {side} | " + " | ".join(vals) + " |")
print()
print(f"Medians over {rounds} rounds (min-max). Worse by more than {NOISE:.0%} on the median is flagged; "
      "spread is (max - min) / median of each side.")
print()
print("| figure | client | before | after | after / before | spread before, after | reading |")
print("|---|---|---|---|---|---|---|")
for w, what, label in rows:
    for c, cn in clients:
        side = {}
        for s in ("before", "after"):
            v = [x for x in (fig(s, n, w.lower(), c, what) for n in range(1, rounds + 1)) if x is not None]
            side[s] = (statistics.median(v), min(v), max(v), len(v)) if v else None
        d = 1 if what == "mbs" else 2
        cell = lambda t: "n/a" if t is None else f"{t[0]:.{d}f} ({t[1]:.{d}f}-{t[2]:.{d}f})" + ("" if t[3] == rounds else f", {t[3]} of {rounds} runs")
        b, a = side["before"], side["after"]
        if b is None or a is None or b[0] == 0:
            r, spread, reading = "n/a", "n/a", "no figure"
        else:
            ratio = a[0] / b[0]
            r = f"{ratio:.3f}x"
            spread = f"{(b[2] - b[1]) / b[0]:.0%}, {(a[2] - a[1]) / a[0]:.0%}"
            worse = ratio < 1 - NOISE if what == "mbs" else ratio > 1 + NOISE
            better = ratio > 1 + NOISE if what == "mbs" else ratio < 1 - NOISE
            overlap = not (a[2] < b[1] or b[2] < a[1])
            reading = ("**worse**" if worse else "better" if better else f"within ±{NOISE:.0%}") + \
                ("; ranges overlap" if overlap else "; ranges apart")
        print(f"| {label} | {cn} | {cell(b)} | {cell(a)} | {r} | {spread} | {reading} |")
EOF
  echo
  cat "$out/ab-table.md"
  echo
  echo "raw results: $out"
  if [[ $APPEND == 1 ]]; then
    {
      echo
      echo "### $(date -u +%Y-%m-%d\ %H:%M) UTC, benches/compare.sh A/B (AB_BASE, $AB_ROUNDS rounds)"
      echo
      echo "Machine: nproc=$nproc_, ${mem_gib} GiB RAM, $cpu, kernel $kernel, data on $disk ($fstype);"
      echo "load average $load0 at the start, $load1 at the end (other work on the machine)."
      echo "Before: \`$AB_BASE_LABEL\`. After: this tree, $cur_rev. Both release builds; the clients"
      echo "(\`runnel perf\` and \`rdkafka_perf\`) are the after tree's in every run. Each run is a fresh"
      echo "broker and data directory: W1 with each client ($W1_RECORDS records of 1 KiB), then W2 reading"
      echo "each client's topic back; broker CPU-seconds (user + system, \`/proc/PID/stat\`) per GB"
      echo "of record values. Rounds alternate which side runs first."
      echo
      cat "$out/ab-table.md"
      echo
      echo "Command (\`rdkafka_perf\` is \`cargo bench --bench rdkafka_perf --\`):"
      echo
      echo '```sh'
      echo "AB_BASE=<before>/release/runnel AB_ROUNDS=$AB_ROUNDS$([[ $W1_RECORDS != 1000000 ]] && echo " W1_RECORDS=$W1_RECORDS") benches/compare.sh"
      echo "# each run:"
      echo "runnel serve --data-dir DIR --listen 127.0.0.1:$RUNNEL_PORT"
      awk '!seen[$0]++' "$out/commands.txt"
      echo '```'
    } >>"$root/BENCHMARKS.md"
    log "appended to BENCHMARKS.md"
  fi
  exit 0
fi

: >"$out/commands.txt"
kafka_ok=0
peer_ok=0
kafka_bs=127.0.0.1:$KAFKA_PORT
if [[ $IDLE_ONLY != 1 ]]; then
log "starting runnel"
start_runnel "$DATA_DIR/runnel" "$RUNNEL_PORT" "$out/runnel" || exit 1
suite runnel "$runnel_bs" "$BROKER_PID"
# W3: acks=all (fsynced), 4 producers. W5: W4 with acks=all.
durable() { # durable PREFIX BOOTSTRAP
  run_perf "$1-w3-rp" "$2" produce --topic w3-rp --partitions 8 --record-size 1024 --acks all --batch-size 1000000 --producers 4 --num-records "$W3_RECORDS"
  run_rdk "$1-w3-rk" "$2" produce --topic w3-rk --partitions 8 --record-size 1024 --acks all --batch-size 1000000 --num-records "$W3_RECORDS"
  run_perf "$1-w5-rp" "$2" e2e --topic w5-rp $W4 --acks all
  run_rdk "$1-w5-rk" "$2" e2e --topic w5-rk $W4 --acks all
}
durable runnel "$runnel_bs"
echo "$(hwm_mb "$BROKER_PID")" >"$out/runnel.rss"
kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null

if start_kafka kafka; then
  kafka_ok=1
  log "Apache Kafka (pid $KAFKA_PID, defaults)"
  suite kafka "$kafka_bs" "$KAFKA_PID"
  durable kafka "$kafka_bs"
  echo "$(hwm_mb "$KAFKA_PID")" >"$out/kafka.rss"
  stop_kafka kafka
  # The same durability as Runnel's acks=all: an fsync for every append.
  if start_kafka kafka-flush flush.messages=1; then
    log "Apache Kafka (pid $KAFKA_PID, flush.messages=1)"
    durable kafka-flush "$kafka_bs"
    stop_kafka kafka-flush
  fi
else
  log "Apache Kafka not available (KAFKA=0, or tests/kafka/kafka.sh could not start it)"
fi

if start_peer; then
  peer_ok=1
  log "peer: $TANSU (pid $PEER_PID)"
  suite peer "$peer_bs" "$PEER_PID"
  echo "$(hwm_mb "$PEER_PID")" >"$out/peer.rss"
  kill "$PEER_PID"; wait "$PEER_PID" 2>/dev/null
else
  log "peer not available (no tansu binary at ${TANSU_BIN:-/work/cache/tansu/bin/tansu} or it did not start); reporting Runnel and the physical references only"
fi
fi # IDLE_ONLY

# --- W6: 10,000 idle partitions ------------------------------------------------------
w6dir=$DATA_DIR/w6
log "W6: $W6_TOPICS topics x 10 partitions"
start_runnel "$w6dir" "$RUNNEL_PORT" "$out/w6" || exit 1
w6_fresh_s=$STARTUP_S
rss_before=$(rss_mb "$BROKER_PID")
t0=$(date +%s.%N)
seq 1 "$W6_TOPICS" | xargs -P 4 -I{} "$RUNNEL" --bootstrap-server "$runnel_bs" topics create "w6-{}" --partitions 10 >/dev/null 2>>"$out/w6-create.err"
w6_create_s=$(calc "$(date +%s.%N) - $t0")
echo "seq 1 $W6_TOPICS | xargs -P 4 -I{} runnel topics create w6-{} --partitions 10" >>"$out/commands.txt"
w6_parts=$(find "$w6dir" -maxdepth 1 -type d -name 'w6-*' | wc -l)
sleep 5
w6_rss=$(rss_mb "$BROKER_PID")
kill -TERM "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null
start_runnel "$w6dir" "$RUNNEL_PORT" "$out/w6-clean" || true
w6_clean_s=$STARTUP_S
sleep 2
w6_rss_restart=$(rss_mb "$BROKER_PID")
kill -KILL "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null
start_runnel "$w6dir" "$RUNNEL_PORT" "$out/w6-crash" || true
w6_crash_s=$STARTUP_S
kill -TERM "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null
log "W6: $w6_parts partition dirs; RSS $w6_rss MB (before topics $rss_before MB); start clean ${w6_clean_s}s, after kill -9 ${w6_crash_s}s"

# W6 on Apache Kafka: the same topics, then a controlled restart and one after kill -9
# (start-up counts until Kafka logs "Kafka Server started", after loading its logs).
kw6_parts=nan kw6_rss=nan kw6_clean_s=nan kw6_crash_s=nan
# kafka_start_s NAME: start Kafka in NAME's directory; KAFKA_START_S is the seconds it took.
kafka_start_s() {
  local t0
  t0=$(date +%s.%N)
  if start_kafka "$1"; then KAFKA_START_S=$(calc "$(date +%s.%N) - $t0"); else KAFKA_START_S=nan; fi
}
if [[ $KAFKA == 1 ]] && start_kafka kafka-w6; then
  log "W6 on Apache Kafka"
  seq 1 "$W6_TOPICS" | xargs -P 4 -I{} "$RUNNEL" --bootstrap-server "$kafka_bs" topics create "w6-{}" --partitions 10 >/dev/null 2>>"$out/kafka-w6-create.err"
  # Kafka's broker creates the log directories as it applies the metadata log, after
  # CreateTopics has answered: wait for all of them (up to 5 minutes), then 5 s more.
  for _ in $(seq 1 300); do
    kw6_parts=$(find "$DATA_DIR/kafka-w6/data" -maxdepth 1 -type d -name 'w6-*' | wc -l)
    ((kw6_parts >= W6_TOPICS * 10)) && break
    sleep 1
  done
  sleep 5
  kw6_rss=$(rss_mb "$KAFKA_PID")
  stop_kafka kafka-w6
  kafka_start_s kafka-w6
  kw6_clean_s=$KAFKA_START_S
  if [[ -n $KAFKA_PID ]]; then
    kill -KILL "$KAFKA_PID"; wait "$KAFKA_PID" 2>/dev/null
    KAFKA_PID=
    kafka_start_s kafka-w6
    kw6_crash_s=$KAFKA_START_S
    stop_kafka kafka-w6
  fi
  log "W6 on Kafka: $kw6_parts partition dirs; RSS $kw6_rss MB; start clean ${kw6_clean_s}s, after kill -9 ${kw6_crash_s}s"
fi

# --- W7: 10,000 idle connections -----------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
start_runnel "$DATA_DIR/w7" "$RUNNEL_PORT" "$out/w7" || exit 1
w7_rss_before=$(rss_mb "$BROKER_PID")
"$RDK" connections --brokers "$runnel_bs" --count "$W7_CONNECTIONS" --hold 600 >"$out/w7.json" 2>"$out/w7.err" &
w7_client=$!
pids+=("$w7_client")
echo "rdkafka_perf connections --brokers $runnel_bs --count $W7_CONNECTIONS --hold 600" >>"$out/commands.txt"
for _ in $(seq 1 1200); do [[ -s $out/w7.json ]] && break; sleep 0.1; done
sleep 2
w7_conns=$(jget "$out/w7.json" connections)
w7_rss=$(rss_mb "$BROKER_PID")
kill "$w7_client" 2>/dev/null; wait "$w7_client" 2>/dev/null
kill -TERM "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null
log "W7: $w7_conns connections; RSS $w7_rss MB (idle broker $w7_rss_before MB)"

kw7_conns=nan kw7_rss=nan
if [[ $KAFKA == 1 ]] && start_kafka kafka-w7; then
  "$RDK" connections --brokers "$kafka_bs" --count "$W7_CONNECTIONS" --hold 600 >"$out/w7-kafka.json" 2>"$out/w7-kafka.err" &
  w7_client=$!
  pids+=("$w7_client")
  for _ in $(seq 1 1200); do [[ -s $out/w7-kafka.json ]] && break; sleep 0.1; done
  sleep 2
  kw7_conns=$(jget "$out/w7-kafka.json" connections)
  kw7_rss=$(rss_mb "$KAFKA_PID")
  kill "$w7_client" 2>/dev/null; wait "$w7_client" 2>/dev/null
  stop_kafka kafka-w7
  log "W7 on Kafka: $kw7_conns connections; RSS $kw7_rss MB"
fi

# --- the table -----------------------------------------------------------------------
# Flatten every run's JSON once into "run field value" lines.
"$PY" - "$out" >"$out/flat.txt" <<'EOF'
import glob, json, os, sys
def walk(prefix, v, run):
    if isinstance(v, dict):
        for k, x in v.items():
            walk(f"{prefix}.{k}" if prefix else k, x, run)
    elif v is not None and not isinstance(v, (list, str)):
        print(run, prefix, v)
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    run = os.path.basename(f)[:-5]
    try:
        walk("", json.load(open(f)), run)
    except Exception:
        pass
EOF
g() { # g RUN FIELD: a figure of a run, n/a when missing or when the run failed outright
  awk -v r="$1" -v f="$2" '
    $1 == r && $2 == "records" { rec = $3 }
    $1 == r && $2 == f { val = $3 }
    END { if (rec == "" || rec == 0 || val == "") print "nan"; else print val }' "$out/flat.txt"
}
verdict() { # verdict OK_EXPR DETAIL (a missing figure in OK_EXPR is no verdict, not a pass)
  if [[ $1 == *nan* ]]; then echo "n/a (no figure)"; return; fi
  if [[ $(awk "BEGIN { print (($1) ? 1 : 0) }" 2>/dev/null) == 1 ]]; then echo "met"; else echo "**missed**: $2"; fi
}
isnum() { [[ $1 != nan && -n $1 ]]; }
table=$out/table.md
# kf RUN FIELD: a Kafka figure (nan when Kafka was left out).
kf() { if [[ $kafka_ok == 1 ]]; then g "$1" "$2"; else echo nan; fi; }
pf() { if [[ $peer_ok == 1 ]]; then g "$1" "$2"; else echo nan; fi; }
cname_of() { [[ $1 == rp ]] && echo "runnel perf" || echo "librdkafka"; }
{
  echo "Targets and verdicts are the performance issue's, against the peer (tansu); Apache Kafka is the reference beside it."
  echo
  echo "| W | workload | client | Runnel | Apache Kafka | Runnel / Kafka | peer (tansu) | Runnel / peer | physical ref | Runnel / physical | target | verdict |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for c in rp rk; do
    cname=$(cname_of $c)
    r=$(g "runnel-w1-$c" mb_per_sec); k=$(kf "kafka-w1-$c" mb_per_sec); p=$(pf "peer-w1-$c" mb_per_sec)
    v1=$(verdict "$r >= 2 * $p" "$(ratio "$r" "$p") of peer (2x wanted)")
    if ! isnum "$p"; then v1="peer n/a"; fi
    v1b=$(verdict "$r >= 0.3 * $iperf_mbs" "$(pct "$r" "$iperf_mbs") of iperf3 (30% wanted)")
    echo "| W1 | produce 1 KiB, acks=1, 8 partitions, 1 producer, max rate, batch.size 1000000 (MB/s) | $cname | $(fmt "$r") | $(fmt "$k") | $(ratio "$r" "$k") | $(fmt "$p") | $(ratio "$r" "$p") | iperf3 $(fmt "$iperf_mbs" 0) | $(pct "$r" "$iperf_mbs") | ≥ 2× peer; ≥ 30% iperf3 | $v1; $v1b |"
  done
  for c in rp rk; do
    cname=$(cname_of $c)
    r=$(g "runnel-w1s-$c" mb_per_sec); k=$(kf "kafka-w1s-$c" mb_per_sec); p=$(pf "peer-w1s-$c" mb_per_sec)
    echo "| W1-16k | W1 with batch.size 16384 (Kafka's Java default) (MB/s) | $cname | $(fmt "$r") | $(fmt "$k") | $(ratio "$r" "$k") | $(fmt "$p") | $(ratio "$r" "$p") | iperf3 $(fmt "$iperf_mbs" 0) | $(pct "$r" "$iperf_mbs") | (context) | – |"
  done
  w1_gb=$(calc "$W1_RECORDS * 1024 / 1e9")
  per_gb() { local v; v=$(cat "$1" 2>/dev/null || echo nan); if isnum "$v"; then calc "$v / $w1_gb"; else echo nan; fi; }
  for c in rp rk; do
    cname=$(cname_of $c)
    rc=$(per_gb "$out/runnel-w1-$c.cpu")
    kc=$([[ $kafka_ok == 1 ]] && per_gb "$out/kafka-w1-$c.cpu" || echo nan)
    pc=$([[ $peer_ok == 1 ]] && per_gb "$out/peer-w1-$c.cpu" || echo nan)
    echo "| W1 CPU | broker CPU-seconds per GB produced in W1 (lower is better) | $cname | $(fmt "$rc" 2) | $(fmt "$kc" 2) | Kafka uses $(ratio "$kc" "$rc") | $(fmt "$pc" 2) | peer uses $(ratio "$pc" "$rc") | – | – | (context) | – |"
  done
  for c in rp rk; do
    cname=$(cname_of $c)
    r=$(g "runnel-w2-$c" mb_per_sec)
    kd=$(kf "kafka-w2-$c" mb_per_sec); kt=$(kf "kafka-w2t-$c" mb_per_sec)
    pd=$(pf "peer-w2-$c" mb_per_sec); pt=$(pf "peer-w2t-$c" mb_per_sec)
    best() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan") print b; else if (b == "nan") print a; else print (a > b ? a : b) }'; }
    k=$(best "$kd" "$kt"); p=$(best "$pd" "$pt")
    v=$(verdict "$r >= 3 * $p" "$(ratio "$r" "$p") of peer's best (3x wanted)")
    if ! isnum "$p"; then v="peer n/a"; fi
    vb=$(verdict "$r >= 0.3 * $iperf_mbs" "$(pct "$r" "$iperf_mbs") of iperf3 (30% wanted)")
    echo "| W2 | consume W1's data, 1 consumer, client defaults (MB/s) | $cname | $(fmt "$r") (fetch.wait.max.ms=10: $(fmt "$(g "runnel-w2t-$c" mb_per_sec)")) | defaults $(fmt "$kd"), fetch.wait.max.ms=10: $(fmt "$kt") | $(ratio "$r" "$k") of best | defaults $(fmt "$pd"), fetch.wait.max.ms=10: $(fmt "$pt") | $(ratio "$r" "$p") of best | iperf3 $(fmt "$iperf_mbs" 0) | $(pct "$r" "$iperf_mbs") | ≥ 3× peer's best; ≥ 30% iperf3 | $v; $vb |"
  done
  for c in rp rk; do
    cname=$(cname_of $c)
    [[ $c == rp ]] && what="4 producers" || what="1 producer"
    r=$(g "runnel-w3-$c" mb_per_sec); kd=$(kf "kafka-w3-$c" mb_per_sec); kf1=$(kf "kafka-flush-w3-$c" mb_per_sec)
    if [[ $c == rp ]]; then
      tgt="≥ 80% dd fdatasync"; v=$(verdict "$r >= 0.8 * $dd_sync" "$(pct "$r" "$dd_sync") of dd fdatasync")
    else
      tgt="(reference)"; v="–"
    fi
    echo "| W3 | produce acks=all, $what (MB/s); Runnel fsyncs, Kafka at its default does not | $cname | $(fmt "$r") | default $(fmt "$kd"), flush.messages=1: $(fmt "$kf1") | $(ratio "$r" "$kf1") of flush.messages=1 | – | – | dd fdatasync $w3_mib MiB: $dd_sync | $(pct "$r" "$dd_sync") | $tgt | $v |"
  done
  for c in rp rk; do
    cname=$(cname_of $c)
    rd=$(g "runnel-w4-$c" delivery.p99_ms); re=$(g "runnel-w4-$c" end_to_end.p99_ms)
    kd=$(kf "kafka-w4-$c" delivery.p99_ms); ke=$(kf "kafka-w4-$c" end_to_end.p99_ms)
    pd=$(pf "peer-w4-$c" delivery.p99_ms); pe=$(pf "peer-w4-$c" end_to_end.p99_ms)
    echo "| W4 | 5k msg/s of 1 KiB, acks=1: delivery p99 (ms) | $cname | $(fmt "$rd" 2) | $(fmt "$kd" 2) | $(ratio "$rd" "$kd") | $(fmt "$pd" 2) | $(ratio "$rd" "$pd") | – | – | ≤ 2 ms | $(verdict "$rd <= 2" "$(fmt "$rd" 2) ms, $(ratio "$rd" 2) of the target") |"
    echo "| W4 | 5k msg/s of 1 KiB, acks=1: end-to-end p99 (ms) | $cname | $(fmt "$re" 2) | $(fmt "$ke" 2) | $(ratio "$re" "$ke") | $(fmt "$pe" 2) | $(ratio "$re" "$pe") | – | – | ≤ 5 ms | $(verdict "$re <= 5" "$(fmt "$re" 2) ms, $(ratio "$re" 5) of the target") |"
  done
  for c in rp rk; do
    cname=$(cname_of $c)
    rd=$(g "runnel-w5-$c" delivery.p99_ms)
    kd=$(kf "kafka-w5-$c" delivery.p99_ms); kf1=$(kf "kafka-flush-w5-$c" delivery.p99_ms)
    lim=$(calc "3 * $dsync_ms")
    echo "| W5 | W4 with acks=all: delivery p99 (ms); Runnel fsyncs, Kafka at its default does not | $cname | $(fmt "$rd" 2) | default $(fmt "$kd" 2), flush.messages=1: $(fmt "$kf1" 2) | $(ratio "$rd" "$kf1") of flush.messages=1 | – | – | 16 KiB dsync write $dsync_ms ms | $(ratio "$rd" "$dsync_ms") | ≤ 3 × dsync = $(fmt "$lim" 2) ms | $(verdict "$rd <= $lim" "$(ratio "$rd" "$dsync_ms") of one dsync write (3x wanted)") |"
  done
  rr=$(cat "$out/runnel.rss" 2>/dev/null || echo nan)
  kr=$(cat "$out/kafka.rss" 2>/dev/null || echo nan)
  pr=$(cat "$out/peer.rss" 2>/dev/null || echo nan)
  echo "| RSS | broker peak RSS over W1-W5 (MB; Kafka with its default 1 GiB heap) | – | $(fmt "$rr") | $(fmt "$kr") | $(ratio "$rr" "$kr") | $(fmt "$pr") | $(ratio "$rr" "$pr") | – | – | (context) | – |"
  echo "| W6 | $W6_TOPICS topics × 10 partitions ($w6_parts dirs; Kafka $kw6_parts), idle: RSS (MB; Kafka with its 1 GiB heap) | – | $w6_rss | $kw6_rss | $(ratio "$w6_rss" "$kw6_rss") | – | – | – | – | ≤ 300 MB | $(verdict "$w6_rss <= 300" "$w6_rss MB") |"
  echo "| W6 | start-up, clean (s) | – | $(fmt "$w6_clean_s" 2) | $(fmt "$kw6_clean_s" 2) | $(ratio "$w6_clean_s" "$kw6_clean_s") | – | – | – | – | ≤ 3 s | $(verdict "$w6_clean_s <= 3" "$(fmt "$w6_clean_s" 2) s") |"
  echo "| W6 | start-up after kill -9 (s) | – | $(fmt "$w6_crash_s" 2) | $(fmt "$kw6_crash_s" 2) | $(ratio "$w6_crash_s" "$kw6_crash_s") | – | – | – | – | ≤ 10 s | $(verdict "$w6_crash_s <= 10" "$(fmt "$w6_crash_s" 2) s") |"
  echo "| W7 | $w7_conns idle connections (ApiVersions each; Kafka $kw7_conns): RSS (MB) | – | $w7_rss | $kw7_rss | $(ratio "$w7_rss" "$kw7_rss") | – | – | – | – | ≤ 1 GB | $(verdict "$w7_rss <= 1000" "$w7_rss MB") |"
} >"$table"

# Latency detail (p50/p99/p99.9/max) for W4/W5 and the record counts.
detail=$out/detail.md
{
  echo "| run | records | errors | records/s | MB/s | delivery p50 / p99 / p99.9 / max (ms) | end-to-end p50 / p99 / p99.9 / max (ms) |"
  echo "|---|---|---|---|---|---|---|"
  for f in "$out"/runnel-*.json "$out"/kafka-*.json "$out"/peer-*.json; do
    [[ -f $f ]] || continue
    n=$(basename "$f" .json)
    lat() { echo "$(fmt "$(g "$n" "$1.p50_ms")" 2) / $(fmt "$(g "$n" "$1.p99_ms")" 2) / $(fmt "$(g "$n" "$1.p999_ms")" 2) / $(fmt "$(g "$n" "$1.max_ms")" 2)"; }
    echo "| $n | $(g "$n" records) | $(g "$n" errors) | $(fmt "$(g "$n" records_per_sec)" 0) | $(fmt "$(g "$n" mb_per_sec)") | $(lat delivery) | $(lat end_to_end) |"
  done
} >"$detail"

echo
cat "$table"
echo
cat "$detail"
echo
echo "raw results: $out"

if [[ $APPEND == 1 ]]; then
  peer_desc="peer not available"
  kafka_desc="not run"
  [[ $kafka_ok == 1 ]] && kafka_desc="${KAFKA_VERSION:-4.4.0} (tests/kafka/kafka.sh: one KRaft node, broker and controller, Kafka's defaults but for num.partitions=1 and single-replica internal topics; heap -Xmx1g -Xms1g as kafka-server-start.sh sets it; JVM $(java -version 2>&1 | sed -n 1p | tr -d '"'))"
  [[ $peer_ok == 1 ]] && peer_desc="$("$TANSU" --version 2>/dev/null | sed -n 1p) (\`tansu broker --storage-engine memory://tansu/\` on loopback)"
  {
    echo
    echo "### $(date -u +%Y-%m-%d\ %H:%M) UTC, benches/compare.sh$([[ $QUICK == 1 ]] && echo " (QUICK=1)")$([[ $IDLE_ONLY == 1 ]] && echo " (IDLE_ONLY=1: W6 and W7 only)")"
    echo
    echo "Machine: nproc=$nproc_, ${mem_gib} GiB RAM, $cpu, kernel $kernel, data on $disk ($fstype)."
    echo "Apache Kafka: $kafka_desc."
    echo "Peer: $peer_desc. Physical references in the same run: iperf3 over loopback"
    echo "$(fmt "$iperf_mbs" 0) MB/s; dd page cache $dd_cache MB/s; dd fdatasync ($w3_mib MiB, the bytes of W3) $dd_sync MB/s;"
    echo "one 16 KiB \`oflag=dsync\` write $dsync_ms ms. MB = 10^6 bytes of record values."
    if grep -qs "Tag 0 is not valid" "$out"/peer-w2-rp.err "$out"/peer-w4-rp.err; then
      echo "The Rust client cannot read from the peer: its Fetch v12 responses carry a tagged field"
      echo "that kafka-protocol 0.18 rejects (\"Tag 0 is not valid for version 12\"), so the peer's"
      echo "W2 and W4 end-to-end figures come from librdkafka only."
    fi
    echo
    cat "$table"
    echo
    cat "$detail"
    echo
    echo "Commands (\`benches/compare.sh\`; \`rdkafka_perf\` is \`cargo bench --bench rdkafka_perf --\`):"
    echo
    echo '```sh'
    cat "$out/commands.txt"
    echo '```'
  } >>"$root/BENCHMARKS.md"
  log "appended to BENCHMARKS.md"
fi
