#!/usr/bin/env bash
# Restores a deploy/backup.sh archive into a new store folder, checking every file's
# SHA-256 first. docs/operating.md#restore
#
#   deploy/restore.sh --from /backup/peluit-2026-11-28.tar --data-dir /var/lib/peluit/store \
#     [--owner peluit:peluit]
#
# The store appears whole or not at all: the archive is unpacked and checked beside the
# target, then renamed into place. A damaged or cut-off archive, an archive that is not a
# Peluit backup, or a target folder that already holds anything stops it with nothing
# written. Start peluit-server on the restored folder afterwards; it opens it like any
# store (docs/storage.md#upload-files: recovery at open).
set -euo pipefail

die() {
  printf 'restore: %s\n' "$1" >&2
  [ $# -lt 2 ] || printf '%s\n' "$2" >&2
  exit 1
}

usage() {
  echo "usage: deploy/restore.sh --from FILE.tar --data-dir NEW_STORE_DIR [--owner USER:GROUP]" >&2
  exit 2
}

from=""
data_dir=""
owner=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from) [ $# -ge 2 ] || usage; from="$2"; shift 2 ;;
    --data-dir) [ $# -ge 2 ] || usage; data_dir="$2"; shift 2 ;;
    --owner) [ $# -ge 2 ] || usage; owner="$2"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "restore: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$from" ] && [ -n "$data_dir" ] || usage

[ -f "$from" ] || die "no backup file at $from" "pass the .tar file deploy/backup.sh wrote"
if [ -e "$data_dir" ] || [ -L "$data_dir" ]; then
  [ -d "$data_dir" ] && [ -z "$(ls -A -- "$data_dir")" ] ||
    die "$data_dir already exists and is not empty" \
      "restore into a new folder; a store is never overwritten (move the old one aside first)"
fi
parent=$(dirname -- "$data_dir")
mkdir -p -- "$parent"
parent=$(realpath -- "$parent")
target="$parent/$(basename -- "$data_dir")"

# Only SHA256SUMS and store/… may be in the archive; listing it also reads it to the end,
# so a cut-off file is refused before anything is unpacked.
listing=$(tar --list --file "$from" 2>/dev/null) ||
  die "$from is damaged or not a tar archive" "use another copy of the backup"
while IFS= read -r member; do
  case "$member" in
    SHA256SUMS | store | store/ | store/*) ;;
    *) die "$from is not a Peluit backup (it holds $member)" "pass a file written by deploy/backup.sh" ;;
  esac
  case "/$member/" in
    */../*) die "$from is not a Peluit backup (a path leaves the store)" "pass a file written by deploy/backup.sh" ;;
  esac
done <<<"$listing"
grep -qx 'SHA256SUMS' <<<"$listing" && grep -qx 'store/\?' <<<"$listing" ||
  die "$from is not a Peluit backup (no SHA256SUMS or store/)" "pass a file written by deploy/backup.sh"

stage=$(mktemp -d "$parent/.peluit-restore.XXXXXX")
trap 'rm -rf -- "$stage"' EXIT
tar --extract --file "$from" --directory "$stage" --no-same-owner --no-overwrite-dir 2>/dev/null ||
  die "$from is damaged (it cannot be unpacked)" "use another copy of the backup"
[ -f "$stage/store/db" ] && [ -f "$stage/store/conf" ] ||
  die "$from holds no sled store" "pass a file written by deploy/backup.sh"

# Every file listed is there with its bytes, and nothing else is: the store's files,
# hashed as backup.sh hashed them, must give SHA256SUMS exactly.
hash_files() {
  if command -v openssl >/dev/null 2>&1; then
    xargs -0 --no-run-if-empty openssl dgst -sha256 -r -- | sed -e 's/^\([0-9a-f]\{64\}\) \*/\1  /'
  else
    xargs -0 --no-run-if-empty sha256sum --
  fi
}
(cd "$stage/store" && find . -type f -print0 | LC_ALL=C sort -z | hash_files) >"$stage/found" ||
  die "cannot read the unpacked files" "check the free space and permissions in $parent"
cmp -s -- "$stage/found" "$stage/SHA256SUMS" ||
  die "$from is damaged: a file is missing, added or differs from its SHA-256" "use another copy of the backup"

if [ -n "$owner" ]; then
  chown -R -- "$owner" "$stage/store" ||
    die "cannot give the store to $owner" "check that the user exists (deploy/systemd/peluit.sysusers)"
fi
chmod 0700 "$stage/store"
# Unpacking and the check above dated every file and folder with today's time of day
# (the archive carries none); the store keeps 1970-01-01 instead (docs/storage.md#file-times).
find "$stage/store" -exec touch --no-dereference --date=@0 -- {} + ||
  die "cannot reset the times of the unpacked files" "check the permissions in $parent"
# Everything is on disk before the store takes its name.
sync --file-system -- "$stage/store"
if [ -d "$target" ]; then
  rmdir -- "$target"
fi
mv -T -- "$stage/store" "$target"
sync -- "$parent"
files=$(wc -l <"$stage/SHA256SUMS")
echo "restore: $target ($files files checked from $from)"
