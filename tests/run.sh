#!/usr/bin/env bash
# Peluit's one test command: installs what the suite needs, then runs every check.
# Used as-is by CI (.ci/run). Safe to run again: each install step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v age >/dev/null 2>&1 || need_apt+=(age)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
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

if [ ! -f web/node_modules/.package-lock.json ] || ! cmp -s web/package-lock.json web/node_modules/.package-lock.json.src 2>/dev/null; then
  step "installing the page's build and test tools (web/package-lock.json)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.package-lock.json.src)
fi

step "the page's crypto module rebuilds byte for byte as committed (web/build.sh)"
rebuilt=$(mktemp -d)
web/build.sh "$rebuilt" >/dev/null
for file in peluit.wasm peluit-nowasm.js; do
  if ! cmp -s "$rebuilt/$file" "crates/peluit-server/assets/$file"; then
    echo "crates/peluit-server/assets/$file differs from a fresh build: run web/build.sh and commit" >&2
    exit 1
  fi
done
rm -rf "$rebuilt"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --locked --workspace

step "deploy/: systemd unit, nginx, tor, container file, example config (deploy/check.sh)"
deploy/check.sh

step "peluit-web's WebAssembly interface under clippy"
cargo clippy --locked -p peluit-web --target wasm32-unknown-unknown -- -D warnings

if [ -d fuzz ]; then
  step "fuzz targets build and pass their seed corpora"
  cargo build --locked --manifest-path fuzz/Cargo.toml --bins
  for target in fuzz/fuzz_targets/*.rs; do
    name=$(basename "$target" .rs)
    fuzz/target/debug/"$name" -runs=0 "fuzz/seeds/$name" >/dev/null
  done
fi

printf '\nall checks passed\n'
