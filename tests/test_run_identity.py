"""What a run folder is: its input transform (mean, scale) is part of its configuration, and an
evaluation on another database writes its own results file beside the first one's and never
hands back the first one's results (the fault injected: the same finished run asked again with
another mean, another database; a results.json from before results were filed per database)."""
import json
import os
import re

import pytest

import datagen
from dhn import convert, report, run_folder, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The demo data (160 train / 40 query / 100 database), a 50-image database subset, a small
    foreign backbone (random weights)."""
    import caffe
    root = tmp_path_factory.mktemp("ident")
    lmdb_dir, _ = datagen.converted_demo(str(root), 300, seed=5, order_seed=0, n_train=160, n_query=40)
    convert.subset_split(os.path.join(lmdb_dir, "database"), os.path.join(lmdb_dir, "database_50"), range(0, 100, 2),
                         "database_50")
    deploy = root / "smallnet.prototxt"
    deploy.write_text(datagen.SMALL_DEPLOY)
    caffe.set_mode_cpu()
    model = str(root / "smallnet.caffemodel")
    caffe.Net(str(deploy), caffe.TEST).save(model)
    return dict(lmdb=lmdb_dir, spec=str(deploy) + ":feat", model=model)


def test_another_mean_or_scale_is_another_configuration(data, tmp_path):
    run = str(tmp_path / "run")
    kw = dict(iters=8, data_dir=data["lmdb"], run_dir=run, quiet=True, backbone=data["spec"], weights=data["model"],
              init_fch="none")     # a cold start: no fitted head first (tests/test_stored.py has that path)
    train.train("demo", 8, "dhn", mean=(128, 128, 128), scale=1 / 128, **kw)
    ident = json.load(open(os.path.join(run, "config.json")))["identity"]
    assert (ident["mean"], ident["scale"]) == ([128.0, 128.0, 128.0], 1 / 128)
    for change, said in ((dict(mean=(100, 100, 100), scale=1 / 128), "mean [128.0, 128.0, 128.0] -> [100.0, 100.0, 100.0]"),
                         (dict(mean=(128, 128, 128), scale=1.0), "scale 0.0078125 -> 1.0")):
        with pytest.raises(run_folder.TrainError, match=re.escape("another configuration (%s)" % said)):
            train.train("demo", 8, "dhn", **change, **kw)
    # a run recorded before mean and scale joined the identity: they come from its config's own record
    path = os.path.join(run, "config.json")
    config = json.load(open(path))
    for key in ("mean", "scale"):
        del config["identity"][key]
    open(path, "w").write(json.dumps(config))
    assert train.train("demo", 8, "dhn", mean=(128, 128, 128), scale=1 / 128, **kw)["mean"] == [128.0] * 3
    with pytest.raises(run_folder.TrainError, match="another configuration \\(mean"):
        train.train("demo", 8, "dhn", mean=(100, 100, 100), scale=1 / 128, **kw)


def test_another_database_gets_its_own_results_file(data, tmp_path):
    runs = tmp_path / "runs"
    run = str(runs / "demo-8-dhn")
    kw = dict(iters=8, data_dir=data["lmdb"], run_dir=run, quiet=True)
    first = train.train("demo", 8, "dhn", **kw)
    saved = open(os.path.join(run, "results.json")).read()
    assert (first["database"], first["n_database"]) == ("database", 100)
    log = open(os.path.join(run, "train.log")).read()
    other = train.train("demo", 8, "dhn", database="database_50", **kw)
    assert (other["database"], other["n_database"]) == ("database_50", 50)
    assert json.load(open(os.path.join(run, "results-database_50.json"))) == other
    assert open(os.path.join(run, "results.json")).read() == saved             # the first results untouched
    assert open(os.path.join(run, "train.log")).read() == log                  # evaluated, not retrained
    for name in ("pr_curve-database_50.png", "precision_at_n-database_50.png", "gallery-database_50.png",
                 "codes/database_50.npy", "pr_curve.png", "gallery.png"):
        assert os.path.exists(os.path.join(run, name)), name
    # each request finds its own finished results
    assert train.train("demo", 8, "dhn", **kw) == json.loads(saved)
    assert train.train("demo", 8, "dhn", database="database_50", **kw) == other
    # and the report shows both, the second as a row of its own
    runs_found = {r["run"]: r["n_database"] for r in report.load_runs(str(runs))}
    assert runs_found == {"demo-8-dhn": 100, "demo-8-dhn/results-database_50.json": 50}
    assert "database database_50 (50 images)" in report.tables(report.load_runs(str(runs)))


def test_a_results_json_of_another_database_from_before_is_kept(data, tmp_path):
    # as results were filed before: one results.json, whatever database the run was evaluated on
    run = tmp_path / "run"
    kw = dict(iters=8, data_dir=data["lmdb"], run_dir=str(run), quiet=True)
    other = train.train("demo", 8, "dhn", database="database_50", **kw)
    os.rename(run / "results-database_50.json", run / "results.json")
    written = os.stat(run / "results.json").st_mtime_ns
    assert train.train("demo", 8, "dhn", database="database_50", **kw) == other    # found, not recomputed
    assert os.stat(run / "results-database_50.json").st_mtime_ns == written
    first = train.train("demo", 8, "dhn", **kw)                                   # the default database: evaluated
    assert first["n_database"] == 100 and json.load(open(run / "results.json")) == first
    assert json.load(open(run / "results-database_50.json")) == other


def test_a_config_from_before_a_key_existed_reads_as_that_keys_old_behaviour(tmp_path):
    # a whole-net run recorded before bn_recalibration existed ended on its last snapshot: None
    now = dict(dataset="demo", mean=[128.0] * 3, scale=1.0, similar_weight=1.0, upper=None, views=None,
               norm_stats="global", feature_norm=True, backbone_dropout=False, mode="fine-tuned", backbone="x:y")
    (tmp_path / "config.json").write_text(json.dumps({"identity": now}))
    assert run_folder.check_same_config(str(tmp_path), dict(now, bn_recalibration=None), force_new=False)
    with pytest.raises(run_folder.TrainError, match="bn_recalibration None -> train split, centre crop"):
        run_folder.check_same_config(str(tmp_path), dict(now, bn_recalibration=train.BN_RECALIBRATION), force_new=False)
