"""DHN loss layers' forward+backward time inside a real Caffe net, next to one full
AlexNet-DHN SGD step (batch 64, 227 crops, fch 48) measured in the same run.
Target: both layers together ≤ 2% of the step, so the Python loss layers never decide the training speed."""
import os
import tempfile

import caffe
import numpy as np

from dhn import lmdb_io, netgen
from dhn.bench import Figure, best_time

LOSS_NET = """name: "losses"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: %(b)d dim: %(k)d } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: %(b)d dim: %(c)d } } }
layer { name: "z" type: "Scale" bottom: "x" top: "z"
        scale_param { axis: 0 num_axes: 0 filler { type: "constant" value: 1 } } }
layer { name: "pair" type: "Python" bottom: "z" bottom: "y" top: "pair" loss_weight: 1
        propagate_down: true propagate_down: false
        python_param { module: "dhn_layers" layer: "PairwiseCrossEntropyLoss" } }
layer { name: "quant" type: "Python" bottom: "z" top: "quant" loss_weight: 7.5
        python_param { module: "dhn_layers" layer: "QuantizationLoss" } }
"""


def loss_layers_seconds(b, k, c=21):
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as fh:
        fh.write(LOSS_NET % dict(b=b, k=k, c=c))
    net = caffe.Net(fh.name, caffe.TRAIN)
    os.unlink(fh.name)
    rng = np.random.default_rng(0)
    net.blobs["x"].data[...] = np.tanh(rng.normal(size=(b, k)))
    net.blobs["y"].data[...] = rng.random((b, c)) < 0.2
    # the Scale layer (a B×K multiply) is included; it costs microseconds
    return best_time(lambda: (net.forward(), net.backward()), repeat=20)


def alexnet_step_seconds(tmp, batch=64, bits=48, steps=2):
    rng = np.random.default_rng(0)
    split = os.path.join(tmp, "train")
    os.makedirs(split)
    with lmdb_io.Writer(os.path.join(split, "images")) as wi, lmdb_io.Writer(os.path.join(split, "labels")) as wl:
        for i in range(batch):
            wi.put(lmdb_io.image_datum(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)))
            wl.put(lmdb_io.label_datum(np.eye(10, dtype=np.uint8)[i % 10]))
    net_path = os.path.join(tmp, "train.prototxt")
    with open(net_path, "w") as fh:
        fh.write(str(netgen.train_net("cifar10", bits, "dhn", data_dir=split, batch=batch)))
    sol_path = os.path.join(tmp, "solver.prototxt")
    with open(sol_path, "w") as fh:
        fh.write(str(netgen.solver(net_path, os.path.join(tmp, "snap"), snapshot=0, display=0)))
    solver = caffe.SGDSolver(sol_path)
    solver.step(1)                      # warm-up (allocations, prefetch)
    return best_time(lambda: solver.step(1), repeat=steps)


def run():
    caffe.set_mode_cpu()
    small = loss_layers_seconds(64, 48)
    large = loss_layers_seconds(256, 64)
    with tempfile.TemporaryDirectory() as tmp:
        step = alexnet_step_seconds(tmp)
    return [
        Figure("layers.alexnet_dhn_step_b64_s", step, "s", None, "one SGD step, AlexNet conv1-fc7+fch48, CPU"),
        Figure("layers.dhn_losses_b64_k48_ms", small * 1e3, "ms", small / step, "AlexNet-DHN step (target <= 0.02)"),
        Figure("layers.dhn_losses_b256_k64_ms", large * 1e3, "ms", large / step, "AlexNet-DHN step at b64"),
    ]
