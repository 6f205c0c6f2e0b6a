"""Training with Caffe's own solver on the generated nets: the loss falls, `-weights` copies
conv1–fc7 from an AlexNet caffemodel and leaves fch alone, and N iterations straight equal
N/2 + resume from the snapshot + N/2, blob for blob.

Everything runs the real `caffe` binary (tools/caffe) on tiny LMDBs written here.
"""
import os
import re
import subprocess

import caffe
import numpy as np
import pytest

from dhn import lmdb_io, netgen, run_folder

ROOT = os.environ["DHN_ROOT"]
CAFFE = os.path.join(ROOT, "tools", "caffe")


def write_split(folder, n, size, num_labels, seed=0):
    """A tiny split: random images with labels, in the converter's layout."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    labels = np.eye(num_labels, dtype=np.uint8)[rng.integers(0, num_labels, n)]
    with lmdb_io.Writer(os.path.join(folder, "images")) as wi, lmdb_io.Writer(os.path.join(folder, "labels")) as wl:
        for i in range(n):
            # images carry their class as a brightness so that a net can learn something
            img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8) + np.uint8(40 * labels[i].argmax())
            wi.put(lmdb_io.image_datum(img, label=labels[i].argmax()))
            wl.put(lmdb_io.label_datum(labels[i]))
    return labels


def caffe_train(solver, *extra, env=None):
    out = subprocess.run([CAFFE, "train", "-solver", str(solver), *extra], capture_output=True, text=True,
                         env=dict(os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1", OPENBLAS_NUM_THREADS="1",
                                  **(env or {})), timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return [float(v) for v in re.findall(r"Iteration \d+.*, loss = (\S+)", out.stderr)]


def write_net_and_solver(tmp_path, net, name="solver", **solver_args):
    net_path = tmp_path / "train.prototxt"
    net_path.write_text(str(net))
    sol = netgen.solver(str(net_path), str(tmp_path / "snap" / "dhn"), **solver_args)
    (tmp_path / "snap").mkdir(exist_ok=True)
    path = tmp_path / (name + ".prototxt")
    path.write_text(str(sol))
    return path


def load_params(deploy, caffemodel):
    net = caffe.Net(str(deploy), str(caffemodel), caffe.TEST)
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def test_tiny_dhn_training_loss_falls(tmp_path):
    write_split(str(tmp_path / "train"), 128, 32, 4)
    net = netgen.train_net("demo", 8, "dhn", lambda_=1.0, data_dir=str(tmp_path / "train"), batch=32)
    solver = write_net_and_solver(tmp_path, net, lr=1e-2, max_iter=60, display=1, snapshot=0,
                                  stepsize=1000)
    losses = caffe_train(solver)
    assert len(losses) == 61
    assert np.mean(losses[-10:]) < 0.85 * np.mean(losses[:5])


@pytest.mark.parametrize("variant", ["dhn-q", "dhn-e"])
def test_variant_nets_train(tmp_path, variant):
    write_split(str(tmp_path / "train"), 64, 32, 4)
    net = netgen.train_net("demo", 8, variant, data_dir=str(tmp_path / "train"), batch=32)
    names = [layer.name for layer in net.layer]
    assert ("quant_loss" in names) == (variant != "dhn-q")
    pair = [layer for layer in net.layer if layer.name == "pair_loss"][0]
    assert pair.python_param.layer == ("PairwiseSquaredLoss" if variant == "dhn-e" else "PairwiseCrossEntropyLoss")
    solver = write_net_and_solver(tmp_path, net, lr=1e-2, max_iter=5, display=1, snapshot=0)
    assert all(np.isfinite(caffe_train(solver)))


def test_resume_from_snapshot_equals_straight_run(tmp_path):
    # Caffe's .solverstate holds weights, momentum history and the iteration, not the RNG state
    # or a data layer's read position. The reshuffling data layer's order, crops and mirrors are
    # functions of the batch number, and dhn.train writes start_iter when it resumes: the second
    # half then sees exactly the batches the straight run saw (random 28-of-32 crops, mirrors and
    # a new order every epoch of 20 records included; the tiny net has no dropout).
    n_half, batch = 4, 8
    write_split(str(tmp_path / "train"), 20, 32, 3)
    kw = dict(lambda_=1.0, data_dir=str(tmp_path / "train"), batch=batch, mirror=True)
    net = netgen.train_net("demo", 8, "dhn", **kw)
    args = dict(lr=1e-2, display=1, stepsize=3, snapshot=n_half)     # the lr steps inside each half
    straight = tmp_path / "straight"
    straight.mkdir()
    caffe_train(write_net_and_solver(straight, net, max_iter=2 * n_half, **args))
    halves = tmp_path / "halves"
    halves.mkdir()
    caffe_train(write_net_and_solver(halves, net, name="first", max_iter=n_half, **args))
    it, state = run_folder.latest_snapshot(str(halves), subdir="snap")
    assert it == n_half
    resumed = netgen.train_net("demo", 8, "dhn", start_iter=it, **kw)
    caffe_train(write_net_and_solver(halves, resumed, name="second", max_iter=2 * n_half, **args), "-snapshot", state)
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(str(netgen.deploy_net("demo", 8)))
    a = load_params(deploy, straight / "snap" / ("dhn_iter_%d.caffemodel" % (2 * n_half)))
    b = load_params(deploy, halves / "snap" / ("dhn_iter_%d.caffemodel" % (2 * n_half)))
    assert a.keys() == b.keys() and "fch" in a
    for name in a:
        for x, y in zip(a[name], b[name]):
            np.testing.assert_array_equal(x, y, err_msg=name)
    # and training did move the weights
    first = load_params(deploy, halves / "snap" / ("dhn_iter_%d.caffemodel" % n_half))
    assert not np.array_equal(first["fch"][0], a["fch"][0])


BVLC_ALEXNET_SHAPES = {   # models/bvlc_alexnet: (weights, bias) shapes of conv1–fc7
    "conv1": (96, 3, 11, 11), "conv2": (256, 48, 5, 5), "conv3": (384, 256, 3, 3),
    "conv4": (384, 192, 3, 3), "conv5": (256, 192, 3, 3), "fc6": (4096, 9216), "fc7": (4096, 4096),
}


def test_alexnet_deploy_has_bvlc_names_and_shapes(tmp_path):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(str(netgen.deploy_net("cifar10", 48, batch=1)))
    net = caffe.Net(str(deploy), caffe.TEST)
    for name, shape in BVLC_ALEXNET_SHAPES.items():
        assert net.params[name][0].data.shape == shape
        assert net.params[name][1].data.shape == (shape[0],)
    assert net.params["fch"][0].data.shape == (48, 4096)
    assert net.blobs["code"].data.shape == (1, 48)


def test_weights_copy_conv1_to_fc7_not_fch(tmp_path):
    # A caffemodel saved from a randomly initialised full AlexNet (with fc8), standing in for
    # bvlc_alexnet.caffemodel, which cannot be downloaded here.
    full = netgen.deploy_net("cifar10", 48, batch=1)
    for layer in list(full.layer)[::-1]:
        if layer.name in ("fch", "code"):
            full.layer.remove(layer)
    fc8 = full.layer.add()
    fc8.CopyFrom([layer for layer in full.layer if layer.name == "fc7"][0])
    fc8.name, fc8.top[0], fc8.bottom[0] = "fc8", "fc8", "fc7"
    fc8.inner_product_param.num_output = 1000
    (tmp_path / "alexnet.prototxt").write_text(str(full))
    caffe.set_random_seed(5)
    src = caffe.Net(str(tmp_path / "alexnet.prototxt"), caffe.TEST)
    for name in src.params:                # random values everywhere, biases included
        for blob in src.params[name]:
            blob.data[...] = np.random.default_rng(len(name)).normal(size=blob.data.shape)
    weights = tmp_path / "alexnet.caffemodel"
    src.save(str(weights))
    source = {name: [b.data.copy() for b in src.params[name]] for name in src.params}
    del src

    write_split(str(tmp_path / "train"), 2, 256, 10)
    net = netgen.train_net("cifar10", 48, "dhn", data_dir=str(tmp_path / "train"), batch=2)
    # base_lr 0: one iteration, and the snapshot holds exactly what -weights loaded.
    solver = write_net_and_solver(tmp_path, net, lr=0.0, max_iter=1, display=1, snapshot=0)
    caffe_train(solver, "-weights", str(weights))
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(str(netgen.deploy_net("cifar10", 48, batch=1)))
    trained = load_params(deploy, tmp_path / "snap" / "dhn_iter_1.caffemodel")
    for name in BVLC_ALEXNET_SHAPES:
        for x, y in zip(trained[name], source[name]):
            np.testing.assert_array_equal(x, y, err_msg=name)
    assert "fch" not in source and "fc8" not in trained
    assert trained["fch"][0].std() == pytest.approx(0.01, rel=0.1)     # its own gaussian filler


def test_committed_prototxts_are_what_the_generator_writes():
    out = subprocess.run(["python", "-m", "dhn.netgen", "--check"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr


def test_quantization_loss_weight_is_lambda_k_over_b():
    net = netgen.train_net("cifar10", 48, "dhn", lambda_=10.0, batch=64)
    quant = [layer for layer in net.layer if layer.name == "quant_loss"][0]
    assert quant.loss_weight[0] == pytest.approx(10.0 * 48 / 64)


def test_time_net_runs_under_caffe_time(tmp_path):
    # the net dhn.bench gpu times: the training net with Input blobs, the same layers otherwise
    time_net = netgen.time_net("demo", 16, batch=8)
    train_net = netgen.train_net("demo", 16, "dhn", batch=8)
    assert [layer.name for layer in time_net.layer] == [layer.name for layer in train_net.layer]
    assert time_net.layer[0].type == "Input" and list(time_net.layer[0].top) == ["data", "label"]
    model = tmp_path / "time.prototxt"
    model.write_text(str(time_net))
    out = subprocess.run([CAFFE, "time", "-model", str(model), "-iterations", "2"], capture_output=True, text=True,
                         env=dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0"), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"pair_loss\s+backward: [\d.]+ ms", out.stderr)
    assert re.search(r"Average Forward-Backward: [\d.]+ ms", out.stderr)


@pytest.mark.parametrize("dataset", ["demo", "cifar10"])
def test_encoding_uses_the_training_transform(tmp_path, dataset):
    # the encoder reads crop, mean and scale from the run's train net: one definition
    net = tmp_path / "train.prototxt"
    net.write_text(str(netgen.train_net(dataset, 12, "dhn")))
    bb = netgen.BACKBONES[netgen.DATASETS[dataset]["backbone"]]
    crop, mean, scale = run_folder.data_transform(str(net))
    assert (crop, mean) == (bb["crop"], tuple(float(m) for m in bb["mean"]))
    assert scale == pytest.approx(bb["scale"])
