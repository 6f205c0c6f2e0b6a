"""The frozen-feature mode on generated data with a small foreign backbone saved from random init:
features equal pycaffe's TEST-phase forward of the centre crops, they are stored outputs at the
feature layer (dhn.blobs: float32, one view) that our data layer reads in key order when not
shuffling, a features folder of the older format (float-Datum LMDB) is converted value for value,
a frozen run trains on them and beats random ranking, and the search of a frozen run goes
through its backbone."""
import json
import os

import numpy as np
import pytest

from dhn import baselines, demo, encode, features, lmdb_io, report, run_folder, search, split_folder, train
import datagen



@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("feat"))
    deploy, model = datagen.small_backbone(root)
    data, list_file = datagen.converted_demo(root, 360, seed=9, order_seed=1, n_train=240, n_query=40)
    spec = deploy + ":feat"
    out, manifests = features.extract("demo", ("train", "query", "database"), spec, model, mean=(128, 128, 128),
                                      scale=1 / 128, data_dir=data, out=os.path.join(root, "features"),
                                      progress=False)
    return dict(root=root, deploy=deploy, model=model, data=data, spec=spec, features=out, manifests=manifests,
                list=list_file)


def test_features_are_the_backbones_test_phase_output(setup):
    import caffe
    feats = baselines.read_features(os.path.join(setup["features"], "query"))
    assert feats.shape == (40, 64) and features.dim(setup["manifests"]["query"]) == 64
    net = caffe.Net(setup["deploy"], caffe.TEST, weights=setup["model"])
    imgs = [lmdb_io.datum_array(d) for d in lmdb_io.read(os.path.join(setup["data"], "query", "images"))]
    net.blobs["img"].reshape(len(imgs), 3, 28, 28)
    net.blobs["img"].data[...] = (np.stack([encode.centre_crop(i, 28) for i in imgs]).astype(np.float32) - 128) / 128
    net.forward()
    np.testing.assert_allclose(feats, net.blobs["feat"].data.reshape(40, -1), rtol=1e-5, atol=1e-6)
    # labels and record order copied from the image split
    np.testing.assert_array_equal(split_folder.read_split_labels(os.path.join(setup["features"], "query")),
                                  split_folder.read_split_labels(os.path.join(setup["data"], "query")))
    assert open(os.path.join(setup["features"], "query", "records.txt")).read() == \
        open(os.path.join(setup["data"], "query", "records.txt")).read()
    m = json.load(open(os.path.join(setup["features"], "query", "manifest.json")))
    assert m["complete"] and m["databases"] == ["labels"]
    assert m["blobs"] == dict(file="blobs.npy", shape=[64, 1, 1], dtype="float32", views=1, blob="feat")
    assert np.load(os.path.join(setup["features"], "query", "blobs.npy")).dtype == np.float32   # exact, not float16


def data_layer_batch(tmp_path, split, batch, **params):
    """One batch of dhn_data.ShuffledData over ``split``: (data, label)."""
    import caffe
    p = dict(source=split, batch_size=batch, **params)
    (tmp_path / "n.prototxt").write_text('layer { name: "d" type: "Python" top: "f" top: "l" python_param { '
                                         'module: "dhn_data" layer: "ShuffledData" param_str: "%s" } }' % repr(p))
    net = caffe.Net(str(tmp_path / "n.prototxt"), caffe.TRAIN)
    net.forward()
    return net.blobs["f"].data.copy(), net.blobs["l"].data.copy()


def test_the_data_layer_reads_the_features_in_key_order_unshuffled(setup, tmp_path):
    split = os.path.join(setup["features"], "train")
    data, label = data_layer_batch(tmp_path, split, 240, shuffle=False)
    np.testing.assert_array_equal(data.reshape(240, -1), baselines.read_features(split))
    np.testing.assert_array_equal(label.reshape(240, -1), split_folder.read_split_labels(split))


def test_unshuffled_training_on_features_reads_them_through_the_data_layer_in_key_order(setup):
    """No Caffe layer reads blobs.npy: SHUFFLE=0 keeps the project's data layer, told not to shuffle
    (what Caffe's Data layer did over the older format's LMDB: the records in key order)."""
    from dhn import netgen
    bb = netgen.features_backbone("smallnet-feat", 64)
    net = str(netgen.train_net("demo", 16, "dhn", data_dir=os.path.join(setup["features"], "train"), backbone=bb,
                               shuffle=False, feature_norm=True))
    assert 'type: "Data"' not in net and "ShuffledData" in net and r"\'shuffle\': False" in net
    assert r"\'shuffle\'" not in str(netgen.train_net("demo", 16, "dhn", data_dir="x", backbone=bb, feature_norm=True))


def older_format(split, out):
    """``split`` written as dhn.features wrote features before they were stored outputs: a
    features/ LMDB of float Datums, its manifest's databases and dim (the key was the same)."""
    import shutil
    m = json.load(open(os.path.join(split, "manifest.json")))
    os.makedirs(out)
    with lmdb_io.Writer(os.path.join(out, "features")) as w:
        for row in baselines.read_features(split):
            w.put(lmdb_io.float_datum(row))
    shutil.copytree(os.path.join(split, "labels"), os.path.join(out, "labels"))
    shutil.copyfile(os.path.join(split, "records.txt"), os.path.join(out, "records.txt"))
    old = {k: v for k, v in m.items() if k != "blobs"}
    json.dump(dict(old, databases=["features", "labels"], dim=64), open(os.path.join(out, "manifest.json"), "w"))


