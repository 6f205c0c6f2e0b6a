"""Each CPU step of the stored mode against the cores' matrix-product peak, measured in one run.

- peak: a 4096² single-precision GEMM through the BLAS library Caffe itself links (found with
  ldd), best of three: the rate no convolution or inner product can beat on these cores;
- the storing pass: the backbone's lower part (SqueezeNet up to its default cut, stored.default_cut; AlexNet conv1–fc7
  with filler weights, the same shapes) forward in Caffe's TEST phase, batch 64;
- the stored step: `caffe train` of the stored mode's net (SqueezeNet above its default cut +
  BatchNorm + fch48 + both losses) on a generated stored split, batch 64, the Python data layer
  and losses included;
- encoding through stored outputs: the stored mode's deploy net forward, batch 64;
- a fresh stored-mode run on a fixed small protocol (generated 700 images, 48 bits, 100
  iterations: store, train, encode, score), wall seconds, storing with the default engine and,
  in the same run, with Caffe.
The GFLOP of a step count the matrix products of its Convolution and InnerProduct layers
(forward 2·MACs; a training step adds the weight gradient and, above the lowest learnable layer,
the bottom gradient); each rate's ratio is to the peak of the same run. The SqueezeNet figures
need its Caffe model (see bench_realdata.squeezenet); without it they are left out.
"""
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from dhn import netgen
from dhn.bench import Figure, best_time
from dhn.bench.bench_realdata import squeezenet, stored_rate

os.environ.setdefault("GLOG_minloglevel", "2")
BATCH = 64
LEARNED = ("Convolution", "InnerProduct")


def caffe_blas():
    """Path of the BLAS shared library libcaffe.so is linked against."""
    lib = os.path.join(os.environ["CAFFE_ROOT"], "lib", "libcaffe.so")
    out = subprocess.run(["ldd", lib], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(lib(?:open)?blas[^ ]*) => (\S+)", line)
        if m:
            return os.path.realpath(m.group(2))
    raise RuntimeError("%s links no BLAS library (ldd):\n%s" % (lib, out))


def sgemm_gflops(n=4096, repeat=3):
    """GFLOPS of an n×n×n SGEMM through cblas_sgemm of Caffe's BLAS."""
    blas = ctypes.CDLL(caffe_blas())
    rng = np.random.RandomState(0)
    a, b = rng.rand(n, n).astype(np.float32), rng.rand(n, n).astype(np.float32)
    c = np.empty((n, n), np.float32)
    ptr = ctypes.c_void_p
    sgemm = blas.cblas_sgemm
    sgemm.restype = None
    sgemm.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, ptr, ctypes.c_int, ptr, ctypes.c_int, ctypes.c_float,
                                           ptr, ctypes.c_int]
    args = (101, 111, 111, n, n, n, 1.0, a.ctypes.data, n, b.ctypes.data, n, 0.0, c.ctypes.data, n)  # row-major, N, N
    sgemm(*args)
    if not np.allclose(c[:4, :4], a[:4] @ b[:, :4], rtol=1e-3):
        raise RuntimeError("cblas_sgemm of %s gave a wrong product" % caffe_blas())
    return 2.0 * n ** 3 / best_time(lambda: sgemm(*args), repeat=repeat) / 1e9


def layer_macs(net):
    """{layer: multiply-adds per image} of the Convolution / InnerProduct layers of a pycaffe net."""
    macs = {}
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type not in LEARNED:
            continue
        w = net.params[name][0].data.shape
        top = net.blobs[net.top_names[name][0]].data
        per_image = top.size // top.shape[0]
        macs[name] = per_image * int(np.prod(w[1:])) if layer.type == "Convolution" else per_image * w[1]
    return macs


def forward_gflops(prototxt, weights=None, engine="caffe"):
    """(GFLOP per image, images/s) of a TEST-phase net's forward pass, best of three, in Caffe or
    in OpenCV's DNN module (dhn.cv_net, the storing pass's engine on a CPU)."""
    import caffe
    from dhn import cv_net
    caffe.set_mode_cpu()
    net = caffe.Net(prototxt, caffe.TEST, **({"weights": weights} if weights else {}))
    x = np.random.RandomState(0).gamma(1.0, 1.0, net.blobs[net.inputs[0]].data.shape).astype(np.float32)
    flop = 2.0 * sum(layer_macs(net).values()) / 1e9
    if engine == "opencv":
        net = cv_net.OpenCVNet(prototxt, weights, net.outputs[-1])
    net.blobs[net.inputs[0]].data[...] = x
    out = [net.outputs[-1]] if engine == "caffe" else [net.out_blob]
    net.forward(blobs=out)
    return flop, x.shape[0] / best_time(lambda: net.forward(blobs=out), repeat=3)


def train_step_gflop(deploy_prototxt, batch=BATCH):
    """GFLOP of one training step of the net a deploy net describes: forward and weight gradient of
    every learnable layer, the bottom gradient of all but the lowest one."""
    import caffe
    net = caffe.Net(deploy_prototxt, caffe.TEST)
    macs = list(layer_macs(net).values())
    return 2.0 * batch * (2 * sum(macs) + sum(macs[1:])) / 1e9


def write_net(proto, folder, name):
    path = os.path.join(folder, name)
    with open(path, "w") as fh:
        fh.write(str(proto))
    return path


