#!/usr/bin/env bash
# Prove the README's two commands on another Debian release, here, in a chroot:
#
#   bash tools/build/try_system.sh trixie            # Debian 13 (Python 3.13, GCC 14, Boost 1.83)
#   bash tools/build/try_system.sh bookworm          # Debian 12, for comparison
#
# Creates (once, then reuses) a minimal root file system with debootstrap under
# $TRY_ROOT (default ~/.cache/dhn/systems/<release>), copies a clean clone of this
# repository's HEAD into it, and runs `make setup demo` and `make test` there as root, with
# /proc, /dev and /dev/pts mounted for the run and unmounted on every exit path. The host's
# own apt sources and packages are not touched beyond installing debootstrap; the chroot gets
# its release's sources on the mirror the host's sources name. The log (with wall times) is kept
# in runs/try_system-<release>.log. Not part of CI: it takes tens of minutes.
set -euo pipefail

release=${1:?usage: try_system.sh RELEASE (e.g. trixie)}
here=$(cd "$(dirname "$0")/../.." && pwd)
root=${TRY_ROOT:-${DHN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dhn}/systems/$release}
log=$here/runs/try_system-$release.log
mkdir -p "$here/runs"
say() { echo "try_system: $*" | tee -a "$log" >&2; }
[ "$(id -u)" = 0 ] || { echo "try_system: needs root (debootstrap, chroot, mount)" >&2; exit 2; }

mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
         | grep -v security | head -1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
: > "$log"
say "release $release, root $root, mirror $mirror, $(date -u +%FT%TZ)"

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap on the host (the only host package this touches)"
  DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends debootstrap >&2
fi

mounted=()
cleanup() {
  local i
  for (( i=${#mounted[@]}-1; i>=0; i-- )); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# minbase plus only what the README has a user install before cloning: everything else must come
# from `make setup` (system_deps.sh). The marker holds the list: a root made with another is remade.
include=ca-certificates,git,make
if [ "$(cat "$root/.debootstrap-complete" 2>/dev/null)" != "$include" ]; then
  say "debootstrap $release (minbase + $include) into $root"
  rm -rf "$root"; mkdir -p "$root"
  start=$(date +%s)
  debootstrap --variant=minbase --include="$include" \
    "$release" "$root" "$mirror" >> "$log" 2>&1 || { say "debootstrap failed (log: $log)"; exit 1; }
  say "debootstrap took $(( $(date +%s) - start )) s"
  echo "$include" > "$root/.debootstrap-complete"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Extra CA certificates the host trusts (here: a TLS-intercepting egress proxy to PyPI) are
# trusted in the chroot too, so that pip reaches PyPI from it as from the host.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >> "$log" 2>&1 || true
fi

for m in proc dev dev/pts; do
  mkdir -p "$root/$m"
  case $m in
    proc) mount -t proc proc "$root/proc" ;;
    *) mount --bind "/$m" "$root/$m" ;;
  esac
  mounted+=("$root/$m")
done

# A clean clone of HEAD: what CI and a user get, none of this working tree's builds or data.
rm -rf "$root/root/dhn"
git clone -q "$here" "$root/root/dhn"
say "clone of $(git -C "$here" rev-parse --short HEAD) in /root/dhn"

run() {   # run "what" "command": in the chroot, timed, logged
  local what=$1 start rc; shift
  say "== $what: $*"
  start=$(date +%s)
  set +e
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 bash -lc "cd /root/dhn && $*" >> "$log" 2>&1
  rc=$?
  set -e
  say "== $what: exit $rc after $(( $(date +%s) - start )) s"
  return $rc
}
run system "cat /etc/os-release | head -2; python3 --version; gcc --version | head -1 || true"
run setup "make setup demo"
run test "make test"
say "done: $(grep -aE '^[0-9]+ passed|passed' "$log" | tail -1)"
