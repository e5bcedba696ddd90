#!/usr/bin/env bash
# Ingest benchmarks (issue 3), in one run on one disk:
#   1+2. ROUNDS times, alternating: dd bs=1M count=1024 conv=fsync into the bench folder
#      (the disk's durable speed), then one 1 GiB sealed upload over loopback to a release
#      demo server; medians of both, their ratio, and the server's peak RSS (VmHWM);
#   3. 20 concurrent uploads (UPLOAD20_MIB each) to a fresh server: its peak RSS;
#   4. durable submissions of ~4 KiB envelopes from 64 clients, proof of work at 4 bits.
# Usage: crates/peluit-server/benches/ingest.sh [BENCH_DIR]   (default: target/bench-ingest,
# i.e. the project's disk). Ciphertext is pre-made in /dev/shm so reading it costs no disk.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BENCH_DIR="${1:-target/bench-ingest}"
UPLOAD20_MIB="${UPLOAD20_MIB:-64}"
SUBMISSIONS="${SUBMISSIONS:-20000}"
ROUNDS="${ROUNDS:-3}"

cargo build --quiet --release -p peluit-server --bin peluit-server --example ingest_client
SERVER=target/release/peluit-server
CLIENT=target/release/examples/ingest_client

rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
SHM=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$SHM" "$BENCH_DIR"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PELUIT_POW_BITS=4

now() { date +%s.%N; }
start_server() { # $1: demo folder
  "$SERVER" demo --listen "127.0.0.1:$PORT" --dir "$1" >>"$BENCH_DIR/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "ingest: server did not start" >&2; exit 1
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
hwm_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo), \
disk $(df --output=source "$BENCH_DIR" | tail -1) ($(df --output=fstype "$BENCH_DIR" | tail -1))"

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other engineers' builds share these cores)"

# 1+2. dd and one 1 GiB sealed upload, alternating, to the same disk.
start_server "$BENCH_DIR/demo1"
"$CLIENT" make "$BENCH_DIR/demo1" "$SHM/sealed.age" 1073741824 >/dev/null
SEALED=$(stat -c %s "$SHM/sealed.age")
SEALED_1G=$((1 << 30))
DDS=""; UPS=""
for round in $(seq 1 "$ROUNDS"); do
  t0=$(now)
  dd if=/dev/zero of="$BENCH_DIR/dd.bin" bs=1M count=1024 conv=fsync status=none
  t1=$(now)
  rm -f "$BENCH_DIR/dd.bin"
  DD=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 1073741824 / (b - a) / 1e6 }')
  t0=$(now)
  "$CLIENT" upload "$BENCH_DIR/demo1" "$SHM/sealed.age" "$SEALED_1G" 1 >/dev/null
  t1=$(now)
  UP=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 1073741824 / (b - a) / 1e6 }')
  echo "round $round: dd bs=1M count=1024 conv=fsync $DD MB/s; 1 GiB upload $UP MB/s (ratio $(awk -v u="$UP" -v d="$DD" 'BEGIN { printf "%.2f", u / d }'))"
  DDS="$DDS $DD"; UPS="$UPS $UP"
done
DD=$(echo "$DDS" | tr ' ' '\n' | grep . | median)
UP=$(echo "$UPS" | tr ' ' '\n' | grep . | median)
RATIO=$(awk -v u="$UP" -v d="$DD" 'BEGIN { printf "%.2f", u / d }')
HWM1=$(hwm_mib)
echo "median of $ROUNDS: dd $DD MB/s; 1 GiB sealed upload over loopback (one PUT, first 1 GiB of a ${SEALED}-byte age file) $UP MB/s; ratio of medians $RATIO; server peak RSS $HWM1 MiB"
stop_server

# 3. 20 uploads at once, fresh server (so VmHWM is theirs).
start_server "$BENCH_DIR/demo20"
t0=$(now)
"$CLIENT" upload "$BENCH_DIR/demo20" "$SHM/sealed.age" $((UPLOAD20_MIB << 20)) 20 >/dev/null
t1=$(now)
UP20=$(awk -v a="$t0" -v b="$t1" -v n="$UPLOAD20_MIB" 'BEGIN { printf "%.1f", 20 * n * 1048576 / (b - a) / 1e6 }')
HWM20=$(hwm_mib)
echo "20 concurrent uploads of $UPLOAD20_MIB MiB: $UP20 MB/s total, server peak RSS $HWM20 MiB"
stop_server
rm -f "$SHM/sealed.age"

# 4. Small durable submissions, fresh server, ROUNDS runs.
start_server "$BENCH_DIR/demosub"
: >"$BENCH_DIR/submit.out"
for round in $(seq 1 "$ROUNDS"); do
  "$CLIENT" submit "$BENCH_DIR/demosub" 64 "$SUBMISSIONS" 4 | tee -a "$BENCH_DIR/submit.out"
done
# "…: 2917/s, p50 20.1 ms, p99 71.0 ms"
RATE=$(sed -E 's/.*: ([0-9.]+)\/s, .*/\1/' "$BENCH_DIR/submit.out" | median)
P50=$(sed -E 's/.*p50 ([0-9.]+) ms.*/\1/' "$BENCH_DIR/submit.out" | median)
P99=$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' "$BENCH_DIR/submit.out" | median)
echo "median of $ROUNDS submission runs: $RATE/s, p50 $P50 ms, p99 $P99 ms"
echo "server peak RSS after submissions: $(hwm_mib) MiB"
stop_server
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
