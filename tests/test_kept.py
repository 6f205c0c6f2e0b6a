"""Results kept in the repository (dhn.kept, results/): a finished run's config.json and results
copied there; a run of the same configuration counted as done from them where asked (make
table-cpu), never for another configuration; make report reads them beside runs/, a run in both
once; and the real-data table docs/RESULTS.md publishes from them, rebuilt cell for cell."""
import json
import os
import shutil

import pytest

from dhn import features, kept, report, train
from dhn.datasets import DatasetError
import datagen

ROOT = os.path.join(os.path.dirname(__file__), "..")
MEAN, SCALE = (128, 128, 128), 1 / 128


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("kept"))
    deploy, model = datagen.small_backbone(root)
    data, _ = datagen.converted_demo(root, 200, seed=4, order_seed=1, n_train=120, n_query=30)
    spec = deploy + ":feat"
    out, _ = features.extract("demo", ("train", "query", "database"), spec, model, mean=MEAN, scale=SCALE,
                              data_dir=data, out=os.path.join(root, "features"), progress=False)
    return dict(root=root, spec=spec, model=model, features=out)


def frozen(setup, run_dir, **kw):
    return train.train("demo", 16, "dhn", features=True, backbone=setup["spec"], weights=setup["model"], mean=MEAN,
                       scale=SCALE, data_dir=setup["features"], run_dir=str(run_dir), iters=20, **dict(dict(quiet=True), **kw))


def test_a_kept_run_counts_as_done_only_where_asked_and_only_for_its_configuration(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("DHN_ROOT", str(tmp_path))
    run = tmp_path / "runs" / "frozen16"
    res = frozen(setup, run)
    out = kept.keep(str(run))
    assert out == os.path.join(str(tmp_path), "results", "frozen16")
    assert sorted(os.listdir(out)) == ["config.json", "results.json"]
    assert json.load(open(os.path.join(out, "results.json")))["map"] == res["map"]
    shutil.rmtree(run)                       # another machine: the run folder is gone, results/ is committed
    again = frozen(setup, run, reuse_kept=True)
    assert again["map"] == res["map"] and not (run / "train.log").exists()      # not trained again
    assert not (run / "results.json").exists()
    other = frozen(setup, run, reuse_kept=True, lr=1e-3)     # another lr: another configuration, trained
    assert (run / "train.log").exists() and other["lr"] == 1e-3
    shutil.rmtree(run)
    frozen(setup, run)                       # make train: a reproduction trains, whatever is kept
    assert (run / "train.log").exists()


def test_a_kept_run_counts_as_done_where_the_backbone_and_its_features_lie_elsewhere(setup, tmp_path, monkeypatch):
    """Another checkout: the same backbone files at another path, their features made there. The
    training split's fingerprint is placeless (split_folder.split_key), so the run kept here is
    the same configuration there; the fingerprint with paths, which runs recorded before, is not."""
    from dhn import split_folder
    monkeypatch.setenv("DHN_ROOT", str(tmp_path))
    run = tmp_path / "runs" / "frozen16"
    res = frozen(setup, run)
    kept.keep(str(run))
    shutil.rmtree(run)
    there = tmp_path / "elsewhere"
    shutil.copytree(os.path.dirname(setup["model"]), there)
    spec = str(there / os.path.relpath(setup["spec"], os.path.dirname(setup["model"])))
    model = str(there / os.path.basename(setup["model"]))
    data = os.path.join(os.path.dirname(setup["features"]), "lmdb")
    feats, _ = features.extract("demo", ("train", "query", "database"), spec, model, mean=MEAN, scale=SCALE,
                                data_dir=data, out=str(there / "features-made-there"), progress=False)
    a, b = os.path.join(setup["features"], "train"), os.path.join(feats, "train")
    assert split_folder.split_key(a) == split_folder.split_key(b)
    assert split_folder.split_key_with_paths(a) != split_folder.split_key_with_paths(b)
    again = train.train("demo", 16, "dhn", features=True, backbone=spec, weights=model, mean=MEAN, scale=SCALE,
                        data_dir=feats, run_dir=str(run), iters=20, quiet=True, reuse_kept=True)
    assert again["map"] == res["map"] and not (run / "train.log").exists()      # counted as done, not trained


def test_a_run_that_recorded_the_fingerprint_with_paths_is_the_same_configuration(setup, tmp_path, monkeypatch, capsys):
    """Run folders and kept results recorded before the fingerprint was placeless hold
    split_key_with_paths of their training split: read as the same thing (RunPlan.recorded_before)."""
    from dhn import split_folder
    monkeypatch.setenv("DHN_ROOT", str(tmp_path))
    run = tmp_path / "runs" / "frozen16"
    res = frozen(setup, run)
    before = split_folder.split_key_with_paths(os.path.join(setup["features"], "train"))
    assert before != res["train_split"]
    config = json.load(open(run / "config.json"))
    config["identity"]["train_split"] = before
    (run / "config.json").write_text(json.dumps(config))
    kept.keep(str(run))
    capsys.readouterr()
    assert frozen(setup, run, quiet=False)["map"] == res["map"]
    assert "the run is done" in capsys.readouterr().err
    shutil.rmtree(run)
    assert frozen(setup, run, reuse_kept=True)["map"] == res["map"] and not (run / "train.log").exists()
    config["identity"]["train_split"] = "0123456789abcdef"      # another split: another configuration
    (tmp_path / "results" / "frozen16" / "config.json").write_text(json.dumps(config))
    shutil.rmtree(run)
    frozen(setup, run, reuse_kept=True)
    assert (run / "train.log").exists()


def test_kept_identity_ignores_where_the_backbone_lay(tmp_path):
    a = {"backbone": "/m1/weights/squeezenet_v1.0_dc/deploy.prototxt:pool_final", "lr": 1e-3}
    assert kept.same_identity(a, dict(a, backbone="../shared/data/squeezenet_v1.0_dc/deploy.prototxt:pool_final"))
    assert not kept.same_identity(a, dict(a, backbone="/m1/weights/other/deploy.prototxt:pool_final"))
    assert not kept.same_identity(a, dict(a, lr=1e-2)) and not kept.same_identity(None, a)


def test_keep_refuses_what_is_not_a_finished_run(tmp_path):
    run = tmp_path / "runs" / "half"
    run.mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"half: no results\*.json: the run is not finished"):
        kept.keep(str(run), str(tmp_path))
    (run / "results.json").write_text('{"map": 0.5}')
    with pytest.raises(DatasetError, match=r"half/config.json.*train it again"):
        kept.keep(str(run), str(tmp_path))
    assert not (tmp_path / "results").exists()
    assert kept.main([str(run)]) == 2


