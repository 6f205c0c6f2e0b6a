#!/usr/bin/env bash
# Install the Debian packages `make setup` needs beyond what a user installs to clone the
# repository (ca-certificates, git, make; docs/INSTALL.md): Python with venv and headers for the
# virtualenv and pycaffe, and what Caffe builds and runs against.
# Already-installed packages make this a no-op that asks no network.
set -euo pipefail
pkgs=(python3 python3-venv python3-dev build-essential cmake dpkg-dev patch
  libboost-system-dev libboost-thread-dev libboost-filesystem-dev libboost-python-dev
  libprotobuf-dev protobuf-compiler libgoogle-glog-dev libgflags-dev libhdf5-dev
  liblmdb-dev libleveldb-dev libsnappy-dev libopenblas-dev libopencv-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system_deps: missing packages; run as root: apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 2
fi
echo "system_deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -qq update >&2
apt-get -qq install -y --no-install-recommends "${missing[@]}" >&2
