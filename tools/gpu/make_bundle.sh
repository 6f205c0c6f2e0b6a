#!/usr/bin/env bash
# Pack what the lent GPU machine needs to run tools/gpu/check.sh into one file that the device
# tool carries: .bundle/dhn-gpu.tar.xz (`make gpu-bundle`).
#
# That machine has no package registry, an Ubuntu userland with Python 3.12, and CUDA 13's
# libraries inside its PyTorch virtualenv; our Caffe and its Python layers are built for
# Debian 12's Python 3.11. The smallest way found: carry the Python 3.11 runtime itself
# (interpreter, libpython, the standard library, and from our venv numpy, protobuf, lmdb, six
# and pytest) next to a CUDA Caffe built without OpenCV, LevelDB and HDF5 (MINIMAL=1), plus the
# Debian libraries `ldd` names. Left out, because every glibc system or that machine has them:
# glibc, libstdc++/libgcc_s, and the CUDA libraries (cudart, cuBLAS, cuRAND, the driver).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/.bundle/dhn-gpu.tar.xz}
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || { echo "make_bundle: $py not found: run 'make setup' first" >&2; exit 1; }
log() { echo "make_bundle: $*" >&2; }

prefix=$(CUDA=1 CUDA_ARCH=${CUDA_ARCH:-90} MINIMAL=1 PYTHON="$py" bash "$root/tools/build/build_caffe.sh" | tail -1)
wheel_lib=$(sed -n 's/^ld_library_path //p' "$prefix/BUILD_INFO")
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
base=$("$py" -c 'import sys; print(sys.base_prefix)')
stdlib=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
b=$stage/dhn-gpu
mkdir -p "$b/lib" "$b/py/bin" "$b/py/lib" "$b/py/site"

# 1. Caffe (bin/caffe, libcaffe, pycaffe); headers and CMake files stay behind.
cp -a "$prefix" "$b/caffe"
rm -rf "$b/caffe/include" "$b/caffe/share"

# 2. Python: under PYTHONHOME=py it finds its standard library in py/lib/pythonX.Y; the venv's
#    packages go to py/site, which check.sh names as DHN_SITE (tools/env.sh puts it on PYTHONPATH).
cp -L "$base/bin/python$pyver" "$b/py/bin/"
ln -s "python$pyver" "$b/py/bin/python"
ln -s "python$pyver" "$b/py/bin/python3"
(cd "$(dirname "$stdlib")" && tar -cf - --exclude=__pycache__ --exclude="$(basename "$stdlib")/test" \
   --exclude="$(basename "$stdlib")/idlelib" --exclude="$(basename "$stdlib")/tkinter" \
   --exclude="$(basename "$stdlib")/turtledemo" --exclude="$(basename "$stdlib")/ensurepip" \
   --exclude="$(basename "$stdlib")/lib2to3" --exclude="_tkinter*" --exclude="$(basename "$stdlib")/config-*" \
   --exclude="$(basename "$stdlib")/site-packages" --exclude="$(basename "$stdlib")/dist-packages" \
   "$(basename "$stdlib")") | tar -xf - -C "$b/py/lib"
for pkg in numpy numpy.libs google six.py lmdb tqdm _pytest pytest pluggy iniconfig packaging pygments py.py; do
  [ -e "$site/$pkg" ] || { log "$site/$pkg is missing from the venv"; exit 1; }
  (cd "$site" && tar -cf - --exclude=__pycache__ --exclude=tests "$pkg") | tar -xf - -C "$b/py/site"
done

# 3. Shared libraries: everything the ELF files above need, except what is on any glibc
#    system or on the GPU machine, and what the bundle already holds (libcaffe, numpy.libs).
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libutil|libresolv|libstdc\+\+|libgcc_s|libcuda\.so|libcudart|libcublas|libcurand)'
export LD_LIBRARY_PATH="$b/caffe/lib${wheel_lib:+:$wheel_lib}"
missing=0
while read -r f; do
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [[ $name =~ $skip ]] && continue
    [[ $path == "$b"/* ]] && continue
    if [ "$path" = "not" ]; then log "$f needs $name, which is not on this machine"; missing=1; continue; fi
    [ -e "$b/lib/$name" ] || cp -L "$path" "$b/lib/$name"
  done < <(ldd "$f" 2>/dev/null)
done < <(find "$b" -type f \( -name '*.so*' -o -perm -u+x \) -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print)
[ "$missing" = 0 ] || exit 1
strip --strip-unneeded "$b"/lib/*.so*   # libpython (pyenv's) carries its symbols: 23 MB -> 5

{ cat "$prefix/BUILD_INFO"; echo "bundle_python $pyver"; echo "bundle_libs $(ls "$b/lib" | tr '\n' ' ')"; } > "$b/BUNDLE_INFO"
mkdir -p "$(dirname "$out")"
log "packing $(du -sh "$b" | cut -f1) into $out"
tar -C "$stage" -cf - dhn-gpu | xz -T0 -6 > "$out.tmp"
mv "$out.tmp" "$out"
log "done: $(du -h "$out" | cut -f1) ($out)"
