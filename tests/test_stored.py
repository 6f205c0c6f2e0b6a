"""The stored mode (dhn.stored, make train UPPER=) on generated data with a small foreign backbone
saved from random init: the cut, the stored views against pycaffe's TEST-phase forward, the data
layer over them, a stored-mode run that learns, its trained layers put back into the whole net
(codes from images equal the stored path's), and whole-net fine-tuning that fits that head first,
keeps its BatchNorm's statistics in training and recomputes them after it (dhn.recalibrate)."""
import json
import os
import re

import numpy as np
import pytest

from caffe.proto import caffe_pb2
from google.protobuf import text_format

from dhn import (blobs, convert, demo, encode, evaluate, netgen, recalibrate, run_folder, split_folder, stored, sweep,
                 train)
from dhn.datasets import DatasetError, file_digest
import datagen

MEAN, SCALE = (128, 128, 128), 1 / 128
FP16_ATOL = 2e-3     # float16 storage: relative error ~1e-3 of activations of order 1


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("stored"))
    deploy, model = datagen.small_backbone(root)
    data, _ = datagen.converted_demo(root, 360, seed=9, order_seed=1, n_train=240, n_query=40)
    spec = deploy + ":feat"
    out, manifests = stored.store("demo", spec, model, "c1", mean=MEAN, scale=SCALE, data_dir=data, progress=False)
    return dict(root=root, deploy=deploy, model=model, data=data, spec=spec, out=out, manifests=manifests)


def _bb(setup):
    return netgen.foreign_backbone(setup["spec"], mean=MEAN, scale=SCALE)


def test_the_cut_keeps_relu_below_and_the_learnable_layers_above(setup):
    bb = _bb(setup)
    lower, upper, blob = stored.split_backbone(bb, "c1")
    assert [layer.name for layer in lower.layers] == ["c1", "r1"] and lower.feature == blob == "c1"
    assert [layer.name for layer in upper] == ["feat", "feat_relu"]
    assert stored.default_cut(bb) == "c1"         # below the last learnable layer (feat)
    with pytest.raises(ValueError, match="nothing learnable between feat and feat"):
        stored.split_backbone(bb, "feat")
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        stored.split_backbone(bb, "conv9")


MODULE_NET = """name: "modules"
input: "img" input_shape { dim: 1 dim: 3 dim: 32 dim: 32 }
layer { name: "c1" type: "Convolution" bottom: "img" top: "c1" convolution_param { num_output: 8 kernel_size: 3 } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "p1" type: "Pooling" bottom: "c1" top: "p1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "m/squeeze" type: "Convolution" bottom: "p1" top: "m/squeeze" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "m/e1" type: "Convolution" bottom: "m/squeeze" top: "m/e1" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "m/e3" type: "Convolution" bottom: "m/squeeze" top: "m/e3" convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "m/concat" type: "Concat" bottom: "m/e1" bottom: "m/e3" top: "m/concat" }
layer { name: "final" type: "Convolution" bottom: "m/concat" top: "final" convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "gp" type: "Pooling" bottom: "final" top: "gp" pooling_param { pool: AVE global_pooling: true } }
"""


def test_the_default_cut_keeps_the_last_module_above_it(tmp_path):
    """UPPER=1 on a net of modules (layers named MODULE/…, as SqueezeNet's Fire modules): the cut is
    below the module that feeds the last learnable layer, so the module trains with it."""
    path = tmp_path / "deploy.prototxt"
    path.write_text(MODULE_NET)
    bb = netgen.foreign_backbone(str(path) + ":gp")
    assert stored.default_cut(bb) == "p1"
    _, upper, blob = stored.split_backbone(bb, "p1")
    assert blob == "p1" and [layer.name for layer in upper] == ["m/squeeze", "m/e1", "m/e3", "m/concat", "final", "gp"]
    # a net whose last learnable layer reads a plain layer's output: below that layer only
    path.write_text(MODULE_NET.replace('bottom: "m/concat" top: "final"', 'bottom: "p1" top: "final"'))
    assert stored.default_cut(netgen.foreign_backbone(str(path) + ":gp")) == "p1"
    path.write_text(MODULE_NET.replace('bottom: "m/concat" top: "final"', 'bottom: "c1" top: "final"'))
    assert stored.default_cut(netgen.foreign_backbone(str(path) + ":gp")) == "c1"


