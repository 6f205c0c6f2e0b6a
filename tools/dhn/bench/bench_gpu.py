"""AlexNet-DHN forward+backward on the GPU next to the same net on this machine's CPU cores,
measured in the same run. Needs the CUDA build (`CUDA=1 make bench`) and an NVIDIA
GPU; elsewhere it says why and gives no figures.

Two timings of the GPU:
- `caffe time -gpu 0` on `netgen.time_net` (Input blobs in place of the LMDBs), the figure the
  issue asks for. Its inputs are zeros, which can run faster than real data;
- a pycaffe loop over the same net with random images and labels filled once, each iteration
  ending in the Python loss layers' host read, so the wall clock sees finished GPU work.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from dhn import netgen, paths
from dhn.bench import Figure

GPU_ITERS = {64: 50, 256: 20}
CPU_ITERS = {64: int(os.environ.get("DHN_BENCH_GPU_CPU_ITERS", "3")), 256: 2}


def skip_reason():
    info = os.path.join(os.environ.get("CAFFE_ROOT", ""), "BUILD_INFO")
    if not os.path.exists(info) or "variant cuda" not in open(info).read():
        return "not the CUDA build (make setup CUDA=1, then CUDA=1 make bench)"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU here (nvidia-smi not found)"
    return None


def caffe_time(model, iters, gpu):
    """Milliseconds per forward+backward, as `caffe time` reports it."""
    args = [os.path.join(paths.root(), "tools", "caffe"), "time", "-model", model,
            "-iterations", str(iters)] + (["-gpu", "0"] if gpu else [])
    out = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, GLOG_logtostderr="1",
                                                                         GLOG_minloglevel="0"))
    found = re.findall(r"Average Forward-Backward: ([\d.]+) ms", out.stderr)
    if out.returncode != 0 or not found:
        raise RuntimeError("caffe time failed on %s:\n%s" % (model, out.stderr[-2000:]))
    return float(found[-1])


def pycaffe_random_ms(model, iters):
    import caffe
    caffe.set_device(0)
    caffe.set_mode_gpu()
    net = caffe.Net(model, caffe.TRAIN)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.normal(0, 50, net.blobs["data"].data.shape)
    labels = net.blobs["label"].data
    labels[...] = np.eye(labels.shape[1])[rng.integers(0, labels.shape[1], labels.shape[0])].reshape(labels.shape)
    for _ in range(3):   # warm-up: cuBLAS handles, memory
        net.forward()
        net.backward()
    t0 = time.perf_counter()
    for _ in range(iters):
        net.forward()    # ends in the Python losses, which read the codes on the host
        net.backward()
    ms = (time.perf_counter() - t0) / iters * 1e3
    caffe.set_mode_cpu()
    return ms


def run():
    reason = skip_reason()
    if reason:
        print("bench_gpu: skipped: %s" % reason, file=sys.stderr)
        return []
    gpu_name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True).stdout.strip().splitlines()[0]
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (64, 256):
            model = os.path.join(tmp, "alexnet_dhn48_b%d.prototxt" % batch)
            with open(model, "w") as fh:
                fh.write(str(netgen.time_net("cifar10", 48, "dhn", batch=batch)))
            gpu_ms = caffe_time(model, GPU_ITERS[batch], gpu=True)
            cpu_ms = caffe_time(model, CPU_ITERS[batch], gpu=False)
            rand_ms = pycaffe_random_ms(model, GPU_ITERS[batch])
            gpu_ips, cpu_ips, rand_ips = (batch * 1e3 / ms for ms in (gpu_ms, cpu_ms, rand_ms))
            figures += [
                Figure("gpu.alexnet_dhn_b%d_gpu_img_s" % batch, gpu_ips, "img/s", gpu_ips / cpu_ips,
                       "CPU, %d cores (caffe time, %s)" % (os.cpu_count(), gpu_name)),
                Figure("gpu.alexnet_dhn_b%d_cpu_img_s" % batch, cpu_ips, "img/s", None,
                       "caffe time, %d iterations" % CPU_ITERS[batch]),
                Figure("gpu.alexnet_dhn_b%d_gpu_random_img_s" % batch, rand_ips, "img/s", rand_ips / gpu_ips,
                       "caffe time on zeros (pycaffe loop, random data)"),
            ]
    return figures
