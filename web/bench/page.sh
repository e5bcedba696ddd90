#!/usr/bin/env bash
# The page's benchmarks (issue 4), in one run against a release demo server on loopback:
#   1. a 50 MiB attachment sealed and uploaded from headless Chromium, with WebAssembly;
#   2. the same without WebAssembly (--jitless: the wasm2js module), with a smaller file;
#   3. a ~10 KB report without WebAssembly: receipt derivation, sealing, proof of work;
#   4. a 1 GiB attachment with WebAssembly; for it and for (1), the peak private memory of
#      the tab (renderer, worker included) and of the browser process
#      (web/bench/chromium_memory.py).
# Times are from the click on "send" to the receipt (sealing, upload, proof of work and
# submission), so MiB/s here is a lower bound on sealing speed.
# Usage: web/bench/page.sh [NOWASM_MIB]   (default 8)
set -euo pipefail
cd "$(dirname "$0")/../.."
NOWASM_MIB=${1:-8}
cargo build --quiet --release -p peluit-server
. web/bench/demo_server.sh
BITS=$(curl -fsS "http://127.0.0.1:$PORT/api/v1/institutions" | python3 -c 'import json,sys; print(json.load(sys.stdin)["institutions"][0]["pow_bits"])')
RECIPIENTS=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(sum(k["purpose"] in ("seal","escrow-seal") for k in m["manifest"]["keys"]))' "$WORK/demo/manifest.json" 2>/dev/null || echo "?")
head -c $((50 << 20)) /dev/urandom >"$WORK/50mib.bin"
head -c $((NOWASM_MIB << 20)) /dev/urandom >"$WORK/nowasm.bin"
head -c $((1 << 30)) /dev/zero >"$WORK/1gib.bin"
python3 -c 'print("x" * 10000)' >"$WORK/text.txt"

run() { # name jitless answer-file [file]
  local files="[]"
  [ -n "${4:-}" ] && files="[\"$4\"]"
  node web/tests/drive.mjs "{\"kind\":\"report\",\"url\":\"http://127.0.0.1:$PORT/\",\"jitless\":$2,\"timeout_ms\":3600000,\"answers\":{\"category\":\"suap\",\"what_happened\":\"$(cat "$3")\"},\"files\":$files}" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("send_ms"), d.get("error") or d.get("driver_error") or "")'
}
peak_memory() { python3 web/bench/chromium_memory.py "$1"; }

echo "demo institution: $RECIPIENTS recipients, proof of work $BITS bits; machine: $(nproc) cores"
echo "short" >"$WORK/short.txt"
run wasm50 false "$WORK/short.txt" "$WORK/50mib.bin" >"$WORK/50.out" &
JOB=$!
PEAK50=$(peak_memory "$JOB")
wait "$JOB"
read -r ms err <"$WORK/50.out"
echo "wasm, 50 MiB attachment: ${ms} ms → $(python3 -c "print(round(50/($ms/1000),1))") MiB/s; peak private memory: $PEAK50 $err"
read -r ms err < <(run nowasm true "$WORK/short.txt" "$WORK/nowasm.bin")
echo "no WebAssembly, $NOWASM_MIB MiB attachment: ${ms} ms → $(python3 -c "print(round($NOWASM_MIB/($ms/1000),2))") MiB/s $err"
read -r ms err < <(run report10k true "$WORK/text.txt")
echo "no WebAssembly, 10 KB report (receipt, seal, proof of work, submit): ${ms} ms $err"
run big false "$WORK/short.txt" "$WORK/1gib.bin" >"$WORK/big.out" &
JOB=$!
PEAK=$(peak_memory "$JOB")
wait "$JOB"
read -r ms err <"$WORK/big.out"
echo "wasm, 1 GiB attachment: ${ms} ms → $(python3 -c "print(round(1024/($ms/1000),1))") MiB/s; peak private memory: $PEAK $err"