def test_stored_views_are_the_test_phase_outputs_of_centre_crop_and_mirror(setup):
    import caffe
    blobs, m = split_folder.read_blobs(os.path.join(setup["out"], "train"))
    assert m["blobs"]["views"] == 2 and blobs.dtype == np.float16 and blobs.shape == (480, 16, 12, 12)
    net = caffe.Net(setup["deploy"], caffe.TEST, weights=setup["model"])
    imgs = [lmdb_img for lmdb_img in _images(os.path.join(setup["data"], "train"))[:5]]
    for i, img in enumerate(imgs):
        for v, view in enumerate(encode.view_crops(img, 28, 2)):
            net.blobs["img"].reshape(1, 3, 28, 28)
            net.blobs["img"].data[0] = (view.astype(np.float32) - 128) / 128
            net.forward(end="r1")
            np.testing.assert_allclose(blobs[2 * i + v], net.blobs["c1"].data[0], rtol=1e-3, atol=FP16_ATOL)
    q, mq = split_folder.read_blobs(os.path.join(setup["out"], "query"))
    assert mq["blobs"]["views"] == 1 and len(q) == 40      # query and database: the centre crop only
    np.testing.assert_array_equal(split_folder.read_split_labels(os.path.join(setup["out"], "query")),
                                  split_folder.read_split_labels(os.path.join(setup["data"], "query")))


def _images(split_dir):
    from dhn import lmdb_io
    return [lmdb_io.datum_array(d) for d in lmdb_io.read(os.path.join(split_dir, "images"))]