def test_an_older_features_folder_is_refused_with_the_fix_then_converted(setup, tmp_path, capsys):
    import caffe   # noqa: F401  (the data layer runs under pycaffe)
    out = tmp_path / "features"
    older_format(os.path.join(setup["features"], "query"), str(out / "query"))
    with pytest.raises(Exception, match="older format"):
        data_layer_batch(tmp_path, str(out / "query"), 8)
    with pytest.raises(split_folder.DatasetError, match="make features converts"):
        split_folder.read_blobs(str(out / "query"))
    _, manifests = features.extract("demo", ("query",), setup["spec"], setup["model"], mean=(128, 128, 128),
                                    scale=1 / 128, data_dir=setup["data"], out=str(out), progress=False)
    assert "(converted from the older features/ LMDB)" in capsys.readouterr().err
    assert manifests["query"]["converted"] and manifests["query"]["key"] == setup["manifests"]["query"]["key"]
    # the fingerprint a run records of its training split is unchanged: its runs keep their identity
    assert split_folder.split_key(str(out / "query")) == split_folder.split_key(os.path.join(setup["features"], "query"))
    assert not (out / "query" / "features").exists()
    # the same float32 values as features made now (the older format held them as float Datums)
    np.testing.assert_array_equal(np.load(str(out / "query" / "blobs.npy")),
                                  np.load(os.path.join(setup["features"], "query", "blobs.npy")))
    assert features.extract("demo", ("query",), setup["spec"], setup["model"], mean=(128, 128, 128), scale=1 / 128,
                            data_dir=setup["data"], out=str(out), progress=False)[1]["query"] == manifests["query"]
    assert "(up to date)" in capsys.readouterr().err


def test_a_rerun_is_a_noop(setup):
    out, manifests = features.extract("demo", ("query",), setup["spec"], setup["model"], mean=(128, 128, 128),
                                      scale=1 / 128, data_dir=setup["data"], out=setup["features"], progress=False)
    assert manifests["query"]["created"] == setup["manifests"]["query"]["created"]


def test_frozen_run_trains_on_features_and_beats_random(setup):
    run = os.path.join(setup["root"], "frozen")
    # no lr, λ, α or pair weight given: the head's measured defaults (netgen.HEAD_DEFAULTS)
    res = train.train("demo", 16, "dhn", features=True, backbone=setup["spec"], weights=setup["model"],
                      mean=(128, 128, 128), scale=1 / 128, data_dir=setup["features"], run_dir=run, iters=300,
                      quiet=True)
    # 16 bits: λ of the nearest measured length (12)
    assert (res["lr"], res["lambda"], res["alpha"], res["similar_weight"]) == (2.5e-3, 1.0, 10 / 16, "balanced")
    lq = split_folder.read_split_labels(os.path.join(setup["data"], "query"))
    ld = split_folder.read_split_labels(os.path.join(setup["data"], "database"))
    assert res["map"] > demo.random_ranking_map(lq, ld) + 0.1
    assert res["mode"] == "frozen features" and res["feature_norm"] is True
    assert res["features"] == "smallnet-feat-mean128,128,128-scale0.0078125"    # features.transform_suffix
    # the report labels it by the backbone its features came from, as test_report's FROZEN fixture
    rows = [line for line in report.tables(report.load_runs(setup["root"])).splitlines() if line.startswith("| DHN —")]
    assert rows == ["| DHN — backbone smallnet:feat, frozen features, 300 iterations, α 10/K, balanced pairs, "
                    "lr 0.0025, λ 1 | %.3f |" % res["map"]]
    net = open(os.path.join(run, "train.prototxt")).read()
    assert "dhn_data" in net and "fch_bn" in net and "Convolution" not in net     # no backbone in the net
    assert r"{\'alpha\': 0.625, \'similar_weight\': \'balanced\'}" in net
    # search by image: the backbone joined to the trained head finds a database image itself
    recs = np.loadtxt(os.path.join(setup["data"], "database", "records.txt"), dtype=int)
    paths = [line.split()[0] for line in open(setup["list"])]
    img = os.path.join(setup["root"], paths[recs[7]])
    hits = search.search_run(run, [img], top=80)[0]["hits"]
    assert any(h["row"] == 7 and h["distance"] == 0 for h in hits)
    assert os.path.exists(os.path.join(run, "gallery.html"))


def test_missing_weights_and_features_are_clear_errors(setup, tmp_path):
    with pytest.raises(features.FeatureError, match="pretrained caffemodel is missing"):
        features.extract("demo", ("query",), setup["spec"], str(tmp_path / "none.caffemodel"),
                         data_dir=setup["data"], out=str(tmp_path / "f"), progress=False)
    with pytest.raises(run_folder.TrainError, match=r"no features for smallnet-feat: run `make features"):
        train.train("demo", 16, "dhn", features=True, backbone=setup["spec"], weights=setup["model"],
                    run_dir=str(tmp_path / "r"), quiet=True)


def test_baselines_with_the_linear_probe(setup):
    """LSH, cosine and the linear probe on the same features; the probe, trained on the training
    features' labels, ranks far better than chance and is deterministic."""
    res = baselines.run(setup["features"], bits=(16,), seeds=(0,))
    lq = split_folder.read_split_labels(os.path.join(setup["data"], "query"))
    ld = split_folder.read_split_labels(os.path.join(setup["data"], "database"))
    assert res["probe"] > demo.random_ranking_map(lq, ld) + 0.1
    assert 0 <= res["probe_query_accuracy"] <= 1 and res["probe_setting"]["train"] == "train"
    assert baselines.run(setup["features"], bits=(16,), seeds=(0,))["probe"] == res["probe"]
