#!/usr/bin/env bash
# Crash loop (issue 3): kill -9 the release server at a random moment while 20 reporters
# upload and submit, restart it, ROUNDS times; then audit the export (crash_client).
# Usage: tests/crash-loop.sh [ROUNDS]   (default 20). Exits non-zero on any violation.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-20}"
START=$(date +%s)
DEADLINE=$((START + 900)) # the whole loop is bounded: 15 minutes at most

cargo build --quiet --release -p peluit-server --bin peluit-server --example crash_client
SERVER=target/release/peluit-server
CLIENT=target/release/examples/crash_client

TMP=$(mktemp -d)
SERVER_PID=""
CLIENT_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null || true
  [ -n "$CLIENT_PID" ] && kill -9 "$CLIENT_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# A free loopback port, kept across restarts so the manifest's origin stays the same.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PELUIT_POW_BITS=4 # the client mints stamps of this difficulty

start_server() {
  "$SERVER" demo --listen "127.0.0.1:$PORT" --dir "$TMP/demo" >>"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  # Poll /healthz (short polling only).
  for _ in $(seq 1 600); do
    if curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "crash-loop: server exited at start; log:" >&2; tail -20 "$TMP/server.log" >&2; exit 1
    fi
    sleep 0.05
  done
  echo "crash-loop: server did not answer /healthz within 30 s" >&2; exit 1
}

start_server
"$CLIENT" "$TMP/demo" "$TMP/stop" 20 >"$TMP/client.out" 2>"$TMP/client.err" &
CLIENT_PID=$!

for round in $(seq 1 "$ROUNDS"); do
  if [ "$(date +%s)" -gt "$DEADLINE" ]; then
    echo "crash-loop: time bound reached after $((round - 1)) rounds" >&2; exit 1
  fi
  # Let the reporters work for a random 0.2–2.0 s, then kill -9 mid-flight.
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.2 + (r % 180) / 100 }')"
  kill -9 "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  if ! kill -0 "$CLIENT_PID" 2>/dev/null; then
    echo "crash-loop: the client stopped early in round $round" >&2; cat "$TMP/client.err" >&2; exit 1
  fi
  start_server
done

# Final round: let everyone finish their report against a live server, then audit.
touch "$TMP/stop"
STATUS=0
wait "$CLIENT_PID" || STATUS=$?
CLIENT_PID=""
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
grep VIOLATION "$TMP/client.err" >&2 || true
echo "crash-loop: $ROUNDS kill -9 rounds in $(( $(date +%s) - START )) s; $(cat "$TMP/client.out")"
exit "$STATUS"
