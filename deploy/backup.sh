#!/usr/bin/env bash
# Copies a Peluit store (sled files plus uploads/, docs/storage.md#layout) into one tar
# file with a SHA-256 of every file, for deploy/restore.sh. docs/operating.md#backup
#
#   deploy/backup.sh --data-dir /var/lib/peluit/store --out /backup/peluit-2026-11-28.tar \
#     [--wait SECONDS]
#
# The copy is consistent only if nothing writes the store meanwhile. The script takes
# sled's own lock on the store (the one peluit-server holds while it runs) for the whole
# copy, so it refuses a store in use, and a server cannot start on it until the copy is
# done. Two ways to meet that (docs/operating.md#backup):
#   - stop the server for the copy (systemctl stop peluit-server; this; systemctl start);
#   - point --data-dir at a read-only snapshot (LVM, btrfs, ZFS) of the file system that
#     holds the store, taken while the server runs: a snapshot is what a power cut would
#     leave, and the store recovers every acknowledged write from that (docs/storage.md).
# The store holds only ciphertext and metadata without personal data, and the archive
# carries no file times, so the file may be kept anywhere; it still deserves access
# control (it lists case days and sizes).
# Bad input (no store, a store in use, an existing --out) stops it with nothing written.
set -euo pipefail

die() {
  printf 'backup: %s\n' "$1" >&2
  [ $# -lt 2 ] || printf '%s\n' "$2" >&2
  exit 1
}

usage() {
  echo "usage: deploy/backup.sh --data-dir STORE_DIR --out FILE.tar [--wait SECONDS]" >&2
  exit 2
}

data_dir=""
out=""
wait_secs=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) [ $# -ge 2 ] || usage; data_dir="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    --wait) [ $# -ge 2 ] || usage; wait_secs="$2"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "backup: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$data_dir" ] && [ -n "$out" ] || usage
[[ "$wait_secs" =~ ^[0-9]{1,4}$ ]] || die "--wait takes whole seconds (0 to 9999)" "e.g. --wait 30"

[ -d "$data_dir" ] && [ -f "$data_dir/db" ] && [ -f "$data_dir/conf" ] ||
  die "$data_dir is not a Peluit store (no sled db and conf files in it)" \
    "pass the server's data_dir, e.g. /var/lib/peluit/store"
[ ! -e "$out" ] && [ ! -L "$out" ] ||
  die "$out already exists" "choose a new file name; an existing backup is never overwritten"
out_dir=$(dirname -- "$out")
[ -d "$out_dir" ] || die "the folder $out_dir does not exist" "create it first"
# tar's -C options are relative to one another: use absolute paths.
data_dir=$(realpath -- "$data_dir")
out_dir=$(realpath -- "$out_dir")
out="$out_dir/$(basename -- "$out")"

# No file's times go into the archive: an upload file's times say when its attachment
# arrived, to the nanosecond, and the backup may be kept off-site (docs/operating.md#backup).
# Every entry (and every pax extended header) gets mtime 0, no atime or ctime, owner 0:0,
# and the order of names rather than of the directory, which on some file systems is
# the order in which the uploads were created. restore.sh sets owners itself (--owner).
tar_no_times=(--format=posix --numeric-owner --mtime=@0 --pax-option=delete=atime,delete=ctime
  --sort=name --owner=0 --group=0)
tar --create --file /dev/null "${tar_no_times[@]}" --files-from /dev/null 2>/dev/null ||
  die "this tar cannot leave the file times out of the archive" "install GNU tar 1.28 or later"

# sled locks its db file with flock(2) while a process has the store open. --wait gives
# a server that is shutting down time to let go of it.
exec 9<"$data_dir/db"
if [ "$wait_secs" -eq 0 ]; then lock_mode=(--nonblock); else lock_mode=(--wait "$wait_secs"); fi
flock "${lock_mode[@]}" 9 ||
  die "the store $data_dir is in use (a peluit-server has it open)" \
    "stop the server first (systemctl stop peluit-server), or back up a file-system snapshot"

partial=$(mktemp "$out_dir/.peluit-backup.XXXXXX")
sums=$(mktemp "$out_dir/.peluit-sums.XXXXXX")
cleanup() { rm -f -- "$partial" "$sums"; }
trap cleanup EXIT

# Checksums and archive are both read while the lock is held: they describe the same bytes.
# OpenSSL's SHA-256 uses the CPU's SHA instructions (4.7 times coreutils' sha256sum on
# 1 GiB here); the output is sha256sum's format either way.
hash_files() {
  if command -v openssl >/dev/null 2>&1; then
    xargs -0 --no-run-if-empty openssl dgst -sha256 -r -- | sed -e 's/^\([0-9a-f]\{64\}\) \*/\1  /'
  else
    xargs -0 --no-run-if-empty sha256sum --
  fi
}
(cd "$data_dir" && find . -type f -print0 | LC_ALL=C sort -z | hash_files) >"$sums" ||
  die "cannot read every file of $data_dir" "check the permissions (run as root or as the peluit user)"
tar --create --file "$partial" "${tar_no_times[@]}" \
  --transform 's,^\.peluit-sums\.[A-Za-z0-9]*$,SHA256SUMS,' -C "$out_dir" "$(basename -- "$sums")" \
  --transform 's,^\.,store,' -C "$data_dir" . ||
  die "cannot write the archive in $out_dir" "check the free space and permissions there"
# The archive reaches the disk before it takes its final name.
sync -- "$partial"
mv -- "$partial" "$out"
sync -- "$out_dir"
files=$(wc -l <"$sums")
echo "backup: $out ($files files from $data_dir)"