def fake_run(folder, name, map_, seed):
    os.makedirs(os.path.join(folder, name))
    doc = {"dataset": "cifar10", "bits": 48, "variant": "dhn", "map": map_, "seed": seed, "mode": "frozen features",
           "backbone": "x/deploy.prototxt:pool5", "lr": 1e-3, "lambda": 0.1, "max_iter": 3000}
    with open(os.path.join(folder, name, "results.json"), "w") as fh:
        json.dump(doc, fh)


def test_report_reads_the_kept_results_beside_runs_and_a_run_in_both_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DHN_ROOT", str(tmp_path))
    fake_run(tmp_path / "results", "a-s1", 0.50, 1)
    fake_run(tmp_path / "results", "a-s2", 0.52, 2)
    fake_run(tmp_path / "runs", "a-s2", 0.52, 2)          # kept from this machine: the same run
    fake_run(tmp_path / "runs", "a-s3", 0.54, 3)
    assert report.main([]) == 0
    text = (tmp_path / "runs" / "report.md").read_text()
    assert "0.520 ± 0.020 (3)" in text                   # three seeds, not four
    shutil.rmtree(tmp_path / "runs")                     # a fresh clone: only results/
    assert report.main([]) == 0
    assert "0.510 ± 0.014 (2)" in (tmp_path / "runs" / "report.md").read_text()


def test_the_published_kept_table_is_rebuilt_from_results_cell_for_cell():
    """docs/RESULTS.md's kept-results section is `make report`'s table of results/ as committed."""
    runs, baselines = report.load_all([os.path.join(ROOT, kept.FOLDER)])
    if not runs:
        pytest.skip("no results kept in results/ yet")
    published = open(os.path.join(ROOT, "docs", "RESULTS.md")).read()
    table = report.tables(runs, baselines)
    for line in table.splitlines():
        if line.startswith("|"):
            assert line in published, "docs/RESULTS.md lacks the kept row %r: run make report, copy its table" % line


def test_runs_from_machines_that_kept_the_backbone_elsewhere_share_a_cell(tmp_path):
    for seed, where in ((1, "/m1/weights"), (2, "../shared/data")):
        fake_run(tmp_path / "results", "b-s%d" % seed, 0.50 + seed / 100, seed)
        path = tmp_path / "results" / ("b-s%d" % seed) / "results.json"
        doc = json.loads(path.read_text())
        path.write_text(json.dumps(dict(doc, backbone=where + "/squeezenet_v1.0_dc/deploy.prototxt:pool_final")))
    runs, _ = report.load_all([str(tmp_path / "results")])
    assert "0.515 ± 0.007 (2)" in report.tables(runs)
