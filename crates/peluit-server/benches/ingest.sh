#!/usr/bin/env bash
# Ingest benchmarks (issue 3), in one run on one disk:
#   1+2. ROUNDS times, alternating: dd bs=1M count=1024 conv=fsync into the bench folder
#      (the disk's durable speed), then one 1 GiB sealed upload over loopback to a release
#      demo server; medians of both, their ratio, and the server's peak RSS (VmHWM);
#   3. 20 concurrent uploads (UPLOAD20_MIB each) to a fresh server: its peak RSS;
#   4. durable submissions of ~4 KiB envelopes from 64 clients, proof of work at 4 bits,
#      ROUNDS runs of SUBMISSIONS, each on a fresh server and store;
#   5. bring your own ciphertext: ROUNDS times, on a fresh server, one BYO_MIB sealed file
#      through the no-script form (curl, multipart) and the same bytes as one upload PUT;
#      medians of both and their ratio.
# Usage: crates/peluit-server/benches/ingest.sh [BENCH_DIR]   (default: target/bench-ingest,
# i.e. the project's disk). Ciphertext is pre-made in /dev/shm so reading it costs no disk.
# PHASES picks phases (default "upload upload20 submit byo"). BASELINE=/path/to/another
# peluit-server build measures it side by side in phases 4 and 5: its runs alternate with
# this build's (A B B A …), each on a fresh server, and both medians are printed.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BENCH_DIR="${1:-target/bench-ingest}"
UPLOAD20_MIB="${UPLOAD20_MIB:-64}"
SUBMISSIONS="${SUBMISSIONS:-20000}"
ROUNDS="${ROUNDS:-3}"
BYO_MIB="${BYO_MIB:-256}"
PHASES=" ${PHASES:-upload upload20 submit byo} "
BASELINE="${BASELINE:-}"
if [ -n "$BASELINE" ]; then
  [ -x "$BASELINE" ] || { echo "ingest: BASELINE $BASELINE is not an executable" >&2; exit 1; }
  BASELINE=$(cd "$(dirname "$BASELINE")" && pwd)/$(basename "$BASELINE")
fi

