#!/usr/bin/env bash
# Peluit's one test command: installs what the suite needs, then runs every check.
# Used as-is by CI (.ci/run). Safe to run again: each install step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v age >/dev/null 2>&1 || need_apt+=(age)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --locked --workspace

step "peluit-proto for wasm32-unknown-unknown"
cargo build --locked -p peluit-proto --target wasm32-unknown-unknown

if [ -d fuzz ]; then
  step "fuzz targets build and pass their seed corpora"
  cargo build --locked --manifest-path fuzz/Cargo.toml --bins
  for target in fuzz/fuzz_targets/*.rs; do
    name=$(basename "$target" .rs)
    fuzz/target/debug/"$name" -runs=0 "fuzz/seeds/$name" >/dev/null
  done
fi

printf '\nall checks passed\n'
