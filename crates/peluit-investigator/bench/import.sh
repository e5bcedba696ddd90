#!/usr/bin/env bash
# The import benchmark of issue 5: import of one bundle holding a large attachment and of
# one holding many small reports, side by side with `rage -d` and Go `age -d` on the same
# sealed data, file to file, with peak RSS. Each measurement runs ROUNDS times (default 3),
# the three tools taking turns, and the median is reported.
# Usage: bench/import.sh [BYTES] [REPORTS]   (ROUNDS=N in the environment)
set -euo pipefail
cd "$(dirname "$0")/../../.."
BYTES=${1:-1073741824}
REPORTS=${2:-10000}
ROUNDS=${ROUNDS:-3}
DIR=$(mktemp -d /var/tmp/peluit-bench.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
cargo build -q --release -p peluit-investigator
# The key file gets the low KDF cost so that unlocking it (about a second by design)
# does not count as import time.
PELUIT_DANGEROUSLY_LOW_KDF_COST=1 PELUIT_BENCH_DIR=$DIR PELUIT_BENCH_BYTES=$BYTES PELUIT_BENCH_REPORTS=$REPORTS \
  cargo test -q --release -p peluit-investigator --test bench_data -- --ignored >/dev/null
printf 'bench passphrase' > "$DIR/pass"
DESK="target/release/peluit-investigator --today 2026-03-14 --passphrase-file $DIR/pass"

run() { # label, then the command; appends "wall user rss" to $DIR/<label>
  local label=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %U %M" -o "$DIR/time" "$@" >/dev/null 2>&1
  cat "$DIR/time" >> "$DIR/$label"
}

median() { # file, column: the median of that column
  cut -d' ' -f"$2" "$1" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

report() { # label, name: prints the medians, leaves the wall median in $DIR/last
  printf '%-30s %8.2f s wall %8.2f s user %8d KiB   (median of %d)\n' "$2" \
    "$(median "$DIR/$1" 1)" "$(median "$DIR/$1" 2)" "$(median "$DIR/$1" 3)" "$ROUNDS"
  median "$DIR/$1" 1 > "$DIR/last"
}

fresh_desk() {
  rm -rf "$DIR/desk"
  $DESK --desk "$DIR/desk" init --institution itjen-bench --manifest-key "$(cat "$DIR/manifest-key.txt")" >/dev/null
  cp "$DIR/investigator.key" "$DIR/desk/keys/investigator.key"
  $DESK --desk "$DIR/desk" manifest install "$DIR/manifest.json" >/dev/null
}

echo "large attachment: $BYTES bytes, $(nproc) cores"
for _ in $(seq "$ROUNDS"); do
  fresh_desk
  run big-desk $DESK --desk "$DIR/desk" import "$DIR/big.bundle"
  run big-rage rage -d -i "$DIR/identity.txt" -o "$DIR/out-rage" "$DIR/attachment.age"
  run big-age age -d -i "$DIR/identity.txt" -o "$DIR/out-age" "$DIR/attachment.age"
  rm -f "$DIR/out-rage" "$DIR/out-age"
done
report big-desk "peluit-investigator import"; desk=$(cat "$DIR/last")
report big-rage "rage -d"; rage=$(cat "$DIR/last")
report big-age "age -d (Go)"; goage=$(cat "$DIR/last")
awk -v b="$BYTES" -v d="$desk" -v r="$rage" -v g="$goage" 'BEGIN {
  printf "MB/s: desk %.0f, rage %.0f, age %.0f; desk/rage %.2fx, desk/age %.2fx\n",
    b/d/1e6, b/r/1e6, b/g/1e6, r/d, g/d }'

echo "small reports: $REPORTS"
for _ in $(seq "$ROUNDS"); do
  fresh_desk
  run small-desk $DESK --desk "$DIR/desk" import "$DIR/small.bundle"
  run small-rage bash -c "for f in $DIR/envelopes/*.age; do rage -d -i $DIR/identity.txt -o /dev/null \$f; done"
  run small-age bash -c "for f in $DIR/envelopes/*.age; do age -d -i $DIR/identity.txt -o /dev/null \$f; done"
done
report small-desk "peluit-investigator import"; desk=$(cat "$DIR/last")
report small-rage "rage -d (each envelope)"; rage=$(cat "$DIR/last")
report small-age "age -d (each envelope)"; goage=$(cat "$DIR/last")
awk -v n="$REPORTS" -v d="$desk" -v r="$rage" -v g="$goage" 'BEGIN {
  printf "reports/s: desk %.0f, rage %.0f, age %.0f\n", n/d, n/r, n/g }'
