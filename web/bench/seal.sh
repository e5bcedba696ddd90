#!/usr/bin/env bash
# The page's sealing speed in headless Chromium, without upload (issue 4's 200 MiB/s target):
# a release demo server on loopback serves the page and the demo manifest (3 recipients);
# web/bench/seal.mjs seals a file of random bytes with the worker's "seal" message, RUNS
# times per variant, variants taking turns. Each variant is a folder holding worker.js and
# peluit.wasm (as web/build.sh writes them), served in place of the embedded ones; the
# first is the baseline of the ratios. NAME=DIR,one-core seals with the hashing kept in the
# module (no hashing worker). Then SHA-256 and ChaCha20-Poly1305 alone, from the
# bench kernels (web/bench/kernels) built with rustc's default wasm32 features and with
# +simd128: the ceilings of what the sealer can reach; and the same kernels translated by
# wasm2js under Node's --jitless, the ceilings without WebAssembly.
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

. web/bench/demo_server.sh
head -c $((MIB << 20)) /dev/urandom >"$WORK/content.bin"

VARIANTS=()
for spec in "$@"; do
  path=${spec#*=}
  one_core=false
  [ "${path%,one-core}" != "$path" ] && one_core=true
  dir=$(cd "${path%,one-core}" && pwd)
  VARIANTS+=("{\"name\":\"${spec%%=*}\",\"worker\":\"$dir/worker.js\",\"wasm\":\"$dir/peluit.wasm\",\"one_core\":$one_core}")
done
PLAN=$(IFS=,; echo "{\"url\":\"http://127.0.0.1:$PORT/\",\"file\":\"$WORK/content.bin\",\"runs\":$RUNS,\"kernel_mib\":$MIB,\"variants\":[${VARIANTS[*]}],\"kernels\":[${KERNELS[*]}]}")
node web/bench/seal.mjs "$PLAN" >"$WORK/result.json"

echo "sealing $MIB MiB to the demo manifest's recipients in headless Chromium, $RUNS runs each, variants in turn; $(nproc) cores, shared with whatever else runs"
python3 - "$WORK/result.json" "$MIB" <<'PY'
import json, statistics, sys
result, mib = json.load(open(sys.argv[1])), int(sys.argv[2])
def line(name, times, base):
    median = statistics.median(times)
    ratio = f"  ×{base / median:.2f} vs {first}" if base else ""
    print(f"  {name:32} median {median:8.1f} ms  {mib / (median / 1000):7.1f} MiB/s{ratio}   runs: {times}")
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
PY

# Without WebAssembly the page runs wasm2js's translation under the browser's interpreter
# (Tor Browser at "Safer" has no JIT): the same kernels built for the MVP feature set,
# translated as web/build.sh does, timed over 1 MiB by Node's V8 with --jitless.
(cd web/bench/kernels && CARGO_TARGET_DIR=$ROOT/target/bench-kernels-mvp RUSTFLAGS="-C target-cpu=mvp" \
  cargo build --offline --quiet --release --target wasm32-unknown-unknown)
web/node_modules/.bin/wasm2js "$ROOT/target/bench-kernels-mvp/wasm32-unknown-unknown/release/peluit_bench_kernels.wasm" \
  -O2 -o "$WORK/kernels-nowasm.mjs"
echo "primitives without WebAssembly (wasm2js, node --jitless, one call over 1 MiB):"
node --jitless --input-type=module -e '
const kernels = await import(process.argv[1]);
const len = 1 << 20;
kernels.kernel_buffer(len);
for (const name of ["chacha20_v09", "chacha20poly1305", "sha256_v10", "stream_sealer"]) {
  const started = performance.now();
  kernels[`kernel_${name}`](len);
  const ms = performance.now() - started;
  console.log(`  ${name.padEnd(32)} ${ms.toFixed(0).padStart(8)} ms  ${(1000 / ms).toFixed(2).padStart(7)} MiB/s`);
}' "$WORK/kernels-nowasm.mjs" 2> >(grep -v "expose_wasm" >&2)
