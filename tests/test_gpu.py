"""GPU mode (needs a CUDA build, `make setup CUDA=1`, and an NVIDIA GPU; skipped otherwise, with
the reason): the DHN layers' gradients in a net running in GPU mode, and the same training run
on CPU and GPU agreeing to float32 tolerance.

Tolerances: CPU and GPU sum in different orders (OpenBLAS vs cuBLAS), so float32 round-off
(≈ 1e-7 relative per op) grows over iterations; 50 iterations of the demo net agree to 1e-3
relative in the loss.
"""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import caffe

ROOT = os.environ["DHN_ROOT"]


def gpu_reason():
    """Why the GPU tests cannot run here, or None."""
    info_path = os.path.join(os.environ["CAFFE_ROOT"], "BUILD_INFO")
    if os.path.exists(info_path) and "variant cpu" in open(info_path).read():
        return "this Caffe is the CPU build (run `make setup CUDA=1`, then `CUDA=1 make test`)"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU on this machine (nvidia-smi not found)"
    return None


pytestmark = pytest.mark.skipif(gpu_reason() is not None, reason=str(gpu_reason()))


def test_device_query():
    out = subprocess.run([os.path.join(ROOT, "tools", "caffe"), "device_query", "-gpu", "0"],
                         capture_output=True, text=True, env=dict(os.environ, GLOG_logtostderr="1"), timeout=120)
    assert out.returncode == 0 and "Device id:" in out.stderr


def test_layers_in_gpu_mode_match_cpu_mode():
    from test_layers_caffe import LAYERS, forward_loss, make_net
    import dhn_losses
    rng = np.random.default_rng(0)
    z = np.tanh(rng.normal(size=(8, 12))).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    for layer, math in LAYERS:
        grads = []
        for mode in (caffe.set_mode_cpu, lambda: (caffe.set_device(0), caffe.set_mode_gpu())):
            mode()
            quant = layer == "QuantizationLoss"
            net = make_net(layer, 8, 12, None if quant else 3, loss_weight=0.5)
            if not quant:
                net.blobs["y"].data[...] = labels
            forward_loss(net, z)
            net.backward()
            grads.append(net.blobs["z"].diff.copy())
        caffe.set_mode_cpu()
        _, dz = math(z.astype(np.float64), dhn_losses.similarity(labels))
        np.testing.assert_allclose(grads[1], 0.5 * dz, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6, atol=1e-9)


def test_training_on_cpu_and_gpu_agree(tmp_path):
    from dhn import netgen
    from test_train_caffe import write_split
    write_split(str(tmp_path / "train"), 256, 32, 4)
    losses = {}
    for mode in ("CPU", "GPU"):
        net = tmp_path / ("train_%s.prototxt" % mode)
        net.write_text(str(netgen.train_net("demo", 16, "dhn", lambda_=1.0, data_dir=str(tmp_path / "train"))))
        sol = netgen.solver(str(net), str(tmp_path / mode), lr=1e-2, max_iter=50, display=1, snapshot=0)
        sol.solver_mode = getattr(sol, mode)
        (tmp_path / ("solver_%s.prototxt" % mode)).write_text(str(sol))
        args = [os.path.join(ROOT, "tools", "caffe"), "train", "-solver", str(tmp_path / ("solver_%s.prototxt" % mode))]
        out = subprocess.run(args + (["-gpu", "0"] if mode == "GPU" else []), capture_output=True, text=True,
                             env=dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0"), timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        losses[mode] = np.array([float(v) for v in re.findall(r"Iteration \d+.*, loss = (\S+)", out.stderr)])
    assert len(losses["CPU"]) == len(losses["GPU"]) == 51
    np.testing.assert_allclose(losses["GPU"], losses["CPU"], rtol=1e-3)
