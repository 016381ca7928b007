#!/usr/bin/env bash
# kcat (librdkafka's CLI) against runnel: metadata (-L), produce (-P) with keys, headers
# and compression, consume (-C -e) byte for byte.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v kcat >/dev/null || fail "kcat is not installed (apt-get install kcat)"
echo "== kcat: $(kcat -V 2>&1 | grep -i '^version' | sed -n 1p)"
start_broker --num-partitions 3
work="$BROKER_DIR/kcat"
mkdir -p "$work"

# -L: the one broker, at the advertised address.
kcat -b "$BOOTSTRAP" -L -J -m 10 >"$work/meta.json" || fail "kcat -L failed"
python3 - "$work/meta.json" "$BOOTSTRAP" <<'PY' || fail "kcat -L metadata is wrong"
import json, sys
meta = json.load(open(sys.argv[1]))
brokers = meta["brokers"]
assert len(brokers) == 1, brokers
assert brokers[0]["name"].endswith(sys.argv[2]) or brokers[0]["name"] == sys.argv[2], (brokers, sys.argv[2])
PY
ok "kcat -L lists one broker at $BOOTSTRAP"

# Produce with keys and headers; the topic is auto-created with num.partitions=3.
topic="kcat-events"
n=500
for i in $(seq 1 $n); do printf 'key-%d:value %d with spaces, commas, and "quotes"\n' "$i" "$i"; done >"$work/in.txt"
kcat -b "$BOOTSTRAP" -t "$topic" -P -K: -p 0 -H origin=kcat -H empty= -X acks=all -m 30 <"$work/in.txt" \
  || fail "kcat -P failed"
ok "kcat -P produced $n keyed messages with headers to $topic/0"

kcat -b "$BOOTSTRAP" -L -t "$topic" -J -m 10 >"$work/topic.json" || fail "kcat -L -t failed"
python3 - "$work/topic.json" "$topic" <<'PY' || fail "auto-created topic metadata is wrong"
import json, sys
meta = json.load(open(sys.argv[1]))
[t] = [t for t in meta["topics"] if t["topic"] == sys.argv[2]]
assert "error" not in t or not t["error"], t
assert len(t["partitions"]) == 3, t["partitions"]
PY
ok "kcat -L -t $topic shows it auto-created with 3 partitions"

kcat -b "$BOOTSTRAP" -t "$topic" -C -p 0 -o beginning -e -q -m 30 \
  -f '%k:%s|%h|%o\n' >"$work/out.txt" || fail "kcat -C failed"
[[ "$(wc -l <"$work/out.txt")" -eq $n ]] || fail "consumed $(wc -l <"$work/out.txt") messages, want $n"
python3 - "$work/in.txt" "$work/out.txt" <<'PY' || fail "consumed messages differ from produced"
import sys
sent = open(sys.argv[1]).read().splitlines()
got = open(sys.argv[2]).read().splitlines()
for i, (s, g) in enumerate(zip(sent, got)):
    kv, headers, offset = g.rsplit("|", 2)
    assert kv == s, (i, s, kv)
    assert headers == "origin=kcat,empty=", (i, headers)
    assert int(offset) == i, (i, offset)
PY
ok "kcat -C -e read all $n back in order: keys, values, headers and offsets 0..$((n - 1))"

# Compressed produce and consume (each codec librdkafka has).
for codec in gzip snappy lz4 zstd; do
  t="kcat-$codec"
  seq 1 2000 | sed 's/^/compressible compressible compressible /' >"$work/$codec.in"
  kcat -b "$BOOTSTRAP" -t "$t" -P -p 0 -z "$codec" -X acks=all -m 30 <"$work/$codec.in" \
    || fail "kcat -P -z $codec failed"
  kcat -b "$BOOTSTRAP" -t "$t" -C -p 0 -o beginning -e -q -m 30 >"$work/$codec.out" \
    || fail "kcat -C of $codec messages failed"
  cmp -s "$work/$codec.in" "$work/$codec.out" || fail "$codec messages differ after a round trip"
  ok "kcat -z $codec: 2000 messages round-trip byte for byte"
done

# Consume from an offset in the middle, and a null value (tombstone) with -Z.
kcat -b "$BOOTSTRAP" -t "$topic" -C -p 0 -o 250 -e -q -m 30 -f '%s\n' >"$work/mid.txt" \
  || fail "kcat -C -o 250 failed"
[[ "$(wc -l <"$work/mid.txt")" -eq $((n - 250)) ]] || fail "consume from offset 250 gave $(wc -l <"$work/mid.txt") messages"
[[ "$(head -n 1 "$work/mid.txt")" == 'value 251 with spaces, commas, and "quotes"' ]] \
  || fail "consume from offset 250 started at: $(head -n 1 "$work/mid.txt")"
ok "kcat -C -o 250 starts at offset 250"

printf 'tomb:\n' | kcat -b "$BOOTSTRAP" -t "$topic" -P -p 1 -K: -Z -m 30 || fail "kcat -Z produce failed"
kcat -b "$BOOTSTRAP" -t "$topic" -C -p 1 -o beginning -e -q -m 30 -f '%k|%S\n' >"$work/tomb.txt" \
  || fail "kcat consume tombstone failed"
[[ "$(cat "$work/tomb.txt")" == "tomb|-1" ]] || fail "tombstone read back as '$(cat "$work/tomb.txt")', want 'tomb|-1'"
ok "kcat -Z: a null value reads back as null (size -1)"

echo "kcat: $CHECKS checks passed"
