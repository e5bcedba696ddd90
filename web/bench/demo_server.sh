# Sourced by the page's benchmarks from the repository root, after the release build: starts
# the demo server on a free loopback port with its data in a scratch folder, and stops it
# and removes the folder on exit. Sets WORK (the scratch folder), PORT and SERVER_PID.
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/peluit-server demo --listen "127.0.0.1:$PORT" --dir "$WORK/demo" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.1; done
