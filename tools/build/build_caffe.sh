#!/usr/bin/env bash
# Build BVLC Caffe (CPU, pycaffe, Python layer, LMDB, OpenCV) into a cache entry keyed by
# the Caffe version, the project's patches, the Python and the variant. A second run with
# the same key does nothing. What it does and why: docs/INSTALL.md.
#
#   build_caffe.sh            print nothing but build (if needed); last line = install prefix
#   build_caffe.sh --prefix   print the cache entry's path; exit 1 if it is not built yet
#   build_caffe.sh --clean    remove every Caffe build this script made (any version, system,
#                             Python, variant) and their work folders; nothing else in the cache
#   CUDA=1 CUDA_ARCH=90 ...   the CUDA variant (no cuDNN), in its own cache entry
#   MINIMAL=1 ...             without OpenCV, LevelDB and HDF5 (the GPU bundle, tools/gpu/):
#                             Data layers then read raw (unencoded) LMDB records only
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# Debian 11's source package: BVLC master of 2018-08-21 + Debian's patches (OpenCV 4 fix).
# Its three files are pinned by sha256 (as first fetched from deb.debian.org, bullseye); nothing
# else is unpacked or built (verify_source.sh: each file, and the .dsc's own list of the others).
CAFFE_DEB_VERSION=1.0.0+git20180821.99bd997-8
CAFFE_SOURCE_PINS="\
c492f4893fc1ba1fb514b2d9b4763bc78dc93571ea24adc6e604eccbb93cdd64  caffe_1.0.0+git20180821.99bd997-8.dsc
e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c  caffe_1.0.0+git20180821.99bd997.orig.tar.gz
07cf073227494a6b07234e40cb5df91db566616593eef9baafdc4d06ad159f21  caffe_1.0.0+git20180821.99bd997-8.debian.tar.xz"
# CAFFE_SOURCE_DIR=DIR: take those files from a local folder (a mirror, an offline copy) instead of apt.
CAFFE_SOURCE_DIR=${CAFFE_SOURCE_DIR:-}
PYTHON=${PYTHON:-python3}
CACHE=${DHN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dhn}
CUDA=${CUDA:-0}
MINIMAL=${MINIMAL:-0}
JOBS=${JOBS:-$(nproc)}
CUBLAS_WHEEL=${CUBLAS_WHEEL:-13.0.2.14}   # matches CUDA 13.0's runtime
CURAND_WHEEL=${CURAND_WHEEL:-10.4.0.35}

