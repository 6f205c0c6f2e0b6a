#!/usr/bin/env bash
# The GPU check (issue 7), in one call on the lent GPU machine. Prepare here, once:
#   make setup && make gpu-bundle            # .bundle/dhn-gpu.tar.xz (see make_bundle.sh)
# then run it there through the device tool, carrying the bundle:
#   device run  carry=[".bundle"]  command="bash tools/gpu/check.sh"   timeout_s=540
# Steps: the card and `caffe device_query`; the DHN layer checks (values, finite-difference
# gradients) with Caffe in GPU mode, and tests/test_gpu.py (GPU vs CPU layers; 50 training
# iterations from one seed on CPU and on GPU, losses agreeing to float32 tolerance); AlexNet-DHN
# forward+backward images/s at batch 64 and 256, GPU next to the machine's CPU cores
# (dhn.bench gpu). Everything is logged to $OUT/check.log (runs/gpu_check/ off that machine).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-runs/gpu_check}
mkdir -p "$out"
exec > >(tee "$out/check.log") 2>&1

b=/tmp/dhn-gpu
rm -rf "$b" && tar -xJf .bundle/dhn-gpu.tar.xz -C /tmp || { echo "check: .bundle/dhn-gpu.tar.xz missing or broken: run 'make gpu-bundle' and carry .bundle"; exit 1; }
# CUDA 13's cudart/cuBLAS/cuRAND: CU13_LIB, else the PyTorch virtualenv's (../shared/README.md §1)
cu13=${CU13_LIB:-$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib 2>/dev/null | head -1)}
[ -e "$cu13/libcublas.so.13" ] || { echo "check: no CUDA 13 libraries found: set CU13_LIB to the folder with libcublas.so.13"; exit 1; }
export PYTHONHOME=$b/py DHN_VENV=$b/py DHN_SITE=$b/py/site CAFFE_ROOT=$b/caffe
export LD_LIBRARY_PATH=$b/lib:$cu13 PYTHONNOUSERSITE=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
. tools/env.sh || exit 1
cat "$b/BUNDLE_INFO"
status=0
step() { echo; echo "=== $*"; local t=$SECONDS; "$@" || { echo "=== FAILED ($?): $*"; status=1; }; echo "=== $((SECONDS - t)) s"; }

step nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
step env GLOG_logtostderr=1 tools/caffe device_query -gpu 0
step env DHN_CAFFE_MODE=gpu python -m pytest -q -rs -p no:cacheprovider tests/test_layers_caffe.py tests/test_gpu.py
step python -m dhn.bench gpu --out "$out/bench_gpu.json"
echo; echo "check: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
