#!/usr/bin/env bash
# Compares opening speed on one sealed 1 GiB file: proto's streaming opener (examples/open_file)
# against `rage -d` and Go `age -d`, each writing the plaintext to /dev/null, with hyperfine.
#
# Usage: crates/peluit-proto/benches/compare.sh [SIZE_MIB (1024)] [RUNS (5)]
# Installs what is missing: hyperfine and age (Debian packages), rage (cargo install --locked).
# All three open the very same file, sealed by examples/seal_file (padded, so rage and age
# write the padded plaintext: 8-byte length, content, zeros; docs/protocol.md#padding).
# Target: proto's median at least 1.5x faster than rage's.
set -euo pipefail
cd "$(dirname "$0")/../../.."

size_mib=${1:-1024}
runs=${2:-5}

step() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v hyperfine >/dev/null 2>&1 || need_apt+=(hyperfine)
command -v age >/dev/null 2>&1 || need_apt+=(age)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! command -v rage >/dev/null 2>&1; then
  step "installing rage"
  cargo install --locked rage
fi

step "building the examples (release)"
cargo build --release --locked -p peluit-proto --example seal_file --example open_file
examples=target/release/examples

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "sealing ${size_mib} MiB with proto (examples/seal_file)"
age-keygen -o "$work/key.txt" 2>/dev/null
age-keygen -y -o "$work/recipients.txt" "$work/key.txt"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/plain.bin"
"$examples/seal_file" "$work/recipients.txt" "$work/plain.bin" "$work/sealed.age"
rm "$work/plain.bin"

# Every opener must agree before anything is timed.
"$examples/open_file" "$work/key.txt" "$work/sealed.age" /dev/null
rage -d -i "$work/key.txt" -o /dev/null "$work/sealed.age"
age -d -i "$work/key.txt" -o /dev/null "$work/sealed.age"

step "timing: ${runs} runs each, after one warm-up (the file stays in the page cache)"
hyperfine --warmup 1 --runs "$runs" --export-json "$work/results.json" \
  -n "proto open_file" "$examples/open_file $work/key.txt $work/sealed.age /dev/null" \
  -n "rage -d" "rage -d -i $work/key.txt -o /dev/null $work/sealed.age" \
  -n "age -d" "age -d -i $work/key.txt -o /dev/null $work/sealed.age"

step "medians ($(nproc) cores, ${size_mib} MiB of content, $(stat -c %s "$work/sealed.age") bytes sealed)"
python3 - "$work/results.json" "$size_mib" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
size_mib = int(sys.argv[2])
median = {r["command"]: r["median"] for r in results}
proto = median["proto open_file"]
print(f"{'command':<18}{'median s':>10}{'MiB/s':>10}{'proto speed-up':>16}")
for name, m in median.items():
    print(f"{name:<18}{m:>10.3f}{size_mib / m:>10.1f}{m / proto:>15.2f}x")
ratio = median["rage -d"] / proto
verdict = "met" if ratio >= 1.5 else "MISSED"
print(f"target proto >= 1.5x rage -d: {ratio:.2f}x, {verdict}")
EOF