cargo build --quiet --release -p peluit-server --bin peluit-server --example ingest_client
SERVER=$(pwd)/target/release/peluit-server
CLIENT=target/release/examples/ingest_client
has_phase() { [[ "$PHASES" == *" $1 "* ]]; }

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
start_server() { # $1: demo folder, $2: server binary (default: this build)
  "${2:-$SERVER}" demo --listen "127.0.0.1:$PORT" --dir "$1" >>"$BENCH_DIR/server.log" 2>&1 &
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
if has_phase upload || has_phase upload20; then
start_server "$BENCH_DIR/demo1"
"$CLIENT" make "$BENCH_DIR/demo1" "$SHM/sealed.age" 1073741824 >/dev/null
SEALED=$(stat -c %s "$SHM/sealed.age")
fi
if has_phase upload; then
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
fi
[ -n "$SERVER_PID" ] && stop_server

# 3. 20 uploads at once, fresh server (so VmHWM is theirs).
if has_phase upload20; then
start_server "$BENCH_DIR/demo20"
t0=$(now)
"$CLIENT" upload "$BENCH_DIR/demo20" "$SHM/sealed.age" $((UPLOAD20_MIB << 20)) 20 >/dev/null
t1=$(now)
UP20=$(awk -v a="$t0" -v b="$t1" -v n="$UPLOAD20_MIB" 'BEGIN { printf "%.1f", 20 * n * 1048576 / (b - a) / 1e6 }')
HWM20=$(hwm_mib)
echo "20 concurrent uploads of $UPLOAD20_MIB MiB: $UP20 MB/s total, server peak RSS $HWM20 MiB"
stop_server
fi
rm -f "$SHM/sealed.age"

# Runs of phases 4 and 5 alternate between the builds measured (A B B A …), each on a
# fresh server, so that both see the same moments of a shared machine.
BUILDS="new"; [ -n "$BASELINE" ] && BUILDS="baseline new"
binary_of() { if [ "$1" = baseline ]; then echo "$BASELINE"; else echo "$SERVER"; fi; }
round_order() { # $1: round number
  if [ -z "$BASELINE" ]; then echo new
  elif [ $(($1 % 2)) -eq 1 ]; then echo baseline new
  else echo new baseline; fi
}
summary() { # $1: label, $2: file of "…: 2917/s, p50 20.1 ms, p99 71.0 ms" lines
  local rate p50 p99
  rate=$(sed -E 's/.*: ([0-9.]+)\/s, .*/\1/' "$2" | median)
  p50=$(sed -E 's/.*p50 ([0-9.]+) ms.*/\1/' "$2" | median)
  p99=$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' "$2" | median)
  echo "$1: median of $ROUNDS submission runs: $rate/s, p50 $p50 ms, p99 $p99 ms (runs p99: $(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' "$2" | tr '\n' ' '| sed 's/ $//'))"
}

# 4. Small durable submissions.
if has_phase submit; then
for build in $BUILDS; do : >"$BENCH_DIR/submit-$build.out"; echo 0 >"$BENCH_DIR/hwm-$build"; done
for round in $(seq 1 "$ROUNDS"); do
  for build in $(round_order "$round"); do
    rm -rf "$BENCH_DIR/demosub"
    start_server "$BENCH_DIR/demosub" "$(binary_of "$build")"
    echo -n "round $round, $build: "
    "$CLIENT" submit "$BENCH_DIR/demosub" 64 "$SUBMISSIONS" 4 | tee -a "$BENCH_DIR/submit-$build.out"
    HWM=$(hwm_mib)
    awk -v a="$HWM" -v b="$(cat "$BENCH_DIR/hwm-$build")" 'BEGIN { print (a > b ? a : b) }' >"$BENCH_DIR/hwm-$build"
    stop_server
  done
done
for build in $BUILDS; do
  summary "$build" "$BENCH_DIR/submit-$build.out"
  echo "$build: server peak RSS after a run of submissions: $(cat "$BENCH_DIR/hwm-$build") MiB"
done
if [ -n "$BASELINE" ]; then
  rate() { sed -E 's/.*: ([0-9.]+)\/s, .*/\1/' "$1" | median; }
  p99() { sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' "$1" | median; }
  echo "new / baseline: rate $(awk -v n="$(rate "$BENCH_DIR/submit-new.out")" -v b="$(rate "$BENCH_DIR/submit-baseline.out")" 'BEGIN { printf "%.2f", n / b }'), p99 $(awk -v n="$(p99 "$BENCH_DIR/submit-new.out")" -v b="$(p99 "$BENCH_DIR/submit-baseline.out")" 'BEGIN { printf "%.2f", n / b }')"
fi
fi

# 5. Bring your own ciphertext: the no-script form against a PUT of the same bytes.
if has_phase byo; then
rm -rf "$BENCH_DIR/demobyo"
start_server "$BENCH_DIR/demobyo"
"$CLIENT" make "$BENCH_DIR/demobyo" "$SHM/byo.age" $((BYO_MIB << 20)) >/dev/null
stop_server
BYO_LEN=$(stat -c %s "$SHM/byo.age")
for build in $BUILDS; do : >"$BENCH_DIR/byo-$build.out"; : >"$BENCH_DIR/put-$build.out"; done
for round in $(seq 1 "$ROUNDS"); do
  for build in $(round_order "$round"); do
    rm -rf "$BENCH_DIR/demobyo"
    start_server "$BENCH_DIR/demobyo" "$(binary_of "$build")"
    INST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["institution"])' "$BENCH_DIR/demobyo/demo.json")
    t0=$(now)
    "$CLIENT" upload "$BENCH_DIR/demobyo" "$SHM/byo.age" "$BYO_LEN" 1 >/dev/null
    t1=$(now)
    PUT=$(awk -v a="$t0" -v b="$t1" -v n="$BYO_LEN" 'BEGIN { printf "%.1f", n / (b - a) / 1e6 }')
    t0=$(now)
    STATUS=$(curl -sS -o "$BENCH_DIR/byo.html" -w '%{http_code}' -F "institution=$INST" \
      -F "file=@$SHM/byo.age;filename=laporan.age" "http://127.0.0.1:$PORT/submit-file")
    t1=$(now)
    [ "$STATUS" = 201 ] || { echo "ingest: the form answered $STATUS" >&2; exit 1; }
    BYO=$(awk -v a="$t0" -v b="$t1" -v n="$BYO_LEN" 'BEGIN { printf "%.1f", n / (b - a) / 1e6 }')
    echo "round $round, $build: $BYO_LEN-byte file: form $BYO MB/s, upload PUT $PUT MB/s"
    echo "$BYO" >>"$BENCH_DIR/byo-$build.out"; echo "$PUT" >>"$BENCH_DIR/put-$build.out"
    stop_server
  done
done
for build in $BUILDS; do
  BYO=$(median <"$BENCH_DIR/byo-$build.out"); PUT=$(median <"$BENCH_DIR/put-$build.out")
  echo "$build: median of $ROUNDS: form $BYO MB/s, upload PUT $PUT MB/s, ratio $(awk -v a="$BYO" -v b="$PUT" 'BEGIN { printf "%.2f", a / b }')"
done
rm -f "$SHM/byo.age"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
