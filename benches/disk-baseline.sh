#!/usr/bin/env bash
# The raw machine, for comparison with the storage benches in the same run: dd of 1 GiB
# into the same filesystem, through the page cache and with a final fdatasync, plus one
# 16 KiB O_DSYNC write (the cost of a small fsync).
# Usage: benches/disk-baseline.sh [dir]   (default: ./target/bench-data)
set -euo pipefail
dir=${1:-$(dirname "$0")/../target/bench-data}
mkdir -p "$dir"
f="$dir/dd-baseline.$$"
trap 'rm -f "$f"' EXIT
rate() { # dd prints "... copied, S s, R MB/s"; print MB/s computed from bytes and seconds
  awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i-1); printf "%.0f MB/s\n", $1 / s / 1e6 }'
}
echo "nproc=$(nproc) mem=$(free -g | awk '/Mem:/ {print $2}')GiB fs=$(df -h "$dir" | awk 'NR==2 {print $1}')"
printf 'dd page cache  (bs=1M count=1024):                 '
dd if=/dev/zero of="$f" bs=1M count=1024 2>&1 | rate
rm -f "$f"; sync
printf 'dd fdatasync   (bs=1M count=1024 conv=fdatasync):  '
dd if=/dev/zero of="$f" bs=1M count=1024 conv=fdatasync 2>&1 | rate
rm -f "$f"; sync
printf 'dd 16KiB dsync (bs=16k count=200 oflag=dsync):     '
dd if=/dev/zero of="$f" bs=16k count=200 oflag=dsync 2>&1 | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i-1); printf "%.3f ms per write\n", s / 200 * 1000 }'
