"""What real-data runs cost: the stand-in backbone (SqueezeNet v1.0, `make weights MODEL=squeezenet`)
beside AlexNet, and the frozen-feature mode.

- backbone forward (what `make features` and encoding pay), batch 16, 227×227 inputs:
  SqueezeNet to pool_final vs AlexNet conv1–fc7 (BVLC shapes, filler weights), images/s;
- fine-tuning, `caffe train` on the full net + fch48 + both losses, batch 64, reshuffling data
  layer over 256×256 PNG records: seconds per iteration and images/s, SqueezeNet vs AlexNet
  (DHN_BENCH_FT_ITERS iterations each, default 6, after one warm-up iteration);
- the stored mode (make train UPPER=1): seconds per iteration of SqueezeNet's layers above
  its default cut (stored.default_cut) + fch48 + losses on generated stored outputs, against the whole-net step;
- the frozen-feature mode: seconds per 1,000 iterations of fch48 + losses on 5,000 × 1,000
  float features (the size of SqueezeNet's on CIFAR-10), batch 64.
The SqueezeNet figures need its model: weights/squeezenet_v1.0_dc/ (make weights MODEL=squeezenet),
DHN_SQUEEZENET=<folder>, or a local mirror at ../shared/data/squeezenet_v1.0_dc; without one they are
left out, and this says so. Inputs are generated: speed does not depend on
what the pixels show.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

from dhn import convert, lmdb_io, netgen, paths, split_folder, train
from dhn.bench import Figure, best_time
from dhn.bench.bench_train import bench_config

os.environ.setdefault("GLOG_minloglevel", "2")


def squeezenet():
    """(deploy.prototxt, caffemodel) of the first SqueezeNet folder found, or (None, None)."""
    root = paths.root()
    for folder in (os.environ.get("DHN_SQUEEZENET"), os.path.join(root, "weights", "squeezenet_v1.0_dc"),
                   os.path.join(root, "..", "shared", "data", "squeezenet_v1.0_dc")):
        if folder:
            deploy, model = os.path.join(folder, "deploy.prototxt"), os.path.join(folder, "squeezenet_v1.0_dc.caffemodel")
            if os.path.isfile(deploy) and os.path.isfile(model):
                return deploy, model
    return None, None


def forward_rate(bb, weights, batch=16):
    import caffe
    caffe.set_mode_cpu()
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as fh:
        fh.write(str(netgen.backbone_net(bb, batch=batch)))
    try:
        net = caffe.Net(fh.name, caffe.TEST, **({"weights": weights} if weights else {}))
        net.blobs[bb.input].data[...] = np.random.RandomState(0).uniform(-100, 100, net.blobs[bb.input].data.shape)
        net.forward()
        return batch / best_time(net.forward, repeat=3)
    finally:
        os.remove(fh.name)


def finetune_rate(tmp, bb, weights, iters):
    """Seconds per iteration of `caffe train` (after a warm-up iteration), from its log."""
    data = os.path.join(tmp, "lmdb")
    if not os.path.isdir(data):
        rng = np.random.RandomState(1)
        imgs = rng.randint(0, 256, (128, 256, 256, 3)).astype(np.uint8)
        convert.build_splits(data, "bench", {"train": np.arange(128)}, np.eye(10, dtype=np.uint8)[np.arange(128) % 10],
                             convert.ArrayLoader(imgs), size=256, progress=False)
    return step_seconds(os.path.join(tmp, "run-%s" % bb.name), bb if bb.spliced else None, data, weights, iters,
                        feature_norm=bb.spliced)


def generated_split(split, n, shape, views, dtype, rng, scale=1.0):
    """A split of stored outputs (dhn.blobs' layout: frozen features or the stored mode's) of ``n``
    records × ``views`` views of Gamma(1, scale) values, one-hot labels over 10 classes."""
    import json
    os.makedirs(split, exist_ok=True)
    blobs = np.lib.format.open_memmap(os.path.join(split, split_folder.BLOBS), "w+", dtype, (views * n,) + shape)
    blobs[:] = rng.gamma(1.0, scale, blobs.shape).astype(dtype)
    del blobs
    with lmdb_io.Writer(os.path.join(split, "labels")) as wl:
        for i in range(n):
            wl.put(lmdb_io.label_datum(np.eye(10, dtype=np.uint8)[i % 10]))
    with open(os.path.join(split, "manifest.json"), "w") as fh:
        json.dump({"count": n, "num_labels": 10, "databases": ["labels"], "complete": True,
                   "blobs": {"file": split_folder.BLOBS, "shape": list(shape), "dtype": np.dtype(dtype).name,
                             "views": views}}, fh)


def stored_rate(tmp, sq, weights, iters):
    """Seconds per iteration of the stored mode's net: SqueezeNet above its default cut
    (stored.default_cut: pool8, so fire9 and conv_final at ×10, pool_final) + BatchNorm + fch48 + losses, on a generated stored split of
    128 records × 2 views of 512×13×13 float16 (dhn.stored's layout), batch 64."""
    from dhn import stored
    cut = stored.default_cut(sq)
    _, upper, blob = stored.split_backbone(sq, cut)
    data = os.path.join(tmp, "stored")
    shape = (512, 13, 13)
    generated_split(os.path.join(data, "train"), 128, shape, 2, np.float16, np.random.RandomState(3))
    bb = netgen.stored_backbone(sq, upper, blob, shape, cut)
    return step_seconds(os.path.join(tmp, "run-stored"), bb, data, weights, iters, feature_norm=True,
                        backbone_lr_mult=netgen.UPPER_DEFAULTS["backbone_lr_mult"])


def step_seconds(run_dir, bb, data, weights, iters, feature_norm, backbone_lr_mult=1.0):
    """Seconds per iteration of `caffe train` on a generated training split (after a warm-up iteration), from its log."""
    settings, sched = bench_config("cifar10", 48, iters + 1, lr=1e-4, lambda_=1.0, feature_norm=feature_norm)
    settings = replace(settings, backbone_lr_mult=backbone_lr_mult)
    train.prepare_run(run_dir, settings, sched._replace(snapshot=0, stepsize=10 ** 6), bb, data)
    solver = os.path.join(run_dir, "solver.prototxt")
    text = open(solver).read()
    open(solver, "w").write(re.sub(r"display: \d+", "display: 1", text).replace("snapshot: 0\n", "") +
                            "snapshot_after_train: false\n")
    cmd = [os.path.join(os.environ["CAFFE_ROOT"], "bin", "caffe"), "train", "-solver", solver]
    if weights:
        cmd += ["-weights", weights]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, GLOG_logtostderr="1",
                                                                       GLOG_minloglevel="0"))
    stamps = [float(m.group(1)) for m in re.finditer(r"\((\d+(?:\.\d+)?) iter/s", out.stderr)]
    if out.returncode != 0 or len(stamps) < 2:
        raise RuntimeError("caffe train failed in the bench:\n" + out.stderr[-2000:])
    return float(np.mean([1 / r for r in stamps[1:]]))     # the first step includes set-up


