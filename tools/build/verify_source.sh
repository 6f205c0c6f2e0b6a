#!/usr/bin/env bash
# Check a Debian source package against pinned sha256s before anything unpacks or builds it.
#
#   verify_source.sh DIR PINS     PINS: lines "SHA256  FILE" (sha256sum's format), one a .dsc
#
# Every pinned FILE must be in DIR with its pinned hash, and the .dsc's own Checksums-Sha256
# list must name exactly the other pinned files with the same hashes (that list is what
# dpkg-source unpacks). The first mismatch: one line naming the file and the expected and
# actual hash, exit status 2. Silent on success. build_caffe.sh holds the pins.
set -euo pipefail
dir=${1:?usage: verify_source.sh DIR PINS} pins=${2:?usage: verify_source.sh DIR PINS}
fail() { echo "verify_source: $*" >&2; exit 2; }
fix="refusing to build it: fetch it again (make setup), or put the pinned file there"

dsc=
while read -r want name; do
  [ -n "${name:-}" ] || continue
  f="$dir/$name"
  [ -f "$f" ] || fail "$f: missing: the pinned Caffe source needs it; $fix"
  got=$(sha256sum "$f" | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "$f: sha256 $got, expected $want (the pinned Caffe source): $fix"
  case $name in *.dsc) dsc=$f ;; esac
done < "$pins"
[ -n "$dsc" ] || fail "$pins: no .dsc among the pins"

listed=0
while read -r hash size name; do
  pinned=$(awk -v n="$name" '$2 == n { print $1 }' "$pins")
  [ "$pinned" = "$hash" ] || fail "$dsc: lists $name with sha256 $hash, expected ${pinned:-no such file} (the pinned Caffe source): $fix"
  listed=$((listed + 1))
done < <(awk '/^Checksums-Sha256:/ { on = 1; next } on && /^ / { print $1, $2, $3; next } { on = 0 }' "$dsc")
others=$(awk 'NF == 2 && $2 !~ /\.dsc$/' "$pins" | wc -l)
[ "$listed" = "$others" ] || fail "$dsc: lists $listed files with sha256, $others are pinned: $fix"
