#!/usr/bin/env bash
# Produce and consume over TLS against plaintext, side by side on one broker: W1
# (librdkafka producer, 8 partitions, 1 KiB records, acks=1) and W2 (a consumer reading
# it back) through a PLAINTEXT and an SSL listener of the same `runnel serve`
# (--tls-self-signed: an ECDSA P-256 certificate, TLS 1.3), in interleaved rounds, with
# the broker's CPU seconds per GB for each run. Prints medians and SSL/PLAINTEXT ratios
# and appends a dated entry to BENCHMARKS.md. Also records whether the kernel offers
# kernel TLS (the TCP "tls" ULP), which Runnel would need to keep sendfile under TLS.
#
# Usage: benches/tls.sh               3 rounds of 1,000,000 records each way
#        ROUNDS=5 RECORDS=500000 ...  other sizes
#        APPEND=0 ...                 do not touch BENCHMARKS.md
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-1000000}
APPEND=${APPEND:-1}
PLAIN_PORT=${PLAIN_PORT:-19392}
SSL_PORT=${SSL_PORT:-19393}
log() { echo "[tls $(date -u +%H:%M:%S)] $*" >&2; }
out=$root/target/tls-bench/$(date -u +%Y%m%dT%H%M%SZ)
data=$out/data
mkdir -p "$out"

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

ktls=$(python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.socket(); c.connect(s.getsockname()); a, _ = s.accept()
try:
    c.setsockopt(6, 31, b"tls")  # SOL_TCP, TCP_ULP
    print("offered")
except OSError as e:
    print(f"not offered ({e.strerror})")
PY
)
log "kernel TLS (TCP ULP \"tls\"): $ktls"

"$RUNNEL" serve --data-dir "$data" --tls-self-signed \
  --set "listeners=PLAINTEXT://127.0.0.1:$PLAIN_PORT,SSL://127.0.0.1:$SSL_PORT" \
  >"$out/broker.out" 2>"$out/broker.err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 600); do
  grep -q "runnel listening on" "$out/broker.out" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { log "the broker did not start: $(tail -3 "$out/broker.err")"; exit 1; }
  sleep 0.05
done
ca=$data/tls-self-signed/ca.pem
[[ -f $ca ]] || { log "no CA at $ca"; exit 1; }

cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$1/stat"; }
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], "nan"))' "$1" "$2" 2>/dev/null || echo nan; }
# run NAME PROTO CMD ARGS...: one run; MB/s, GB moved and broker CPU-s/GB in $out/NAME.*
run() {
  local name=$1 proto=$2
  shift 2
  local bs args=() c0 c1
  if [[ $proto == ssl ]]; then
    bs=127.0.0.1:$SSL_PORT
    args=(-X security.protocol=ssl -X "ssl.ca.location=$ca")
  else
    bs=127.0.0.1:$PLAIN_PORT
  fi
  echo "rdkafka_perf $* --brokers $bs ${args[*]}" >>"$out/commands.txt"
  c0=$(cpu_s $pid)
  timeout 600 "$RDK" "$@" --brokers "$bs" "${args[@]}" >"$out/$name.json" 2>"$out/$name.err" ||
    log "$name failed: $(tail -3 "$out/$name.err")"
  c1=$(cpu_s $pid)
  local mbs bytes
  mbs=$(jget "$out/$name.json" mb_per_sec)
  bytes=$(jget "$out/$name.json" bytes)
  echo "$mbs" >"$out/$name.mbs"
  awk -v c="$(awk -v a="$c1" -v b="$c0" 'BEGIN{print a-b}')" -v b="$bytes" \
    'BEGIN { if (b > 0) printf "%.2f\n", c / (b / 1e9); else print "nan" }' >"$out/$name.cpugb"
  log "$name: $mbs MB/s, broker $(cat "$out/$name.cpugb") CPU-s/GB"
}

W1=(--partitions 8 --record-size 1024 --acks 1 --batch-size 1000000 --num-records "$RECORDS")
for r in $(seq 1 "$ROUNDS"); do
  # Alternate which goes first, so neither always runs on a warmer machine.
  if ((r % 2)); then order="plain ssl"; else order="ssl plain"; fi
  for p in $order; do
    run "r$r-$p-w1" "$p" produce --topic "w1-$p-$r" "${W1[@]}"
    run "r$r-$p-w2" "$p" consume --topic "w1-$p-$r"
  done
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { cat "$out"/r*-"$1"-"$2".$3 | grep -v nan | median | awk '{ printf "%.2f\n", $1 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "n/a"; else printf "%.2fx\n", a / b }'; }
rows=""
for w in w1 w2; do
  pm=$(med plain $w mbs); sm=$(med ssl $w mbs)
  pc=$(med plain $w cpugb); sc=$(med ssl $w cpugb)
  label=$([[ $w == w1 ]] && echo "W1 produce" || echo "W2 consume")
  rows+="| $label | $pm | $sm | $(ratio "$sm" "$pm") | $pc | $sc | $(ratio "$sc" "$pc") |"$'\n'
done
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
entry=$(cat <<MD

## $(date -u +%Y-%m-%d) TLS against plaintext (benches/tls.sh)

Machine: $(nproc) vCPUs ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r); load average at the
start $(cut -d' ' -f1-3 /proc/loadavg). One \`runnel serve --tls-self-signed\` with a PLAINTEXT and an SSL
listener (TLS 1.3, ECDSA P-256, rustls with ring); librdkafka (benches/rdkafka_perf.rs) produces
$RECORDS records of 1 KiB over 8 partitions with acks=1 and reads them back, through each
listener in turn, $ROUNDS interleaved rounds. Medians:

| | PLAINTEXT MB/s | SSL MB/s | SSL/PLAINTEXT | PLAINTEXT broker CPU-s/GB | SSL broker CPU-s/GB | SSL/PLAINTEXT |
|---|---|---|---|---|---|---|
$rows
Kernel TLS: $ktls on this kernel, so the TLS fetch path copies through the bounded
buffer (sendfile is for plaintext only). Commands: \`benches/tls.sh\` (ROUNDS=$ROUNDS RECORDS=$RECORDS);
each run is in target/tls-bench/.
MD
)
echo "$entry"
if [[ $APPEND == 1 ]]; then
  echo "$entry" >>BENCHMARKS.md
  log "appended to BENCHMARKS.md"
fi
