#!/usr/bin/env bash
# Try the GPU bundle here, before spending device time on it: in a bare root (chroot, needs
# root) that holds only glibc, the C++ runtime, bash and the few tools the scripts call, plus
# CUDA 13's cudart/cuBLAS/cuRAND as the GPU machine provides them. A library or module the
# bundle lacks shows up here. CPU mode only: the DHN layer checks, and `caffe time` on the
# time net (a CUDA Caffe needs a driver once a Data layer starts, so nothing here reads LMDB).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -e "$repo/.bundle/dhn-gpu.tar.xz" ] || { echo "try_bundle: run 'make gpu-bundle' first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "try_bundle: chroot needs root" >&2; exit 1; }
r=$(mktemp -d /tmp/dhn-bare.XXXX)
trap 'rm -rf "$r"' EXIT
mkdir -p "$r/lib/x86_64-linux-gnu" "$r/lib64" "$r/bin" "$r/usr/bin" "$r/tmp" "$r/dev" "$r/opt/cu13/lib" "$r/repo"
libs="$r/lib/x86_64-linux-gnu"
put() {  # a program or library, and the libraries it needs
  for f; do
    mkdir -p "$r$(dirname "$f")" && cp -L "$f" "$r$f"
    ldd "$f" | awk '/=> \//{print $3}' | xargs -r cp -nL -t "$libs"
  done
}
put /bin/bash /usr/bin/{env,dirname,sed,cat,ls,head,tee,tr,rm,mkdir,tar,xz,sh,uname}
cp -L /lib64/ld-linux-x86-64.so.2 "$r/lib64/"
cp -nL /lib/x86_64-linux-gnu/{libc.so.6,libm.so.6,libstdc++.so.6,libgcc_s.so.1,libdl.so.2,librt.so.1,libpthread.so.0,libutil.so.1,libresolv.so.2} "$libs/"
cp -a /dev/null /dev/zero /dev/urandom "$r/dev/"
# CUDA 13 user libraries, where the CUDA build found them (the wheels, the toolkit's cudart)
cuda_caffe=$(tar -xJOf "$repo/.bundle/dhn-gpu.tar.xz" dhn-gpu/BUNDLE_INFO | sed -n 's/^ld_library_path //p')
for d in $cuda_caffe /usr/local/cuda/lib64; do
  cp -nL "$d"/libcudart.so.13 "$d"/libcublas.so.13 "$d"/libcublasLt.so.13 "$d"/libcurand.so.10 "$r/opt/cu13/lib/" 2>/dev/null || true
done
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - .bundle) | tar -xf - -C "$r/repo"
chroot "$r" /bin/bash -c 'cd /repo && export CU13_LIB=/opt/cu13/lib && . tools/gpu/bundle_env.sh &&
  python -c "import sys, numpy, caffe, google.protobuf, lmdb; print(sys.version.split()[0], sys.prefix, numpy.__version__)" &&
  python -m pytest -q -p no:cacheprovider -rs tests/test_layers_caffe.py tests/test_gpu.py \
    "tests/test_train_caffe.py::test_time_net_runs_under_caffe_time" "tests/test_train_caffe.py::test_committed_prototxts_are_what_the_generator_writes"'
echo "try_bundle: the bundle runs in a bare root (CPU mode)"
