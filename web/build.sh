#!/usr/bin/env bash
# Builds the reporter page's crypto module, reproducibly:
#   crates/peluit-web → peluit.wasm (WebAssembly, MVP features so wasm2js can translate it)
#                     → peluit-nowasm.js (binaryen's wasm2js: the same module as JavaScript,
#                       for browsers with WebAssembly off)
# Usage: web/build.sh [OUT_DIR]   (default: crates/peluit-server/assets, where the server
# embeds them from). Paths are remapped so the output does not depend on the checkout's
# folder or the user's cargo home; docs/web.md#build says what else it depends on.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/crates/peluit-server/assets}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
BIN=$ROOT/web/node_modules/.bin
if [ ! -x "$BIN/wasm2js" ]; then
  (cd "$ROOT/web" && npm ci --no-audit --no-fund --loglevel=error)
fi

export CARGO_TARGET_DIR=$ROOT/target/web
export RUSTFLAGS="-C target-cpu=mvp --remap-path-prefix=$ROOT=/peluit --remap-path-prefix=$CARGO_HOME=/cargo"
export SOURCE_DATE_EPOCH=0
cd "$ROOT"
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
cargo build --locked --quiet -p peluit-web --target wasm32-unknown-unknown --profile web

WASM=$CARGO_TARGET_DIR/wasm32-unknown-unknown/web/peluit_web.wasm
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN/wasm-opt" "$WASM" -O3 --strip-debug --strip-producers -o "$WORK/peluit.wasm"
# wasm2js prints the whole module on a validation error; keep only the verdict.
if ! "$BIN/wasm2js" "$WORK/peluit.wasm" -O2 -o "$WORK/peluit-nowasm.js" >"$WORK/wasm2js.log" 2>&1; then
  grep -v '^ *[;(]' "$WORK/wasm2js.log" | head -20 >&2
  exit 1
fi
mv "$WORK/peluit.wasm" "$WORK/peluit-nowasm.js" "$OUT/"
(cd "$OUT" && sha256sum peluit.wasm peluit-nowasm.js)
