#!/usr/bin/env bash
# The GPU check, in one call on the lent GPU machine. Prepare here, once:
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

export PYTHONUNBUFFERED=1
. tools/gpu/bundle_env.sh || exit 1
cat "$CAFFE_ROOT/../BUNDLE_INFO"
status=0
# step LIMIT_S CMD...: each step has its own time limit, so one that hangs (a stuck CUDA init)
# costs its limit, not the session's whole device allowance; the steps after it still run.
# Limits add up to 480 s, under the 540 s the device call is given; expected total ~3 min.
step() {
  local limit=$1 t=$SECONDS rc; shift
  echo; echo "=== $*"
  timeout -k 10 "$limit" "$@"; rc=$?
  [ $rc = 0 ] || { echo "=== FAILED ($rc$([ $rc = 124 ] && echo ", over its ${limit} s")): $*"; status=1; }
  echo "=== $((SECONDS - t)) s"
}

step 30 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
step 60 env GLOG_logtostderr=1 tools/caffe device_query -gpu 0
step 210 env DHN_CAFFE_MODE=gpu python -m pytest -q -rs -p no:cacheprovider tests/test_layers_caffe.py tests/test_gpu.py
step 180 python -m dhn.bench gpu --out "$out/bench_gpu.json"
echo; echo "check: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