def test_a_rerun_is_a_noop_and_a_damaged_blob_file_is_one_line(setup, tmp_path):
    _, again = stored.store("demo", setup["spec"], setup["model"], "c1", splits=("query",), mean=MEAN, scale=SCALE,
                            data_dir=setup["data"], progress=False)
    assert again["query"]["created"] == setup["manifests"]["query"]["created"]
    copy = tmp_path / "query"
    import shutil
    shutil.copytree(os.path.join(setup["out"], "query"), copy)
    with open(copy / split_folder.BLOBS, "r+b") as fh:
        fh.truncate(os.path.getsize(copy / split_folder.BLOBS) // 2)
    with pytest.raises(DatasetError, match="store it again"):
        split_folder.read_blobs(str(copy))


def test_stored_outputs_are_up_to_date_when_the_backbone_is_given_from_elsewhere(setup, tmp_path):
    """The same deploy net and weights at another path (a moved checkout, the shared copy): the
    stored outputs are the same (the key names the weights by their sha256), not stored again;
    other weights are another request."""
    import shutil
    there = tmp_path / "moved"
    shutil.copytree(os.path.dirname(setup["deploy"]), there / "smallnet")
    shutil.copyfile(setup["model"], there / "smallnet.caffemodel")
    spec = str(there / "smallnet" / os.path.basename(setup["deploy"])) + ":feat"
    _, again = stored.store("demo", spec, str(there / "smallnet.caffemodel"), "c1", splits=("query",), mean=MEAN,
                            scale=SCALE, data_dir=setup["data"], out=setup["out"], progress=False)
    assert again["query"]["created"] == setup["manifests"]["query"]["created"]
    key = again["query"]["key"]
    other = dict(key, backbone=dict(key["backbone"], weights_sha256="0" * 64))
    assert convert.finished_split(os.path.join(setup["out"], "query"), key, placeless=True)
    assert not convert.finished_split(os.path.join(setup["out"], "query"), other, placeless=True)


def test_the_data_layer_serves_one_stored_view_of_each_record(setup, tmp_path):
    import caffe
    src = os.path.join(setup["out"], "train")
    net_path = tmp_path / "d.prototxt"
    net_path.write_text('layer { name: "d" type: "Python" top: "c1" top: "label" python_param { module: "dhn_data" '
                        'layer: "ShuffledData" param_str: "{\'source\': \'%s\', \'batch_size\': 240, \'seed\': 3}" } }'
                        % src)
    net = caffe.Net(str(net_path), caffe.TRAIN)
    blobs, _ = split_folder.read_blobs(src)
    labels = split_folder.read_split_labels(src)
    index = {blobs[r].tobytes(): r for r in range(len(blobs))}     # stored row (2·record + view) of a view
    epochs = []
    for _ in range(2):       # one batch = one epoch of the 240 records
        net.forward()
        rows = [index[net.blobs["c1"].data[k].astype(np.float16).tobytes()] for k in range(240)]
        assert sorted(r // 2 for r in rows) == list(range(240))      # every record once, as one of its views
        for k, r in enumerate(rows):                                   # with its own labels
            np.testing.assert_array_equal(net.blobs["label"].data[k].reshape(-1), labels[r // 2])
        epochs.append(rows)
    assert epochs[0] != epochs[1]        # reshuffled, and the views drawn again
    assert {r % 2 for r in epochs[0] + epochs[1]} == {0, 1}


def test_a_subset_of_a_stored_split_copies_its_views(setup, tmp_path):
    src = os.path.join(setup["out"], "train")
    out = convert.subset_split(src, str(tmp_path / "part"), [3, 7, 100], "part")
    part, m = split_folder.read_blobs(out)
    full, _ = split_folder.read_blobs(src)
    assert m["count"] == 3
    np.testing.assert_array_equal(part, full[[6, 7, 14, 15, 200, 201]])


def test_a_stored_run_learns_and_its_whole_net_gives_the_same_codes(setup):
    run = os.path.join(setup["root"], "upper")
    res = train.train("demo", 16, "dhn", upper="1", backbone=setup["spec"], weights=setup["model"], mean=MEAN,
                      scale=SCALE, data_dir=setup["data"], run_dir=run, iters=300, quiet=True)
    assert res["mode"] == "fine-tuned above stored c1" and res["upper"] == "c1" and res["views"] == 2
    assert (res["lr"], res["backbone_lr_mult"]) == (netgen.UPPER_DEFAULTS["lr"], netgen.UPPER_DEFAULTS["backbone_lr_mult"])
    lq = split_folder.read_split_labels(os.path.join(setup["data"], "query"))
    ld = split_folder.read_split_labels(os.path.join(setup["data"], "database"))
    assert res["map"] > demo.random_ranking_map(lq, ld) + 0.1
    # the train net: the stored blob feeds the upper layers (learning at ×10), the lower ones are absent
    net = caffe_pb2.NetParameter()
    text_format.Merge(open(os.path.join(run, "train.prototxt")).read(), net)
    names = [layer.name for layer in net.layer]
    assert "c1" not in names and "feat" in names
    assert [p.lr_mult for p in next(layer for layer in net.layer if layer.name == "feat").param] == [10, 20]
    # the whole net that takes images: pretrained c1 + the run's feat, fch_bn, fch
    deploy, model, crop, mean, scale = run_folder.image_net(run, batch=16)
    z = encode.encode(deploy, model, os.path.join(setup["data"], "query", "images"), crop, mean, scale=scale,
                      progress=False)
    np.testing.assert_allclose(z, np.load(os.path.join(run, "codes", "query.npy")), atol=FP16_ATOL)
    # a stored run's config names its mode; a rerun is done
    ident = json.load(open(os.path.join(run, "config.json")))["identity"]
    assert ident["mode"] == res["mode"] and ident["norm_stats"] == "batch"
    again = train.train("demo", 16, "dhn", upper="1", backbone=setup["spec"], weights=setup["model"], mean=MEAN,
                        scale=SCALE, data_dir=setup["data"], run_dir=run, iters=300, quiet=True)
    assert again["map"] == res["map"]


def test_head_statistics_over_a_stored_split_read_its_centre_crops(setup):
    """dhn.recalibrate over a stored split: the BatchNorm input of the first view of each record
    (the centre crop, what encoding reads), forwarded from the stored outputs."""
    import caffe
    run = os.path.join(setup["root"], "upper")
    if not os.path.isfile(os.path.join(run, "deploy.prototxt")):
        train.train("demo", 16, "dhn", upper="1", backbone=setup["spec"], weights=setup["model"], mean=MEAN,
                    scale=SCALE, data_dir=setup["data"], run_dir=run, iters=300, quiet=True)
    net = caffe.Net(os.path.join(run, "deploy.prototxt"), caffe.TEST, weights=run_folder.final_model(run))
    split = os.path.join(setup["out"], "train")
    blobs, _ = split_folder.read_blobs(split)
    below = net.bottom_names["fch_bn"][0]
    net.blobs[net.inputs[0]].reshape(70, *blobs.shape[1:])
    net.blobs[net.inputs[0]].data[...] = blobs[0:140:2]          # records 0..69, view 0 of 2
    x = net.forward(blobs=[below])[below].reshape(70, -1).astype(np.float64)
    m, v = recalibrate.statistics(net, split, None, None, progress=False, limit=70)
    np.testing.assert_allclose(m, x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, x.var(0, ddof=1), rtol=1e-5, atol=1e-6)


def test_whole_net_fine_tuning_fits_the_head_first_keeps_its_statistics_then_recomputes_them(setup, monkeypatch):
    monkeypatch.setenv("DHN_ROOT", setup["root"])      # the fitted head's run folder goes under runs/ there
    run = os.path.join(setup["root"], "whole")
    res = train.train("demo", 16, "dhn", backbone=setup["spec"], weights=setup["model"], mean=MEAN, scale=SCALE,
                      data_dir=setup["data"], run_dir=run, iters=20, quiet=True)
    head = os.path.join(setup["root"], "runs", "demo-16-dhn-smallnet-upper-c1")
    assert os.path.isfile(os.path.join(head, "results.json"))
    ident = json.load(open(os.path.join(run, "config.json")))["identity"]
    assert ident["init_fch"] == file_digest(run_folder.final_model(head), "sha256")
    assert ident["norm_stats"] == "global" and (ident["lr"], ident["backbone_lr_mult"]) == (netgen.FINETUNE_LR, 1.0)
    net = caffe_pb2.NetParameter()
    text_format.Merge(open(os.path.join(run, "train.prototxt")).read(), net)
    bn = next(layer for layer in net.layer if layer.name == "fch_bn")
    assert bn.batch_norm_param.use_global_stats
    head_map = json.load(open(os.path.join(head, "results.json")))["map"]
    assert res["map"] > 0.8 * head_map      # 20 iterations at lr 1e-4 keep what the head had
    # its final net: the last snapshot with the BatchNorm's statistics recomputed over the training
    # images' centre crops (dhn.recalibrate), against numpy's mean and variance (ddof 1, as Caffe stores)
    import caffe
    snapshot = os.path.join(run, "snapshots", "dhn_iter_20.caffemodel")
    assert ident["bn_recalibration"] == train.BN_RECALIBRATION
    assert run_folder.final_model(run) == run_folder.recalibrated_model(snapshot)
    assert res["weights"].endswith(".bn.caffemodel")
    deploy = os.path.join(run, "deploy.prototxt")
    crop, mean, scale = run_folder.data_transform(os.path.join(run, "train.prototxt"))
    net = caffe.Net(deploy, caffe.TEST, weights=snapshot)
    below = net.bottom_names["fch_bn"][0]
    x = np.concatenate([b.copy() for b in encode.forward_batches(net, os.path.join(setup["data"], "train", "images"),
                                                                 crop, mean, out_blob=below, scale=scale, progress=False)])
    per_channel = lambda a: a.reshape(len(a), a.shape[1], -1).transpose(1, 0, 2).reshape(a.shape[1], -1).astype(np.float64)
    bn = caffe.Net(deploy, caffe.TEST, weights=run_folder.final_model(run)).params["fch_bn"]
    np.testing.assert_allclose(bn[0].data, per_channel(x).mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn[1].data, per_channel(x).var(1, ddof=1), rtol=1e-5, atol=1e-6)
    assert bn[2].data[0] == 1.0
    m, v = recalibrate.statistics(net, os.path.join(setup["data"], "train"), crop, mean, scale, progress=False,
                                  limit=70)     # the first 70 images: a batch (64) and part of the next
    np.testing.assert_allclose(m, per_channel(x[:70]).mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, per_channel(x[:70]).var(1, ddof=1), rtol=1e-5, atol=1e-6)
    z = encode.encode(deploy, run_folder.final_model(run), os.path.join(setup["data"], "query", "images"), crop, mean,
                      scale=scale, progress=False)
    np.testing.assert_allclose(z, np.load(os.path.join(run, "codes", "query.npy")), atol=1e-6)   # what it was scored with


def test_a_whole_net_sweep_fits_its_head_on_the_fit_part_or_takes_init_fch(setup, tmp_path, monkeypatch):
    """make sweep BACKBONE=...: every grid point fine-tunes from one head fitted on the sweep's fit
    part, in the sweep's folder (the stored run under runs/ has seen the validation images and is
    not touched); INIT_FCH=none (--init-fch) starts them from a random fch instead."""
    monkeypatch.setenv("DHN_ROOT", str(tmp_path))
    args = dict(lrs=(1e-4,), lambdas=(1.0,), iters=8, backbone=setup["spec"], weights=setup["model"], mean=MEAN,
                scale=SCALE, data_dir=setup["data"], quiet=True)
    out = str(tmp_path / "sweep")
    sweep.sweep("demo", 16, out=out, **args)
    head = os.path.join(out, "head")
    head_config = json.load(open(os.path.join(head, "config.json")))
    assert head_config["identity"]["mode"] == "fine-tuned above stored c1"
    fit = split_folder.check_split(os.path.join(setup["data"], "sweep", "train"))["count"]
    assert split_folder.check_split(os.path.join(head_config["data_dir"], "train"))["count"] == fit < 240
    point = json.load(open(os.path.join(out, "lr0.0001-lambda1", "config.json")))["identity"]
    assert point["init_fch"] == file_digest(run_folder.final_model(head), "sha256")
    assert json.load(open(os.path.join(out, "grid.json")))["init_fch"] == head
    assert not os.path.exists(tmp_path / "runs")
    assert sweep.main(["--dataset", "demo", "--bits", "16", "--lrs", "1e-4", "--lambdas", "1", "--iters", "8",
                       "--backbone", setup["spec"], "--weights", setup["model"], "--mean", "128,128,128",
                       "--scale", str(SCALE), "--data", setup["data"], "--init-fch", "none"]) == 0
    cold = tmp_path / "runs" / "sweep-demo-16-smallnet"
    assert json.load(open(cold / "lr0.0001-lambda1" / "config.json"))["identity"]["init_fch"] is None
    assert sorted(os.listdir(tmp_path / "runs")) == ["sweep-demo-16-smallnet"] and not (cold / "head").exists()


def test_dhn_b_of_a_stored_run_ranks_its_codes_by_inner_product(setup):
    run = os.path.join(setup["root"], "upper")     # trained by the test above (module order)
    if not os.path.isfile(os.path.join(run, "results.json")):
        pytest.skip("needs the stored run of test_a_stored_run_learns_and_its_whole_net_gives_the_same_codes")
    out = os.path.join(setup["root"], "upper-b")
    doc = evaluate.inner_product_run(run, out)
    zq, zd = (np.load(os.path.join(run, "codes", s + ".npy")) for s in ("query", "database"))
    lq = split_folder.read_split_labels(os.path.join(setup["data"], "query"))
    ld = split_folder.read_split_labels(os.path.join(setup["data"], "database"))
    want = evaluate.evaluate_codes(zq, lq, zd, ld, R=None, binary=False)["map"]
    assert doc["variant"] == "dhn-b" and doc["ranking"] == "inner_product" and doc["map"] == pytest.approx(want)
    assert json.load(open(os.path.join(out, "config.json")))["identity"]["variant"] == "dhn-b"
    assert run_folder.final_model(out)      # the same net, linked: search and the gallery work on it


def test_a_runs_data_folder_is_found_after_its_checkout_moved(setup, tmp_path):
    """config.json records the data folder's absolute path; a run in a checkout that moved (or was
    trained in another one) finds the same folder from its data/ component on, in its checkout now."""
    import shutil
    run = os.path.join(setup["root"], "upper")
    if not os.path.isfile(os.path.join(run, "results.json")):
        pytest.skip("needs the stored run of test_a_stored_run_learns_and_its_whole_net_gives_the_same_codes")
    rel = os.path.join("data", "demo", "stored", os.path.basename(setup["out"]))
    moved = tmp_path / "moved"
    shutil.copytree(setup["out"], moved / rel)
    shutil.copytree(run, moved / "runs" / "upper")
    config_path = moved / "runs" / "upper" / "config.json"
    config = json.loads(config_path.read_text())
    config["data_dir"] = os.path.join(str(tmp_path), "gone", rel)       # where the old checkout kept it
    config_path.write_text(json.dumps(config))
    assert run_folder.read_config(str(moved / "runs" / "upper"))["data_dir"] == str(moved / rel)
    doc = evaluate.inner_product_run(str(moved / "runs" / "upper"), str(moved / "runs" / "upper-b"))
    assert doc["map"] == pytest.approx(evaluate.inner_product_run(run, os.path.join(setup["root"], "upper-b"))["map"])
    shutil.rmtree(moved / "data")       # nowhere here either: the recorded path, named by its reader's error
    with pytest.raises(DatasetError, match=re.escape(config["data_dir"])):
        evaluate.inner_product_run(str(moved / "runs" / "upper"), str(moved / "runs" / "upper-b2"))


def test_a_batchnorm_head_trains_without_the_backbones_dropout(tmp_path):
    deploy = tmp_path / "drop.prototxt"
    deploy.write_text(datagen.SMALL_DEPLOY.replace(
        'layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }',
        'layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }\n'
        'layer { name: "d1" type: "Dropout" bottom: "c1" top: "c1" dropout_param { dropout_ratio: 0.5 } }'))
    bb = netgen.foreign_backbone(str(deploy) + ":feat")
    types = {norm: [layer.type for layer in netgen.train_net("demo", 8, "dhn", backbone=bb, feature_norm=norm).layer]
             for norm in (False, True)}
    assert "Dropout" in types[False] and "Dropout" not in types[True] and "BatchNorm" in types[True]


def test_a_fresh_stored_run_states_its_expected_time_before_storing(setup, tmp_path, capsys):
    """One batch of each net timed before anything is stored; a run whose splits are stored says nothing."""
    bb = _bb(setup)
    exp = stored.expected_seconds(bb, "c1", setup["model"], 16, to_store=100, iters=50, to_encode=40, batch=8)
    assert set(exp) == {"store", "train", "encode"} and all(sec > 0 and rate > 0 for sec, rate in exp.values())
    assert exp["store"][0] == pytest.approx(100 / exp["store"][1]) and exp["train"][0] == pytest.approx(50 * exp["train"][1])
    line = stored.describe_expected(exp, 100, 50, 40)
    assert line.startswith("expected ≈ ") and "store 100 views" in line and "train 50 iterations" in line
    data, _ = datagen.converted_demo(str(tmp_path), 120, seed=3, order_seed=2, n_train=80, n_query=20)
    for _ in range(2):
        train.train("demo", 16, "dhn", backbone=setup["spec"], weights=setup["model"], upper="1", mean=MEAN, scale=SCALE,
                    data_dir=data, run_dir=str(tmp_path / "run"), iters=2)
    said = capsys.readouterr().err
    assert said.count("dhn.train: expected ≈ ") == 1 and "store 200 views" in said and "train 2 iterations" in said
    assert said.index("dhn.train: expected") < said.index("dhn.stored: demo/train")
    # only what is still to store counts: the query split (20 images, one view) of a run stored before
    import shutil
    shutil.rmtree(os.path.join(stored.stored_folder(data, _bb(setup), "c1"), "query"))
    train.train("demo", 16, "dhn", backbone=setup["spec"], weights=setup["model"], upper="1", mean=MEAN, scale=SCALE,
                data_dir=data, run_dir=str(tmp_path / "run"), iters=2)
    assert "store 20 views" in capsys.readouterr().err


def test_auto_stores_with_the_engine_that_was_faster_and_records_it(setup, tmp_path, monkeypatch, capsys):
    """ENGINE "auto": one batch timed in each engine (both measured here), the faster stores; a
    GPU run stores with Caffe; the manifest names the engine."""
    lower, _, _ = stored.split_backbone(_bb(setup), "c1")
    rates = blobs.engine_rates(lower, setup["model"], 8)
    assert set(rates) == {"caffe", "opencv"} and min(rates.values()) > 0
    assert blobs.ENGINE == "auto"
    for fast, slow in (("caffe", "opencv"), ("opencv", "caffe")):
        monkeypatch.setattr(blobs, "engine_rates", lambda *a, **k: {fast: 10.0, slow: 5.0})
        _, m = stored.store("demo", setup["spec"], setup["model"], "c1", splits=("query",), mean=MEAN, scale=SCALE,
                            data_dir=setup["data"], out=str(tmp_path / fast))
        assert m["query"]["engine"] == fast
        assert "dhn.blobs: storing with %s, the faster here (caffe " % fast in capsys.readouterr().err
    assert blobs.choose_engine("auto", lower, setup["model"], gpu=0) == "caffe"
    assert blobs.choose_engine("opencv", lower, setup["model"]) == "opencv"
