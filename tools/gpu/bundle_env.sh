# Source this (bash), from the repository root, where our venv and Caffe are not: it unpacks
# .bundle/dhn-gpu.tar.xz (make gpu-bundle) into /tmp/dhn-gpu and points tools/env.sh at it.
# CU13_LIB names the folder with CUDA 13's cudart/cuBLAS/cuRAND; by default the lent GPU
# machine's, inside its PyTorch virtualenv (docs/INSTALL.md).
_b=/tmp/dhn-gpu
# tar calls xz for .tar.xz; where there is no xz, Python's tarfile reads it (lzma module)
if command -v xz > /dev/null; then _unpack="tar -xJf .bundle/dhn-gpu.tar.xz -C /tmp"
else _unpack="python3 -c 'import tarfile; tarfile.open(\".bundle/dhn-gpu.tar.xz\").extractall(\"/tmp\")'"; fi
rm -rf "$_b" && eval "$_unpack" || {
  echo "bundle_env: .bundle/dhn-gpu.tar.xz is missing or broken: run 'make gpu-bundle' here and carry .bundle" >&2
  return 1; }
CU13_LIB=${CU13_LIB:-$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib 2>/dev/null | head -1)}
# not in that virtualenv: look once, briefly, in the usual roots
[ -e "$CU13_LIB/libcublas.so.13" ] || CU13_LIB=$(dirname "$(timeout 20 find /opt /usr /root -name libcublas.so.13 \
  2>/dev/null | head -1)" 2>/dev/null)
[ -e "$CU13_LIB/libcublas.so.13" ] || {
  echo "bundle_env: no CUDA 13 libraries found: set CU13_LIB to the folder holding libcublas.so.13" >&2
  return 1; }
export PYTHONHOME=$_b/py DHN_VENV=$_b/py DHN_SITE=$_b/py/site CAFFE_ROOT=$_b/caffe
export LD_LIBRARY_PATH=$_b/lib:$CU13_LIB PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1
unset _b _unpack
. tools/env.sh
