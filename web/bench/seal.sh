#!/usr/bin/env bash
# The page's sealing speed in headless Chromium, without upload (issue 4's 200 MiB/s
# target): a release demo server on loopback serves the page and the demo manifest (its
# recipients); web/bench/seal.mjs seals a file of random bytes with the worker's "seal"
# message, RUNS times per variant, variants taking turns in an order that rotates run by
# run. Each variant is a folder holding worker.js and peluit.wasm (as web/build.sh writes
# them), served in place of the embedded ones; the first is the baseline of the ratios.
# NAME=DIR,one-core seals with the hashing kept in the module (no hashing worker). Then
# SHA-256 and ChaCha20-Poly1305 alone, from the bench kernels (web/bench/kernels) built with
# rustc's default wasm32 features and with +simd128: the ceilings of what the sealer can
# reach. Last, in a Chromium with V8's --jitless (no WebAssembly, no JIT: Tor Browser at
# "Safer"), the same kernels translated by wasm2js, and noble's SHA-256 and
# ChaCha20-Poly1305 (plain JavaScript): the ceilings without WebAssembly.
# Usage: web/bench/seal.sh [-n RUNS] [-m MIB] [NAME=DIR[,one-core] ...]
#   (default: 7 runs, 50 MiB, served=crates/peluit-server/assets)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=7
MIB=50
while getopts n:m: flag; do
  case $flag in
    n) RUNS=$OPTARG ;;
    m) MIB=$OPTARG ;;
    *) sed -n 's/^# Usage: //p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- "served=crates/peluit-server/assets"

cargo build --locked --quiet --release -p peluit-server
KERNELS=()
for flavour in default simd128; do
  flags=""
  [ $flavour = simd128 ] && flags="-C target-feature=+simd128"
  (cd web/bench/kernels && CARGO_TARGET_DIR=$ROOT/target/bench-kernels-$flavour RUSTFLAGS="$flags" \
    cargo build --offline --quiet --release --target wasm32-unknown-unknown)
  KERNELS+=("{\"name\":\"$flavour\",\"wasm\":\"$ROOT/target/bench-kernels-$flavour/wasm32-unknown-unknown/release/peluit_bench_kernels.wasm\"}")
done

# Without WebAssembly the page runs wasm2js's translation under the browser's interpreter:
# the same kernels built for the MVP feature set and translated as web/build.sh does.
(cd web/bench/kernels && CARGO_TARGET_DIR=$ROOT/target/bench-kernels-mvp RUSTFLAGS="-C target-cpu=mvp" \
  cargo build --offline --quiet --release --target wasm32-unknown-unknown)

. web/bench/demo_server.sh
web/node_modules/.bin/wasm2js "$ROOT/target/bench-kernels-mvp/wasm32-unknown-unknown/release/peluit_bench_kernels.wasm" \
  -O2 -o "$WORK/kernels-nowasm.mjs"
head -c $((MIB << 20)) /dev/urandom >"$WORK/content.bin"

VARIANTS=()
for spec in "$@"; do
  path=${spec#*=}
  one_core=false
  [ "${path%,one-core}" != "$path" ] && one_core=true
  dir=$(cd "${path%,one-core}" && pwd)
  VARIANTS+=("{\"name\":\"${spec%%=*}\",\"worker\":\"$dir/worker.js\",\"wasm\":\"$dir/peluit.wasm\",\"one_core\":$one_core}")
done
PLAN=$(IFS=,; echo "{\"url\":\"http://127.0.0.1:$PORT/\",\"file\":\"$WORK/content.bin\",\"runs\":$RUNS,\"kernel_mib\":$MIB,\"variants\":[${VARIANTS[*]}],\"kernels\":[${KERNELS[*]}],\"nowasm\":{\"kernels\":\"$WORK/kernels-nowasm.mjs\",\"noble\":\"$ROOT/web/node_modules/@noble\",\"runs\":$RUNS}}")
node web/bench/seal.mjs "$PLAN" >"$WORK/result.json"

echo "sealing $MIB MiB to the demo manifest's recipients in headless Chromium, $RUNS runs each, variants in turn; $(nproc) cores, shared with whatever else runs"
python3 - "$WORK/result.json" "$MIB" <<'PY'
import json, statistics, sys
result, mib = json.load(open(sys.argv[1])), int(sys.argv[2])
def line(name, times, base):
    median = statistics.median(times)
    ratio = f"  ×{base / median:.2f} vs {first}" if base else ""
    speed = mib / (median / 1000)
    print(f"  {name:32} median {median:8.1f} ms  {speed:7.{1 if speed >= 10 else 2}f} MiB/s{ratio}   runs: {times}")
first = next(iter(result["variants"]))
base = statistics.median(result["variants"][first])
print(f"page's sealer (worker 'seal' message; sealed {result['sealed_len']} bytes):")
for name, times in result["variants"].items():
    line(name, times, None if name == first else base)
for name, runs in result.get("profiles", {}).items():
    for key in runs[0]:
        print(f"    {name} {key}: median {statistics.median(r[key] for r in runs):.1f} ms")
print("primitives alone (web/bench/kernels, one call over the whole buffer):")
for name, times in result["kernels"].items():
    line(name, times, None)
mib = 1
print("without WebAssembly (Chromium --jitless, one call over 1 MiB):")
for name, times in result["nowasm"].items():
    line(name, times, None)
PY