def fresh_run_seconds(tmp, deploy, model, iters=100, engine=None):
    """Wall seconds of a stored-mode run from nothing stored, storing with ``engine`` (default: the
    storing pass's, blobs.ENGINE) and then `dhn.train`: generated 700-image dataset (640 train, 30
    query, 30 database), 48 bits, ``iters`` iterations."""
    from dhn import blobs, convert, stored, synthetic, train
    list_file = synthetic.write_dataset(tmp, 700)
    split = {"train": np.arange(640), "query": np.arange(640, 670), "database": np.arange(670, 700)}
    data = os.path.join(tmp, "lmdb")
    convert.convert_list(list_file, tmp, data, split, num_labels=len(synthetic.CONCEPTS), size=256, progress=False)
    spec = deploy + ":pool_final"
    t0 = time.perf_counter()
    stored.store("cifar10", spec, model, stored.default_cut(netgen.foreign_backbone(spec)), data_dir=data,
                 progress=False, engine=engine or blobs.ENGINE)
    train.train("cifar10", 48, "dhn", backbone=spec, weights=model, upper="1", iters=iters,
                data_dir=data, run_dir=os.path.join(tmp, "run"), quiet=True)
    return time.perf_counter() - t0


def run():
    from dhn import stored
    tmp = tempfile.mkdtemp(prefix="dhn-bench-peak-")
    figures = []
    try:
        peak = sgemm_gflops()
        figures.append(Figure("peak.sgemm_gflops", peak, "GFLOPS", None,
                              "4096² SGEMM through Caffe's BLAS (%s)" % os.path.basename(caffe_blas())))

        def rate(name, gflops, what):
            figures.append(Figure(name, gflops, "GFLOPS", gflops / peak, "the peak; " + what))

        alexnet = netgen.built_backbone("alexnet")
        flop, img_s = forward_gflops(write_net(netgen.backbone_net(alexnet, BATCH), tmp, "alexnet.prototxt"))
        figures.append(Figure("storing.alexnet_img_per_s", img_s, "img/s", None, "conv1-fc7 forward, batch 64"))
        rate("storing.alexnet_gflops", flop * img_s, "%.2f GFLOP/image" % flop)
        deploy, model = squeezenet()
        if deploy is None:
            print("bench_peak: no SqueezeNet model: its figures are left out", file=sys.stderr)
            return figures
        sq = netgen.foreign_backbone(deploy + ":pool_final")
        cut = stored.default_cut(sq)
        lower, upper, blob = stored.split_backbone(sq, cut)
        flop, img_s = forward_gflops(write_net(netgen.backbone_net(lower, BATCH), tmp, "lower.prototxt"), model)
        figures.append(Figure("storing.squeezenet_img_per_s", img_s, "img/s", None,
                              "Caffe forward to %s, batch 64" % cut))
        rate("storing.squeezenet_gflops", flop * img_s, "%.2f GFLOP/image, Caffe" % flop)
        from dhn import blobs, cv_net
        cv_path = write_net(netgen.backbone_net(lower, cv_net.BATCH), tmp, "lower-cv.prototxt")
        cv_flop, cv_img_s = forward_gflops(cv_path, model, engine="opencv")
        figures.append(Figure("storing.squeezenet_opencv_img_per_s", cv_img_s, "img/s", cv_img_s / img_s,
                              "Caffe's forward (the storing pass's engine on a CPU: OpenCV's DNN, batch %d)"
                              % cv_net.BATCH))
        rate("storing.squeezenet_opencv_gflops", cv_flop * cv_img_s, "OpenCV DNN, batch %d" % cv_net.BATCH)

        import caffe
        shape = caffe.Net(write_net(netgen.backbone_net(lower, 1), tmp, "one.prototxt"), caffe.TEST).blobs[blob].data.shape
        bb = netgen.stored_backbone(sq, upper, blob, shape[1:], cut)
        enc = write_net(netgen.deploy_net("cifar10", 48, BATCH, backbone=bb, feature_norm=True), tmp, "deploy.prototxt")
        flop, img_s = forward_gflops(enc, model)
        figures.append(Figure("encode.stored_img_per_s", img_s, "img/s", None, "stored %s → code, batch 64" % blob))
        rate("encode.stored_gflops", flop * img_s, "%.3f GFLOP/image" % flop)

        step = stored_rate(tmp, sq, model, int(os.environ.get("DHN_BENCH_STORED_ITERS", "20")))
        figures.append(Figure("stored.step_s", step, "s", None, "caffe train, batch 64 (data layer and losses included)"))
        rate("stored.step_gflops", train_step_gflop(enc) / step, "%.1f GFLOP/step" % train_step_gflop(enc))

        with_caffe = fresh_run_seconds(os.path.join(tmp, "fresh-caffe"), deploy, model, engine="caffe")
        figures.append(Figure("stored.fresh_run_caffe_storing_s", with_caffe, "s", None,
                              "make train UPPER=1 from nothing stored, storing in Caffe: 700 generated images, "
                              "100 iterations"))
        fresh = fresh_run_seconds(os.path.join(tmp, "fresh"), deploy, model)
        figures.append(Figure("stored.fresh_run_s", fresh, "s", fresh / with_caffe,
                              "the same storing in Caffe (storing with the engine blobs.ENGINE=%s picks)" % blobs.ENGINE))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return figures