def frozen_rate(tmp, iters=1000):
    """Seconds for `iters` iterations of a frozen-feature net (fch48 + losses), caffe train, on
    5,000 generated features of 1,000 dimensions."""
    generated_split(os.path.join(tmp, "features", "train"), 5000, (1000, 1, 1), 1, np.float32,
                    np.random.RandomState(2), scale=1.7)
    bb = netgen.features_backbone("bench-features", 1000)
    run_dir = os.path.join(tmp, "frozen")
    settings, sched = bench_config("cifar10", 48, iters, lr=1e-3, lambda_=1.0, feature_norm=True)
    train.prepare_run(run_dir, settings, sched._replace(snapshot=0), bb, os.path.join(tmp, "features"))
    solver = os.path.join(run_dir, "solver.prototxt")
    open(solver, "a").write("snapshot_after_train: false\n")
    t0 = time.perf_counter()
    out = subprocess.run([os.path.join(os.environ["CAFFE_ROOT"], "bin", "caffe"), "train", "-solver", solver],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("caffe train failed in the bench:\n" + out.stderr[-2000:])
    return time.perf_counter() - t0


def run():
    iters = int(os.environ.get("DHN_BENCH_FT_ITERS", "6"))
    alexnet = netgen.built_backbone("alexnet")
    deploy, model = squeezenet()
    tmp = tempfile.mkdtemp(prefix="dhn-bench-real-")
    figures = []
    try:
        frozen = frozen_rate(tmp)
        figures.append(Figure("frozen.s_per_1000_iters", frozen, "s", None,
                              "fch48 + losses on 5,000×1,000 features, batch 64, caffe train"))
        a_fwd = forward_rate(alexnet, None)
        a_ft = finetune_rate(tmp, alexnet, None, iters)
        figures += [Figure("features.alexnet_img_per_s", a_fwd, "img/s", None, "conv1-fc7 forward, batch 16"),
                    Figure("finetune.alexnet_s_per_iter", a_ft, "s", None, "batch 64, %d iterations" % iters),
                    Figure("finetune.alexnet_img_per_s", 64 / a_ft, "img/s", None, "")]
        if deploy is None:
            print("bench_realdata: no SqueezeNet (make weights MODEL=squeezenet, or DHN_SQUEEZENET=folder): "
                  "its figures are left out", file=sys.stderr)
        else:
            sq = netgen.foreign_backbone(deploy + ":pool_final")
            s_fwd = forward_rate(sq, model)
            s_ft = finetune_rate(tmp, sq, model, iters)
            s_up = stored_rate(tmp, sq, model, max(iters, 20))
            figures += [Figure("features.squeezenet_img_per_s", s_fwd, "img/s", s_fwd / a_fwd,
                               "AlexNet conv1-fc7 forward (make features, encoding)"),
                        Figure("finetune.squeezenet_s_per_iter", s_ft, "s", s_ft / a_ft,
                               "AlexNet fine-tuning step, batch 64"),
                        Figure("finetune.squeezenet_img_per_s", 64 / s_ft, "img/s", a_ft / s_ft, "AlexNet"),
                        Figure("stored.squeezenet_s_per_iter", s_up, "s", s_up / s_ft,
                               "SqueezeNet whole-net step (the stored mode: the layers above its default cut + fch48)")]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return figures
