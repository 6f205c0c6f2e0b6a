"""The project's Caffe is real and complete: pycaffe imports, the `caffe` binary runs, a net
with a Python layer trains through both `caffe train` and pycaffe's SGDSolver, and Caffe's
Data layer reads an LMDB of Datum records written with the `lmdb` package."""
import os
import re
import subprocess

import caffe
import lmdb
import numpy as np
from caffe.proto import caffe_pb2

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ["DHN_ROOT"]

NET = """name: "regress"
layer { name: "data" type: "DummyData" top: "x" top: "y"
  dummy_data_param { shape { dim: 32 dim: 4 } shape { dim: 32 dim: 1 }
                     data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 0 } } }
layer { name: "target" type: "InnerProduct" bottom: "x" top: "t"
  param { lr_mult: 0 } inner_product_param { num_output: 1 bias_term: false
  weight_filler { type: "constant" value: 0.5 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "p"
  inner_product_param { num_output: 1 weight_filler { type: "constant" value: 0 } } }
layer { name: "loss" type: "Python" bottom: "p" bottom: "t" top: "loss" loss_weight: 1
  propagate_down: true propagate_down: false
  python_param { module: "helper_layers" layer: "EuclideanLoss" param_str: "%s" } }
layer { name: "silence" type: "Silence" bottom: "y" }
"""


def write_solver(tmp_path, marker, max_iter=30):
    (tmp_path / "net.prototxt").write_text(NET % marker)
    (tmp_path / "solver.prototxt").write_text(
        'net: "%s" base_lr: 0.05 momentum: 0.9 lr_policy: "fixed" max_iter: %d display: 1 '
        'snapshot_after_train: false random_seed: 7 solver_mode: CPU'
        % (tmp_path / "net.prototxt", max_iter))
    return tmp_path / "solver.prototxt"


def test_pycaffe_imports_and_reports_its_version():
    assert caffe.__version__ == "1.0.0"
    assert hasattr(caffe, "Layer")        # built WITH_PYTHON_LAYER


def test_caffe_binary_runs():
    out = subprocess.run([os.path.join(ROOT, "tools", "caffe"), "--version"],
                         capture_output=True, text=True, check=True, timeout=120)
    assert "caffe version 1.0.0" in out.stdout + out.stderr


def test_python_layer_trains_through_caffe_binary(tmp_path):
    marker = tmp_path / "calls"
    solver = write_solver(tmp_path, marker)
    env = dict(os.environ, PYTHONPATH=TESTS + ":" + os.environ["PYTHONPATH"], GLOG_minloglevel="0",
               GLOG_logtostderr="1")
    out = subprocess.run([os.path.join(ROOT, "tools", "caffe"), "train", "-solver", str(solver)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    losses = [float(v) for v in re.findall(r"Iteration \d+.*loss = (\S+)", out.stderr)]
    assert len(losses) >= 20
    assert losses[-1] < 0.1 * losses[0]
    assert marker.read_text().count("backward") == 30


def test_python_layer_trains_through_pycaffe_solver(tmp_path):
    marker = tmp_path / "calls"
    caffe.set_mode_cpu()
    solver = caffe.SGDSolver(str(write_solver(tmp_path, marker)))
    first = None
    for _ in range(30):
        solver.step(1)
        loss = solver.net.blobs["loss"].data.item()
        first = loss if first is None else first
    assert loss < 0.1 * first
    np.testing.assert_allclose(solver.net.params["fc"][0].data, 0.5, atol=0.15)
    assert marker.read_text().count("backward") == 30


def test_data_layer_reads_lmdb_of_datums(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 4, 6), dtype=np.uint8)
    db = str(tmp_path / "db")
    with lmdb.open(db, map_size=1 << 24) as env, env.begin(write=True) as txn:
        for i, img in enumerate(images):
            datum = caffe.io.array_to_datum(img, label=i * 10)
            txn.put(b"%08d" % i, datum.SerializeToString())
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "d" type: "Data" top: "data" top: "label" '
        'data_param { source: "%s" backend: LMDB batch_size: 5 } }' % db)
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, images.astype(np.float32))
    np.testing.assert_array_equal(net.blobs["label"].data, [0, 10, 20, 30, 40])
    # the protobuf module the tools use reads back what Caffe read: same fields, same bytes
    with lmdb.open(db, readonly=True, lock=False) as env, env.begin() as txn:
        datum = caffe_pb2.Datum()
        datum.ParseFromString(txn.get(b"%08d" % 2))
    assert (datum.channels, datum.height, datum.width, datum.label) == (3, 4, 6, 20)
    assert datum.data == images[2].tobytes()