if [ "${1:-}" = --clean ]; then   # `make clean-caffe`: only entries named as $key below (and work-$key)
  for entry in "$CACHE"/caffe-* "$CACHE"/work-caffe-*; do
    if [[ -d $entry && ${entry##*/} =~ ^(work-)?caffe-[A-Za-z0-9._]+-[A-Za-z0-9.]+-py[0-9]+\.[0-9]+-[A-Za-z0-9-]+-r[0-9]+-[0-9a-f]{12}$ ]]; then
      rm -rf "$entry" && echo "build_caffe: removed $entry" >&2
    fi
  done
  exit 0
fi

pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# Bump RECIPE when a change below alters what gets built (cmake options, install layout).
RECIPE=1
patch_hash=$(cat "$here"/patches/*.patch | sha256sum | cut -c1-12)
variant=cpu
if [ "$CUDA" = 1 ]; then
  CUDA_ARCH=${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d . || true)}
  [ -n "$CUDA_ARCH" ] || { echo "build_caffe: no GPU found by nvidia-smi; give the architecture, e.g. CUDA_ARCH=90" >&2; exit 2; }
  variant=cuda$CUDA_ARCH
fi
[ "$MINIMAL" = 1 ] && variant=$variant-min
# The system release is part of the key: a Debian 12 and a Debian 13 build never share an entry.
release=$( (. /etc/os-release 2>/dev/null && echo "${ID:-linux}${VERSION_ID:+$VERSION_ID}") || echo unknown)
key="caffe-${CAFFE_DEB_VERSION//[^A-Za-z0-9.]/_}-$release-py$pyver-$variant-r$RECIPE-$patch_hash"
prefix="$CACHE/$key"

if [ "${1:-}" = --prefix ]; then
  echo "$prefix"; [ -f "$prefix/.complete" ]; exit
fi
if [ -f "$prefix/.complete" ]; then
  echo "$prefix"; exit 0
fi

log() { echo "build_caffe: $*" >&2; }
work="$CACHE/work-$key"
# Installed straight into $prefix (Caffe's CMake bakes the install path into the rpath);
# only a finished build gets the .complete marker, and a half-built $prefix is wiped first.
rm -rf "$work" "$prefix"; mkdir -p "$work"

# 1. Fetch the Debian source package with a private apt config: the system's sources stay
#    untouched. The mirror is the one the system's own sources name. [trusted=yes] (bullseye's
#    archive key may not be on the system) is safe only because the files are checked against
#    the pins before use.
src_dir=$work
if [ -n "$CAFFE_SOURCE_DIR" ]; then
  src_dir=$CAFFE_SOURCE_DIR
  log "caffe $CAFFE_DEB_VERSION source from $src_dir"
else
  mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
           | grep -v security | head -1 | tr -d ' ' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  apt_dir="$work/apt"; mkdir -p "$apt_dir/lists/partial"
  echo "deb-src [trusted=yes] ${mirror%/} bullseye main" > "$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$apt_dir/lists" -o Debug::NoLocking=1)
  log "fetching caffe $CAFFE_DEB_VERSION source from $mirror (bullseye)"
  apt-get "${apt_opts[@]}" -qq update >&2
  (cd "$work" && apt-get "${apt_opts[@]}" -qq source --download-only "caffe=$CAFFE_DEB_VERSION" >&2)
fi
printf '%s\n' "$CAFFE_SOURCE_PINS" > "$work/source.sha256"
"$here/verify_source.sh" "$src_dir" "$work/source.sha256" || { rm -rf "$work"; exit 2; }
# --no-check: no Debian keyring here for the .dsc's signature; its checksums were checked above.
dsc=$(awk '$2 ~ /\.dsc$/ { print $2 }' "$work/source.sha256")
dpkg-source -x --no-check "$src_dir/$dsc" "$work/src" >&2   # applies Debian's patches

# 2. The project's own patches (each says why at its top).
for p in "$here"/patches/*.patch; do
  log "patch $(basename "$p")"
  patch -d "$work/src" -p1 --forward --quiet < "$p" >&2
done

# 3. Configure and build.
# absolute, but not symlink-resolved: resolving a venv's python would lose the venv (and numpy)
pyexe=$(command -v "$PYTHON"); pyexe="$(cd "$(dirname "$pyexe")" && pwd)/$(basename "$pyexe")"
pyinc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
pylib=$("$PYTHON" -c 'import sysconfig, os; print(os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")))')
cmake_opts=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix"
  -DBLAS=Open -DBUILD_python=ON -DBUILD_python_layer=ON -Dpython_version="$pyver"
  -DPYTHON_EXECUTABLE="$pyexe" -DPYTHON_INCLUDE_DIR="$pyinc" -DPYTHON_LIBRARY="$pylib"
  -DUSE_LMDB=ON -DUSE_OPENCV=ON -DUSE_LEVELDB=ON -DBUILD_docs=OFF
)
if [ "$MINIMAL" = 1 ]; then
  # --as-needed drops the HDF5/curl libraries Caffe's CMake links unconditionally
  # (docs/INSTALL.md); patch 0003 guards the one HDF5 call left in net.cpp.
  cmake_opts+=(-DUSE_OPENCV=OFF -DUSE_LEVELDB=OFF -DUSE_HDF5=OFF
    -DCMAKE_SHARED_LINKER_FLAGS=-Wl,--as-needed -DCMAKE_EXE_LINKER_FLAGS=-Wl,--as-needed)
fi
if [ "$CUDA" = 1 ]; then
  # cuBLAS/cuRAND: the system CUDA's when it has them, else the PyPI wheels (nvidia-cublas,
  # nvidia-curand; docs/INSTALL.md), installed into the cache. CUDA_EXTRA_ROOT overrides.
  # the toolkit root: CUDA_HOME, else /usr/local/cuda, else from nvcc's path (which may be a
  # wrapper script, as /usr/local/bin/nvcc is on these machines)
  cuda_root=${CUDA_HOME:-}
  [ -n "$cuda_root" ] || { [ -x /usr/local/cuda/bin/nvcc ] && cuda_root=/usr/local/cuda; } || true
  [ -n "$cuda_root" ] || cuda_root=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  extra=${CUDA_EXTRA_ROOT:-}
  if [ -z "$extra" ] && [ ! -e "$cuda_root/include/cublas_v2.h" ]; then
    wheels="$CACHE/cuda-wheels"
    if [ ! -e "$wheels/nvidia/cu13/include/cublas_v2.h" ]; then
      log "fetching cuBLAS/cuRAND wheels into $wheels"
      "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps --target "$wheels" \
        "nvidia-cublas==$CUBLAS_WHEEL" "nvidia-curand==$CURAND_WHEEL" >&2
    fi
    extra="$wheels/nvidia/cu13"
  fi
  cmake_opts+=(-DCPU_ONLY=OFF -DUSE_CUDNN=OFF -DCUDA_ARCH_NAME=Manual -DCUDA_ARCH_BIN="$CUDA_ARCH"
    -DCUDA_ARCH_PTX="$CUDA_ARCH" -DCUDA_TOOLKIT_ROOT_DIR="$cuda_root"
    "-DCUDA_NVCC_FLAGS=-static-global-template-stub=false;-device-entity-has-hidden-visibility=false")
  if [ -n "$extra" ]; then
    # CPATH reaches both g++ and nvcc (which preprocesses with the host compiler).
    export CPATH="$extra/include${CPATH:+:$CPATH}" LIBRARY_PATH="$extra/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
    cmake_opts+=(-DCUDA_cublas_LIBRARY="$(ls "$extra"/lib/libcublas.so.* | head -1)"
                 -DCUDA_curand_LIBRARY="$(ls "$extra"/lib/libcurand.so.* | head -1)"
                 -DCMAKE_INSTALL_RPATH="$prefix/lib;$extra/lib")
  fi
else
  cmake_opts+=(-DCPU_ONLY=ON)
fi
mkdir -p "$work/build"
log "configuring ($variant, python $pyver)"
# Configured twice, with the options both times: FindCUDA clears the cuBLAS/cuRAND paths it is
# given when it first meets a toolkit root (docs/INSTALL.md); the second run decides.
(cd "$work/build" && { cmake "${cmake_opts[@]}" ../src > cmake.log 2>&1 || true; } \
   && cmake "${cmake_opts[@]}" ../src >> cmake.log 2>&1) \
  || { tail -30 "$work/build/cmake.log" >&2; log "cmake failed; full log: $work/build/cmake.log"; exit 1; }
if [ "$CUDA" = 1 ] && ! grep -qE 'CUDA +: +Yes' "$work/build/cmake.log"; then
  log "CUDA=1 but CMake did not find CUDA under $cuda_root: set CUDA_HOME (log: $work/build/cmake.log)"
  exit 1
fi
log "compiling with $JOBS jobs (a few minutes; log: $work/build/make.log)"
start=$(date +%s)
(cd "$work/build" && make -j"$JOBS" all > make.log 2>&1 && make install >> make.log 2>&1) \
  || { tail -30 "$work/build/make.log" >&2; log "build failed; full log: $work/build/make.log"; exit 1; }
log "compiled in $(( $(date +%s) - start )) s"

# 4. Mark it complete: only a finished build carries .complete.
printf 'caffe %s\nsystem %s\nvariant %s\npython %s\npatches %s\n' "$CAFFE_DEB_VERSION" "$release" "$variant" "$pyver" "$patch_hash" > "$prefix/BUILD_INFO"
# Caffe's CMake sets its own install rpath: libraries from outside the system (the cuBLAS/cuRAND
# wheels) are named here, and tools/env.sh puts them on LD_LIBRARY_PATH.
[ -n "${extra:-}" ] && echo "ld_library_path $extra/lib" >> "$prefix/BUILD_INFO"
touch "$prefix/.complete"
rm -rf "$work"
echo "$prefix"
