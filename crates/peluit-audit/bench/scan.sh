#!/usr/bin/env bash
# Scan speed of `peluit-audit store`: builds a store with real age ciphertext (default
# 2048 MiB of attachments in 64 MiB uploads, plus 1,000 cases), then times, side by side
# in one hyperfine run with a warm page cache, the audit against `cat` of the same files
# (pure reading, the floor for any scan).
#
# Usage: crates/peluit-audit/bench/scan.sh [MIB] [WORK_DIR]
# Report: medians, the audit's throughput in stored bytes per second, and the ratios.
set -euo pipefail

mib="${1:-2048}"
work="${2:-$(mktemp -d /tmp/peluit-audit-bench.XXXXXX)}"
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"

cargo build --locked --release -p peluit-audit --bin peluit-audit --example make_bench_store
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
audit="$target/release/peluit-audit"

if [ ! -d "$work/data" ]; then
    echo "building a store of $mib MiB of sealed attachments in $work ..."
    "$target/release/examples/make_bench_store" "$work" "$mib" >/dev/null
fi
data="$work/data"
pin="$(cat "$work/manifest-key.txt")"
bytes="$("$audit" --json store "$data" --manifest-key "$pin" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["clean"], d; print(d["store"]["scanned"]["sealed_bytes"])')"
echo "stored ciphertext scanned per run: $bytes bytes"

# Warm the page cache so every command reads from memory, as the audit of a copy does.
cat "$data"/uploads/*/* "$data"/db > /dev/null

hyperfine --warmup 1 --runs "${RUNS:-7}" --export-json "$work/hyperfine.json" \
    -n audit "$audit store $data --manifest-key $pin" \
    -n cat "cat $data/uploads/*/* $data/db > /dev/null"

python3 - "$work/hyperfine.json" "$bytes" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
stored = int(sys.argv[2])
audit = results["audit"]["median"]
print(f"audit median {audit:.3f} s: {stored / audit / 1e9:.2f} GB/s of stored ciphertext")
for base in ("cat",):
    m = results[base]["median"]
    print(f"{base} median {m:.3f} s; audit/{base} = {audit / m:.2f}")
PY
echo "(machine: $(nproc) cores, shared with other builds; load $(cut -d' ' -f1-3 /proc/loadavg))"
