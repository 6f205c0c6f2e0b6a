"""The whole job through dhn.train on small generated data: list → LMDB → caffe train →
encode → evaluate; resume after a kill; clear errors (divergence, missing weights, missing
data); and the lr × λ sweep on a validation split carved from the training set."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dhn import caffe_process, demo, run_folder, split_folder, sweep, train
import datagen
import procs

N_IMAGES = 400


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """A small converted copy of the demo dataset: 240 train / 60 query / 100 database."""
    root = str(tmp_path_factory.mktemp("demo"))
    return datagen.converted_demo(root, N_IMAGES, seed=3, order_seed=0, n_train=240, n_query=60)[0]


def test_trained_codes_beat_random_ranking(demo_data, tmp_path):
    run = str(tmp_path / "run")
    res = train.train("demo", 16, "dhn", iters=300, data_dir=demo_data, run_dir=run, quiet=True)
    lq = split_folder.read_split_labels(os.path.join(demo_data, "query"))
    ld = split_folder.read_split_labels(os.path.join(demo_data, "database"))
    baseline = demo.random_ranking_map(lq, ld)
    print("MAP %.3f vs random %.3f" % (res["map"], baseline))
    assert res["map"] > baseline + 0.1
    for name in ("results.json", "loss.png", "train.log", "config.json", "codes/query.npy", "codes/database.npy"):
        assert os.path.exists(os.path.join(run, name)), name
    saved = json.load(open(os.path.join(run, "results.json")))
    assert saved["map"] == pytest.approx(res["map"]) and saved["variant"] == "dhn"
    # a second call finds the finished run and does nothing
    assert train.train("demo", 16, "dhn", iters=300, data_dir=demo_data, run_dir=run, quiet=True)["map"] == res["map"]


def brute_force_aps(scores, lq, ld, R):
    """Per-query AP@R from a score matrix (higher first, ties in database order), computed here
    from the definition: precision at each relevant item within the top R, over those items."""
    aps = []
    for q in range(len(scores)):
        order = np.argsort(-scores[q], kind="stable")[:R]
        rel = (ld[order] @ lq[q]) > 0
        hits = np.cumsum(rel)
        aps.append(float((hits[rel] / (np.flatnonzero(rel) + 1)).sum() / hits[-1]) if hits[-1] else 0.0)
    return np.asarray(aps)


def test_dhn_b_ranks_real_valued_codes(demo_data, tmp_path):
    run = tmp_path / "b"
    res = train.train("demo", 8, "dhn-b", iters=40, data_dir=demo_data, run_dir=str(run), quiet=True)
    assert res["ranking"] == "inner_product"
    saved = json.load(open(run / "results.json"))
    zq, zd = np.load(run / "codes" / "query.npy"), np.load(run / "codes" / "database.npy")
    lq = split_folder.read_split_labels(os.path.join(demo_data, "query")).astype(np.int64)
    ld = split_folder.read_split_labels(os.path.join(demo_data, "database")).astype(np.int64)
    real = brute_force_aps(zq.astype(np.float64) @ zd.astype(np.float64).T, lq, ld, saved["R"])
    sq, sd = np.where(zq >= 0, 1.0, -1.0), np.where(zd >= 0, 1.0, -1.0)
    sign = brute_force_aps(sq @ sd.T, lq, ld, saved["R"])      # inner product of ±1 codes: Hamming order
    # the scores are the float codes' inner products, query by query, and not the sign codes'
    np.testing.assert_allclose(saved["ap"], real, rtol=0, atol=1e-9)
    assert saved["map"] == pytest.approx(real.mean(), abs=1e-9)
    differ = np.abs(real - sign) > 1e-6
    assert differ.sum() >= 5, "the float and sign rankings should differ on these codes"
    assert not np.allclose(np.asarray(saved["ap"])[differ], sign[differ], rtol=0, atol=1e-6)


def group_alive(pgid):
    """Whether a process of the process group pgid is still alive (not yet a zombie)."""
    import glob
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as fh:
                state, _, group = fh.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state not in "ZX":
            return True
    return False


def test_killed_run_resumes_from_its_snapshot(demo_data, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dhn.train", "--dataset", "demo", "--bits", "8", "--iters", "400",
           "--data", demo_data, "--run", str(run)]
    # output to a file, not an unread pipe: a full pipe (64 KiB) would stall the run before its snapshot
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 600   # the first snapshot (iteration 100) comes in seconds, unless the machine is busy
        while not run_folder.latest_snapshot(str(run))[0] and proc.poll() is None:
            assert time.time() < deadline, "no snapshot after 600 s:\n" + first_log.read_text()[-2000:]
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it was killed:\n" + first_log.read_text()[-2000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)     # the tool and its caffe child, mid-run
    proc.wait(timeout=60)
    # proc.wait() reaps the tool, not its caffe child: until the child is gone too, a write it had
    # under way (the end of a snapshot) can still land and change the newest whole snapshot, which
    # is then not the one read here (the race a busy machine lost)
    deadline = time.time() + 60
    while group_alive(proc.pid):
        assert time.time() < deadline, "the killed run's caffe still runs after 60 s"
        time.sleep(0.1)
    assert not (run / "results.json").exists()
    it, _ = run_folder.latest_snapshot(str(run))
    assert 0 < it < 400, ("the kill came after the last snapshot (iteration %d): the run went from its first "
                          "snapshot to its last before this test saw the first" % it)
    out = procs.run(cmd, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resuming %s from iteration %d" % (run, it) in out.stderr
    assert (run / "snapshots" / "dhn_iter_400.caffemodel").exists()
    assert "MAP = " in out.stdout


def test_a_truncated_snapshot_is_not_resumed(demo_data, tmp_path):
    # as a kill during Caffe's snapshot writing leaves it: the newest state cut short
    run = str(tmp_path / "run")
    train.train("demo", 8, "dhn", iters=40, data_dir=demo_data, run_dir=run, quiet=True)
    newest = os.path.join(run, "snapshots", "dhn_iter_40.solverstate")
    data = open(newest, "rb").read()
    with open(newest, "wb") as fh:
        fh.write(data[: len(data) // 2])
    assert run_folder.latest_snapshot(run) == (30, os.path.join(run, "snapshots", "dhn_iter_30.solverstate"))


def test_diverging_loss_is_a_clear_error(demo_data, tmp_path):
    with pytest.raises(run_folder.TrainError, match="diverged .* lower --lr"):
        train.train("demo", 8, "dhn", lr=1e6, iters=50, data_dir=demo_data, run_dir=str(tmp_path / "r"), quiet=True)
    assert not (tmp_path / "r" / "results.json").exists()


def test_missing_inputs_are_clear_errors(demo_data, tmp_path):
    with pytest.raises(run_folder.TrainError, match="bvlc_alexnet.caffemodel.*make weights"):
        # cifar10's nets start from ImageNet AlexNet; the demo's data stands in for its LMDBs
        train.train("cifar10", 12, "dhn", data_dir=demo_data, run_dir=str(tmp_path / "c"),
                    weights=str(tmp_path / "bvlc_alexnet.caffemodel"))
    with pytest.raises(run_folder.TrainError, match="no converted train split; run `make data DATASET=demo`"):
        train.train("demo", 8, "dhn", data_dir=str(tmp_path / "nothing"), run_dir=str(tmp_path / "d"))


def test_sweep_picks_the_best_validation_map(demo_data, tmp_path):
    best, rows = sweep.sweep("demo", 8, lrs=(1e-2, 1e-5), lambdas=(1.0,), iters=60, data_dir=demo_data,
                             out=str(tmp_path / "sweep"), quiet=True)
    assert len(rows) == 2 and best == max(rows, key=lambda r: r["map"])
    grid = json.load(open(tmp_path / "sweep" / "grid.json"))
    assert grid["choice"] == best
    assert (tmp_path / "sweep" / "grid.png").exists() and (tmp_path / "sweep" / "grid.csv").exists()
    # the validation queries and their database come out of the training split, never out of
    # query/database, and the validation database is not what the head trains on
    parts = ("train", "val", "val_database")
    counts = [split_folder.check_split(os.path.join(demo_data, "sweep", p))["count"] for p in parts]
    assert sum(counts) == split_folder.check_split(os.path.join(demo_data, "train"))["count"] and counts[1] > 0
    idx = [set(np.loadtxt(os.path.join(demo_data, "sweep", p, "records.txt"), dtype=int)) for p in parts]
    assert not (idx[0] & idx[1] or idx[0] & idx[2] or idx[1] & idx[2])
    for row in rows:   # scored on the held-out database
        assert os.path.exists(tmp_path / "sweep" / ("lr%g-lambda1" % row["lr"]) / "results-val-vs-val_database.json")




@pytest.fixture
def foreign_model(tmp_path):
    """The deploy net and a caffemodel saved from it, randomly initialised."""
    import caffe
    deploy = tmp_path / "smallnet.prototxt"
    deploy.write_text(datagen.SMALL_DEPLOY)   # another backbone (--backbone DEPLOY:LAYER)
    caffe.set_mode_cpu()
    net = caffe.Net(str(deploy), caffe.TEST)
    model = str(tmp_path / "smallnet.caffemodel")
    net.save(model)
    return str(deploy), model, {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def test_foreign_backbone_is_cut_after_its_layer(foreign_model):
    from dhn import netgen
    deploy, _, _ = foreign_model
    bb = netgen.foreign_backbone(deploy + ":feat", mean=(128, 128, 128))
    assert [layer.name for layer in bb.layers] == ["c1", "r1", "feat", "feat_relu"]
    assert (bb.input, bb.crop, bb.feature) == ("img", 28, "feat")
    names = [layer.name for layer in netgen.train_net("demo", 8, "dhn", backbone=bb).layer]
    assert names == ["data", "c1", "r1", "feat", "feat_relu", "fch", "code", "pair_loss", "quant_loss"]
    dep = netgen.deploy_net("demo", 8, batch=4, backbone=bb)
    assert [layer.name for layer in dep.layer] == ["img", "c1", "r1", "feat", "feat_relu", "fch", "code"]
    assert list(dep.layer[0].input_param.shape[0].dim) == [4, 3, 28, 28]


@pytest.mark.parametrize("spec, message", [
    ("{deploy}", "give it as DEPLOY.prototxt:LAYER"),
    ("{deploy}:fc9", "has no layer 'fc9' (its layers: img, c1, r1, feat, feat_relu, cls, prob)"),
    ("{missing}:feat", "not a readable Caffe net prototxt"),
])
def test_foreign_backbone_errors_name_the_file(foreign_model, tmp_path, spec, message):
    from dhn import netgen
    spec = spec.format(deploy=foreign_model[0], missing=str(tmp_path / "nope.prototxt"))
    with pytest.raises(ValueError, match=re.escape(message)):
        netgen.foreign_backbone(spec)


def test_foreign_backbone_trains_from_its_caffemodel(demo_data, tmp_path, foreign_model):
    import caffe
    deploy, model, params = foreign_model
    with pytest.raises(run_folder.TrainError, match="needs its caffemodel"):
        train.train("demo", 8, "dhn", iters=2, data_dir=demo_data, run_dir=str(tmp_path / "x"),
                    backbone=deploy + ":feat", init_fch="none")
    run = tmp_path / "run"
    res = train.train("demo", 8, "dhn", iters=300, data_dir=demo_data, run_dir=str(run), quiet=True,
                      backbone=deploy + ":feat", weights=model, mean=(128, 128, 128), scale=1 / 128,
                      init_fch="none", backbone_lr_mult=1)     # a cold start at the backbone's own rate
    assert (res["init_fch"], res["backbone_lr_mult"]) == (None, 1.0)
    lq = split_folder.read_split_labels(os.path.join(demo_data, "query"))
    ld = split_folder.read_split_labels(os.path.join(demo_data, "database"))
    assert res["map"] > demo.random_ranking_map(lq, ld) + 0.1
    # caffe train -weights copied the kept layers by name and skipped the cut-off head
    log = (run / "train.log").read_text()
    assert "Ignoring source layer cls" in log and "Ignoring source layer prob" in log
    # the run's own deploy net keeps the backbone's names: its caffemodel loads into it as it is
    net = caffe.Net(str(run / "deploy.prototxt"), caffe.TEST, weights=model)
    for name in ("c1", "feat"):
        for got, want in zip(net.params[name], params[name]):
            np.testing.assert_array_equal(got.data, want)
    assert json.load(open(run / "config.json"))["identity"]["backbone"] == deploy + ":feat"


def test_train_log_is_written_line_by_line(tmp_path, monkeypatch):
    # `tail -f train.log` must show caffe's lines as they come: a stand-in for the caffe binary
    # prints one iteration line and then stays alive until the test has seen it in the file (no
    # timing assumption: the stand-in waits for a flag file, however busy the machine)
    import threading
    fake = tmp_path / "caffe_root" / "bin" / "caffe"
    fake.parent.mkdir(parents=True)
    go = tmp_path / "go"
    fake.write_text("#!/bin/sh\necho 'I1129 solver.cpp:239] Iteration 0 (0 iter/s), loss = 1.5' >&2\n"
                    "while [ ! -e '%s' ]; do sleep 0.05; done\n" % go)
    fake.chmod(0o755)
    monkeypatch.setenv("CAFFE_ROOT", str(fake.parent.parent))
    run = tmp_path / "run"
    run.mkdir()
    worker = threading.Thread(target=caffe_process.run_caffe_train, args=(str(run), "solver.prototxt", 10), kwargs={"quiet": True})
    worker.start()
    seen, deadline = False, time.time() + 120
    try:
        while time.time() < deadline and not seen:
            seen = (run / "train.log").exists() and "Iteration 0 (0 iter/s), loss = 1.5" in (run / "train.log").read_text()
            time.sleep(0.05)
        assert seen and worker.is_alive()          # in the file while caffe still runs
    finally:
        go.touch()
        worker.join()


def test_a_hung_caffe_train_is_stopped_at_the_time_limit(tmp_path, monkeypatch):
    # a stand-in for the caffe binary that prints one line and then hangs
    fake = tmp_path / "caffe_root" / "bin" / "caffe"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'I1129 solver.cpp:239] Iteration 0 (0 iter/s), loss = 1.5' >&2\nexec sleep 600\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CAFFE_ROOT", str(fake.parent.parent))
    monkeypatch.setenv("DHN_TRAIN_TIMEOUT", "2")
    run = tmp_path / "run"
    run.mkdir()
    t0 = time.time()
    with pytest.raises(run_folder.TrainError) as info:
        caffe_process.run_caffe_train(str(run), "solver.prototxt", 10, quiet=True)
    assert time.time() - t0 < 60
    assert re.fullmatch(r"caffe train ran past DHN_TRAIN_TIMEOUT=2 s and was stopped near iteration 0, see .*train\.log: "
                        r"raise or unset the limit; the run resumes from its last snapshot", str(info.value))
    monkeypatch.setenv("DHN_TRAIN_TIMEOUT", "soon")
    with pytest.raises(run_folder.TrainError, match="DHN_TRAIN_TIMEOUT='soon': give seconds"):
        caffe_process.run_caffe_train(str(run), "solver.prototxt", 10, quiet=True)


def test_a_run_folder_is_one_configuration(demo_data, tmp_path, capsys):
    run = str(tmp_path / "run")
    kw = dict(data_dir=demo_data, run_dir=run, quiet=True)
    first = train.train("demo", 8, "dhn", iters=40, **kw)
    config = json.load(open(os.path.join(run, "config.json")))
    ident = config["identity"]
    assert (ident["lr"], ident["lambda"], ident["max_iter"], ident["seed"], ident["shuffle"]) == (1e-2, 1.0, 40, 1234, True)
    assert config["caffe"]["patches"] and "variant" in config["caffe"]
    saved = json.load(open(os.path.join(run, "results.json")))
    for key in ("lr", "lambda", "max_iter", "stepsize", "seed", "batch", "backbone", "mode", "train_split", "commit"):
        assert key in saved, key
    # the same settings: the finished run is returned as it is
    assert train.train("demo", 8, "dhn", iters=40, **kw)["map"] == first["map"]
    # another lr, λ or iteration count: refused in one line, nothing touched
    for change in (dict(lr=1e-3), dict(lambda_=0.5), dict(iters=60), dict(seed=7)):
        with pytest.raises(run_folder.TrainError) as info:
            train.train("demo", 8, "dhn", **dict(dict(iters=40), **change), **kw)
        msg = str(info.value)
        assert "holds a run of another configuration" in msg and "--force-new" in msg and "\n" not in msg
    assert json.load(open(os.path.join(run, "config.json"))) == config
    with pytest.raises(run_folder.TrainError, match=r"lr 0\.01 -> 0\.001"):
        train.train("demo", 8, "dhn", lr=1e-3, iters=40, **kw)
    # --force-new starts it over under the new settings
    res = train.train("demo", 8, "dhn", lr=1e-3, iters=40, force_new=True, **kw)
    assert res["lr"] == 1e-3 and json.load(open(os.path.join(run, "config.json")))["identity"]["lr"] == 1e-3


def data_params(prototxt):
    import ast
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    net = text_format.Merge(open(prototxt).read(), caffe_pb2.NetParameter())
    return ast.literal_eval(next(l for l in net.layer if l.python_param.module == "dhn_data").python_param.param_str)


def test_an_unchanged_configuration_resumes(demo_data, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dhn.train", "--dataset", "demo", "--bits", "8", "--iters", "40",
           "--data", demo_data, "--run", str(run)]
    assert procs.run(cmd, timeout=1800).returncode == 0
    for f in ("dhn_iter_40.caffemodel", "dhn_iter_40.solverstate"):
        os.remove(run / "snapshots" / f)
    os.remove(run / "results.json")
    out = procs.run(cmd, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resuming %s from iteration 30" % run in out.stderr
    assert data_params(run / "train.prototxt")["start_iter"] == 30       # the data stream continues
    changed = procs.run(cmd[:-4] + ["--lr", "0.5"] + cmd[-4:], timeout=600)
    assert changed.returncode == 2
    assert re.fullmatch(r"error: .* holds a run of another configuration \(lr 0\.01 -> 0\.5\): pass --force-new .*\n",
                        changed.stderr)


def test_iters_says_the_step_size_it_chooses(demo_data, tmp_path):
    out = procs.run([sys.executable, "-m", "dhn.train", "--dataset", "demo", "--bits", "8", "--iters", "60",
                     "--data", demo_data, "--run", str(tmp_path / "run")], timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "lr schedule: γ 0.5 every 20 iterations (ITERS=60 keeps the default's shape, 400 of 1200)" in out.stderr
    config = json.load(open(tmp_path / "run" / "config.json"))
    assert config["identity"]["stepsize"] == 20 and "every 20 iterations" in config["schedule_note"]
    assert "stepsize: 20" in (tmp_path / "run" / "solver.prototxt").read_text()
