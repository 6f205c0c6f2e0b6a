"""The stored mode on the paper's own net (make train DATASET=cifar10 UPPER=1, no BACKBONE=): AlexNet
conv1–fc7 as the committed deploy net prototxt/alexnet/deploy.prototxt, cut below fc7, so fc6's
outputs are stored and fc7 trains with fch; on AlexNet-shaped weights saved from the deploy net's
own fillers (the BVLC weights cannot be downloaded here) and generated 256×256 images."""
import glob
import os

import numpy as np
import pytest

from dhn import convert, netgen, split_folder, stored, synthetic, train
from dhn.run_folder import TrainError
from test_train_caffe import BVLC_ALEXNET_SHAPES

caffe = pytest.importorskip("caffe")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("stored_alexnet"))
    caffe.set_mode_cpu()
    caffe.set_random_seed(3)
    model = os.path.join(root, "alexnet.caffemodel")
    caffe.Net(netgen.ALEXNET_DEPLOY, caffe.TEST).save(model)       # gaussian fillers: BVLC's shapes
    list_file = synthetic.write_dataset(root, 100)
    split = {"train": np.arange(70), "query": np.arange(70, 85), "database": np.arange(85, 100)}
    data = os.path.join(root, "lmdb")
    convert.convert_list(list_file, root, data, split, num_labels=len(synthetic.CONCEPTS), size=256, progress=False)
    return dict(root=root, model=model, data=data)


def test_the_committed_alexnet_deploy_net_has_bvlcs_names_and_shapes():
    net = caffe.Net(netgen.ALEXNET_DEPLOY, caffe.TEST)
    assert {name: net.params[name][0].data.shape for name in net.params} == BVLC_ALEXNET_SHAPES
    assert net.blobs["data"].data.shape == (1, 3, 227, 227) and net.outputs == ["fc7"]
    bb = netgen.foreign_backbone(netgen.ALEXNET_DEPLOY + ":fc7")
    assert bb.name == "alexnet" and stored.default_cut(bb) == "fc6"
    _, upper, blob = stored.split_backbone(bb, "pool5")      # UPPER=pool5: fc6 and fc7 train
    assert blob == "pool5" and [layer.name for layer in upper] == ["fc6", "relu6", "fc7", "relu7"]


def test_upper_without_a_backbone_stores_alexnets_fc6_and_trains_fc7_with_fch(setup, tmp_path):
    run = tmp_path / "run"
    res = train.train("cifar10", 16, "dhn", upper="1", weights=setup["model"], data_dir=setup["data"], run_dir=str(run),
                      iters=2, quiet=True)
    assert res["mode"] == "fine-tuned above stored fc6" and res["backbone"] == netgen.ALEXNET_DEPLOY + ":fc7"
    assert res["mean"] == [104.0, 117.0, 123.0] and res["scale"] == 1.0     # the paper's AlexNet transform
    [folder] = glob.glob(os.path.join(os.path.dirname(setup["data"]), "stored", "alexnet-fc6*"))
    m = split_folder.check_split(os.path.join(folder, "train"))
    assert m["count"] == 70 and m["blobs"]["views"] == 2 and m["blobs"]["shape"] == [4096]
    net = (run / "train.prototxt").read_text()
    learned = [layer.name for layer in netgen_layers(net) if layer.type in ("Convolution", "InnerProduct")]
    assert learned == ["fc7", "fch"]
    assert 0 <= res["map"] <= 1 and (run / "codes" / "database.npy").exists()


def netgen_layers(text):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    net = caffe_pb2.NetParameter()
    text_format.Merge(text, net)
    return list(net.layer)


def test_upper_without_weights_or_on_a_net_trained_from_scratch_is_one_line(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("DHN_ROOT", str(tmp_path))
    with pytest.raises(TrainError, match=r"bvlc_alexnet.caffemodel: ImageNet AlexNet weights missing; run `make weights`"):
        train.train("cifar10", 16, "dhn", upper="1", data_dir=setup["data"], run_dir=str(tmp_path / "r"), quiet=True)
    with pytest.raises(TrainError, match=r"the demo dataset's own net is trained from scratch: give BACKBONE="):
        train.train("demo", 16, "dhn", upper="1", run_dir=str(tmp_path / "r"), quiet=True)
