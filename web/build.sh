#!/usr/bin/env bash
# Builds the reporter page's crypto module, reproducibly, from crates/peluit-web:
#   peluit.wasm       WebAssembly with rustc's default wasm32 features;
#   peluit-nowasm.js  the same crate built for the WebAssembly MVP feature set and
#                     translated to JavaScript by binaryen's wasm2js, for browsers with
#                     WebAssembly off.
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

REMAP="--remap-path-prefix=$ROOT=/peluit --remap-path-prefix=$CARGO_HOME=/cargo"
export SOURCE_DATE_EPOCH=0
cd "$ROOT"
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# build TARGET_DIR RUSTFLAGS OUT_NAME: one optimised, stripped module. wasm-opt keeps to the
# features the module's target_features section declares.
build() {
  CARGO_TARGET_DIR=$1 RUSTFLAGS="$2 $REMAP" \
    cargo build --locked --quiet -p peluit-web --target wasm32-unknown-unknown --profile web
  "$BIN/wasm-opt" "$1/wasm32-unknown-unknown/web/peluit_web.wasm" -O3 --strip-debug \
    --strip-producers -o "$WORK/$3"
}

# WebAssembly: rustc's default wasm32 features (bulk memory, sign extension…).
build "$ROOT/target/web" "" peluit.wasm
# The JavaScript translation: the same crate for the MVP feature set, the only one wasm2js
# translates completely.
build "$ROOT/target/web-mvp" "-C target-cpu=mvp" peluit-mvp.wasm
# wasm2js prints the whole module on a validation error; keep only the verdict.
if ! "$BIN/wasm2js" "$WORK/peluit-mvp.wasm" -O2 -o "$WORK/peluit-nowasm.js" >"$WORK/wasm2js.log" 2>&1; then
  grep -v '^ *[;(]' "$WORK/wasm2js.log" | head -20 >&2
  exit 1
fi
mv "$WORK/peluit.wasm" "$WORK/peluit-nowasm.js" "$OUT/"
(cd "$OUT" && sha256sum peluit.wasm peluit-nowasm.js)
