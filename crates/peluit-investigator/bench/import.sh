#!/usr/bin/env bash
# The import benchmark of issue 5: import of one bundle holding a large attachment and of
# one holding many small reports, side by side with `rage -d` and Go `age -d` on the same
# sealed data, file to file, with peak RSS. Usage: bench/import.sh [BYTES] [REPORTS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
BYTES=${1:-1073741824}
REPORTS=${2:-10000}
DIR=$(mktemp -d /var/tmp/peluit-bench.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
cargo build -q --release -p peluit-investigator
# The key file gets the low KDF cost so that unlocking it (about a second by design)
# does not count as import time.
PELUIT_DANGEROUSLY_LOW_KDF_COST=1 PELUIT_BENCH_DIR=$DIR PELUIT_BENCH_BYTES=$BYTES PELUIT_BENCH_REPORTS=$REPORTS \
  cargo test -q --release -p peluit-investigator --test bench_data -- --ignored >/dev/null
printf 'bench passphrase' > "$DIR/pass"
DESK="target/release/peluit-investigator --today 2026-03-14 --passphrase-file $DIR/pass"

measure() { # label, then the command; prints wall and user CPU seconds, peak RSS (KiB)
  local label=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %U %M" -o "$DIR/time" "$@" >/dev/null 2>&1
  read -r secs user rss < "$DIR/time"
  printf '%-28s %8.2f s wall %8.2f s user %8d KiB\n' "$label" "$secs" "$user" "$rss"
  echo "$secs"  > "$DIR/last"
}

fresh_desk() {
  rm -rf "$DIR/desk"
  $DESK --desk "$DIR/desk" init --institution itjen-bench --manifest-key "$(cat "$DIR/manifest-key.txt")" >/dev/null
  cp "$DIR/investigator.key" "$DIR/desk/keys/investigator.key"
  $DESK --desk "$DIR/desk" manifest install "$DIR/manifest.json" >/dev/null
}

echo "large attachment: $BYTES bytes"
fresh_desk
measure "peluit-investigator import" $DESK --desk "$DIR/desk" import "$DIR/big.bundle"
desk=$(cat "$DIR/last")
measure "rage -d" rage -d -i "$DIR/identity.txt" -o "$DIR/out-rage" "$DIR/attachment.age"
rage=$(cat "$DIR/last")
measure "age -d (Go)" age -d -i "$DIR/identity.txt" -o "$DIR/out-age" "$DIR/attachment.age"
goage=$(cat "$DIR/last")
awk -v b="$BYTES" -v d="$desk" -v r="$rage" -v g="$goage" 'BEGIN {
  printf "MB/s: desk %.0f, rage %.0f, age %.0f; desk/rage %.2fx, desk/age %.2fx\n",
    b/d/1e6, b/r/1e6, b/g/1e6, r/d, g/d }'

echo "small reports: $REPORTS"
fresh_desk
measure "peluit-investigator import" $DESK --desk "$DIR/desk" import "$DIR/small.bundle"
desk=$(cat "$DIR/last")
measure "rage -d (each envelope)" bash -c "for f in $DIR/envelopes/*.age; do rage -d -i $DIR/identity.txt -o /dev/null \$f; done"
rage=$(cat "$DIR/last")
measure "age -d (each envelope)" bash -c "for f in $DIR/envelopes/*.age; do age -d -i $DIR/identity.txt -o /dev/null \$f; done"
goage=$(cat "$DIR/last")
awk -v n="$REPORTS" -v d="$desk" -v r="$rage" -v g="$goage" 'BEGIN {
  printf "reports/s: desk %.0f, rage %.0f, age %.0f\n", n/d, n/r, n/g }'
