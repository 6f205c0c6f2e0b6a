"""dhn.evaluate (results.json + plots, the CLI) and dhn.report (the paper-style tables)."""
import json
import os
import re

import numpy as np
import pytest

from dhn import evaluate, metrics, report
from test_metrics_map import clustered_codes, one_hot


def real_codes(rng, labels, k):
    # tanh-like codes: clustered signs with magnitudes in (0, 1)
    return clustered_codes(rng, labels, k, 0.2) * rng.uniform(0.05, 0.95, size=(len(labels), k))


@pytest.fixture
def codes():
    rng = np.random.default_rng(0)
    ql, dl = one_hot(rng, 20, 4), one_hot(rng, 300, 4)
    return real_codes(rng, ql, 12).astype(np.float32), ql, real_codes(rng, dl, 12).astype(np.float32), dl


def test_evaluate_codes_binary_and_real(codes):
    zq, ql, zd, dl = codes
    out = evaluate.evaluate_codes(zq, ql, zd, dl, R=None)
    assert out["ranking"] == "hamming" and out["R"] == 300 and out["bits"] == 12
    assert out["map"] == metrics.map_at_r(metrics.binarize(zq), ql, metrics.binarize(zd), dl)
    assert out["precision_at_n"]["n"][-1] <= 300          # cut-offs past the database dropped
    assert "precision_hamming2" in out and "precision_radius" not in out
    real = evaluate.evaluate_codes(zq, ql, zd, dl, R=50, binary=False)
    assert real["ranking"] == "inner_product" and real["R"] == 50
    assert real["map"] == metrics.map_at_r(zq, ql, zd, dl, R=50, ranking="inner_product")


def test_write_results(tmp_path, codes):
    zq, ql, zd, dl = codes
    out = evaluate.evaluate_codes(zq, ql, zd, dl, R=100)
    evaluate.write_results(str(tmp_path), out, {"dataset": "cifar10", "bits": 12, "variant": "dhn"})
    doc = json.loads((tmp_path / "results.json").read_text())
    for key in ("map", "R", "ranking", "n_query", "n_database", "precision_hamming2", "pr_curve",
                "precision_at_n", "dataset", "bits", "variant"):
        assert key in doc, key
    assert doc["map"] == out["map"]
    for png in ("pr_curve.png", "precision_at_n.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_cli(tmp_path, codes, capsys):
    zq, ql, zd, dl = codes
    for name, a in (("q", zq), ("ql", ql), ("d", zd), ("dl", dl)):
        np.save(tmp_path / (name + ".npy"), a)
    run = tmp_path / "run"
    args = ["--query-codes", str(tmp_path / "q.npy"), "--query-labels", str(tmp_path / "ql.npy"),
            "--db-codes", str(tmp_path / "d.npy"), "--db-labels", str(tmp_path / "dl.npy"),
            "--out", str(run)]
    evaluate.main(args + ["--R", "all", "--dataset", "cifar10"])
    doc = json.loads((run / "results.json").read_text())
    assert doc["variant"] == "dhn" and doc["bits"] == 12 and doc["R"] == 300
    evaluate.main(args + ["--R", "40", "--real"])
    doc = json.loads((run / "results.json").read_text())
    assert doc["variant"] == "dhn-b" and doc["ranking"] == "inner_product" and doc["R"] == 40
    capsys.readouterr()
    assert evaluate.main(args + ["--R", "301"]) == 2
    assert re.fullmatch(r"error: .*R=301 must be an integer in 1\.\.300.*\n", capsys.readouterr().err)


def write_run(runs, name, **doc):
    os.makedirs(runs / name)
    (runs / name / "results.json").write_text(json.dumps(doc))


CONFIG = dict(mode="fine-tuned", backbone="alexnet", max_iter=3000, alpha=1.0, shuffle=True, backbone_lr_mult=1.0,
              init_fch=None, batch=64, lr=2e-5, database="database", query="query", features=None)
# A frozen-feature run as dhn.train records it: its backbone is the DEPLOY:LAYER spec the features
# came from (never "alexnet" unless they are AlexNet's), features the features folder's name, with
# that backbone's input transform and the BatchNorm before fch. test_features checks a real
# frozen run's results.json against the same row label.
FROZEN = dict(CONFIG, mode="frozen features", backbone="/x/squeezenet_v1.0_dc/deploy.prototxt:pool_final",
              features="squeezenet_v1.0_dc-pool_final", feature_norm=True, mean=[104.0, 117.0, 123.0], scale=1.0)


def test_report_table(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_run(runs, "cifar10-12-dhn", dataset="cifar10", bits=12, variant="dhn", map=0.5, R=54000, n_database=54000,
              seed=1, **CONFIG, **{"lambda": 10.0})
    write_run(runs, "cifar10-48-dhn-b", dataset="cifar10", bits=48, variant="dhn-b", map=0.6, R=54000,
              n_database=54000, seed=1, **CONFIG, **{"lambda": 10.0})
    # two seeds of one configuration are averaged, never maxed
    for seed, m in ((1, 0.70), (2, 0.72)):
        write_run(runs, "nus-s%d" % seed, dataset="nuswide21", bits=24, variant="dhn", map=m, R=5000,
                  n_database=183234, seed=seed, **CONFIG, **{"lambda": 10.0})
    write_run(runs, "broken", dataset="cifar10")          # skipped, with a note on stderr
    os.makedirs(runs / "sweep-cifar10-48" / "lr1e-05-lambda1")   # grid runs are not read
    (runs / "sweep-cifar10-48" / "lr1e-05-lambda1" / "results.json").write_text(
        json.dumps(dict(dataset="cifar10", bits=48, variant="dhn", map=0.99)))
    report.main(["--runs", str(runs)])
    text = (runs / "report.md").read_text()
    assert text in capsys.readouterr().out     # printed as well as written
    assert (runs / "report_map_vs_bits.png").exists()
    lines = text.splitlines()
    cifar = lines.index("## CIFAR-10 (MAP over the whole database)")
    assert lines[cifar + 2] == "| configuration | 12 bits | 24 bits | 32 bits | 48 bits |"
    assert lines[cifar + 4] == "| DHN — paper | 0.555 | 0.594 | 0.603 | 0.621 |"
    assert lines[cifar + 5] == "| DHN — lr 2e-05, λ 10 | 0.500 | — | — | — |"
    assert lines[cifar + 6] == "| DHN-B — lr 2e-05, λ 10 | — | — | — | 0.600 |"
    nus = lines.index("## NUS-WIDE (21 concepts) (MAP@5000)")
    # only the 48-bit number has a source; the protocol difference is said
    assert lines[nus + 4] == "| DHN — paper | — | — | — | 0.758 |"
    assert lines[nus + 5] == "| DHN — lr 2e-05, λ 10 | — | 0.710 ± 0.014 (2) | — | — |"
    assert any(line.startswith("Protocol: database = all images outside train/query (183,234)") for line in lines)
    assert "0.99" not in text and "broken" not in text


def test_report_keeps_configurations_apart(tmp_path):
    # the case a reviewer found: a short SqueezeNet run on a database subset in the AlexNet cell
    runs = tmp_path / "runs"
    write_run(runs, "alexnet", dataset="cifar10", bits=48, variant="dhn", map=0.60, R=54000, n_database=54000,
              seed=1, **CONFIG, **{"lambda": 10.0})
    other = dict(CONFIG, backbone="/x/squeezenet_v1.0_dc/deploy.prototxt:pool_final", max_iter=150, lr=1e-4,
                 database="database_5400")
    write_run(runs, "squeeze", dataset="cifar10", bits=48, variant="dhn", map=0.178, R=5400, n_database=5400,
              seed=1, **other, **{"lambda": 10.0})
    frozen = dict(FROZEN, lr=1e-3)
    for seed, m in ((1, 0.40), (2, 0.42), (3, 0.44)):
        write_run(runs, "frozen-s%d" % seed, dataset="cifar10", bits=48, variant="dhn", map=m, R=54000,
                  n_database=54000, seed=seed, **frozen, **{"lambda": 1.0})
    # the same short run warm-started and its BatchNorm recomputed (dhn.recalibrate): a row of its own
    write_run(runs, "squeeze-recal", dataset="cifar10", bits=48, variant="dhn", map=0.181, R=5400, n_database=5400,
              seed=1, **dict(other, init_fch="ab12", bn_recalibration="train split, centre crop"), **{"lambda": 10.0})
    text = report.tables(report.load_runs(str(runs)))
    rows = [line for line in text.splitlines() if line.startswith("| DHN —")]
    assert ("| DHN — backbone squeezenet_v1.0_dc:pool_final, 150 iterations, warm-started from a fitted head, "
            "BatchNorm recomputed after training, database database_5400 (5,400 images), lr 0.0001, λ 10 | — | — | — "
            "| 0.181 |") in rows
    assert "| DHN — lr 2e-05, λ 10 | — | — | — | 0.600 |" in rows
    assert ("| DHN — backbone squeezenet_v1.0_dc:pool_final, 150 iterations, database database_5400 (5,400 images), "
            "lr 0.0001, λ 10 | — | — | — | 0.178 |") in rows
    assert ("| DHN — backbone squeezenet_v1.0_dc:pool_final, frozen features, lr 0.001, λ 1 | — | — | — | "
            "0.420 ± 0.020 (3) |") in rows


def test_a_key_recorded_as_none_shares_a_cell_with_runs_from_before_it_existed(tmp_path):
    # seed 1 ran before bn_recalibration was recorded, seed 2 after (None: not recalibrated)
    runs = tmp_path / "runs"
    for seed, m, extra in ((1, 0.40, {}), (2, 0.42, {"bn_recalibration": None})):
        write_run(runs, "frozen-s%d" % seed, dataset="cifar10", bits=48, variant="dhn", map=m, R=54000,
                  n_database=54000, seed=seed, **FROZEN, **extra, **{"lambda": 1.0})
    rows = [line for line in report.tables(report.load_runs(str(runs))).splitlines() if line.startswith("| DHN —")]
    assert rows[1:] == ["| DHN — backbone squeezenet_v1.0_dc:pool_final, frozen features, lr 2e-05, λ 1 | — | — | — | "
                        "0.410 ± 0.014 (2) |"]      # rows[0]: the paper's


def test_seeds_written_by_evaluation_share_a_cell(tmp_path, codes):
    # results.json as evaluation writes it (per-query APs and all): only the seed tells the two
    # runs apart, so they share one cell; a new per-run result key would split them
    _, ql, _, dl = codes
    runs = tmp_path / "runs"
    maps = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        out = evaluate.evaluate_codes(real_codes(rng, ql, 12), ql, real_codes(rng, dl, 12), dl, R=None)
        meta = dict(CONFIG, dataset="demo", bits=12, variant="dhn", seed=seed, run="s%d" % seed, lr=1e-3)
        evaluate.write_results(str(runs / ("s%d" % seed)), out, dict(meta, **{"lambda": 1.0}))
        maps.append(out["map"])
    rows = [line for line in report.tables(report.load_runs(str(runs))).splitlines() if line.startswith("| DHN —")]
    assert rows == ["| DHN — lr 0.001, λ 1 | %.3f ± %.3f (2) |" % (np.mean(maps), np.std(maps, ddof=1))]


def test_unrecorded_configuration_is_its_own_row(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "old", dataset="cifar10", bits=48, variant="dhn", map=0.3, R=54000, n_database=54000)
    text = report.tables(report.load_runs(str(runs)))
    assert "| DHN — configuration not recorded (old) | — | — | — | 0.300 |" in text


def test_report_without_runs(tmp_path, capsys):
    os.makedirs(tmp_path / "runs")
    assert report.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "r.md")]) == 0
    assert "No runs yet" in (tmp_path / "r.md").read_text()
    # a folder that is not there (a typo) is said, and made nowhere
    assert report.main(["--runs", str(tmp_path / "rusn")]) == 2
    assert capsys.readouterr().err.endswith("error: %s: no such folder: give the folder that holds the run folders "
                                            "(--runs; make train writes runs/NAME/, make keep copies a run's results "
                                            "into results/)\n" % (tmp_path / "rusn"))
    assert not os.path.exists(tmp_path / "rusn")


def test_lambda_chosen_per_length_is_one_row(tmp_path):
    """Runs whose λ differs only with the code length (netgen.HEAD_DEFAULTS, a sweep per length)
    share a row that names λ per length; two λ at one length are two rows, and where most runs of
    that length share one λ, the others leave the row and it stays whole."""
    runs = tmp_path / "runs"
    head = "| DHN — backbone squeezenet_v1.0_dc:pool_final, frozen features, α 10/K, balanced pairs, lr 0.0025, "

    def dhn_rows():
        return [line for line in report.tables(report.load_runs(str(runs))).splitlines() if line.startswith(head)]

    frozen = dict(FROZEN, lr=2.5e-3, similar_weight="balanced")
    for bits, lam, m in ((12, 1.0, 0.37), (48, 0.1, 0.47)):
        write_run(runs, "f%d" % bits, dataset="cifar10", bits=bits, variant="dhn", map=m, R=54000, n_database=54000,
                  seed=1, **dict(frozen, alpha=10 / bits), **{"lambda": lam})
    assert dhn_rows() == [head + "λ 1 / 0.1 at 12 / 48 bits | 0.370 | — | — | 0.470 |"]
    write_run(runs, "f48b", dataset="cifar10", bits=48, variant="dhn", map=0.46, R=54000, n_database=54000,
              seed=1, **dict(frozen, alpha=10 / 48), **{"lambda": 1.0})
    assert dhn_rows() == [head + "λ 0.1 | — | — | — | 0.470 |",
                          head + "λ 1 | 0.370 | — | — | 0.460 |"]
    # a second seed of λ 0.1 at 48 bits: the λ most runs of each length share keeps the row, the other stands apart
    write_run(runs, "f48c", dataset="cifar10", bits=48, variant="dhn", map=0.48, R=54000, n_database=54000,
              seed=2, **dict(frozen, alpha=10 / 48), **{"lambda": 0.1})
    assert dhn_rows() == [head + "λ 1 | — | — | — | 0.460 |",
                          head + "λ 1 / 0.1 at 12 / 48 bits | 0.370 | — | — | 0.475 ± 0.007 (2) |"]


def test_a_cell_groups_runs_of_one_identity_but_seed_and_length():
    # the grouping is read from run_folder.RunIdentity: a key added to the identity splits cells too
    from dhn import run_folder
    assert set(report.GROUP_KEYS) == (set(run_folder.IDENTITY) - {"seed", "bits"}) | set(report.PROTOCOL_KEYS)
    run = json.load(open(os.path.join(os.path.dirname(__file__), "..", "results",
                                      "cifar10-48-dhn-squeezenet_v1.0_dc-upper-pool8", "results.json")))
    key = report.config_key(run)

    def other(v):
        if v == "balanced":                  # the similar pairs' weight, else a number
            return 1.0
        return (not v) if isinstance(v, bool) else v * 3 + 1 if isinstance(v, (int, float)) else v + v[:1]
    for k in run_folder.IDENTITY:
        if k not in ("seed", "bits") and run.get(k) is not None:
            assert report.config_key(dict(run, **{k: other(run[k])})) != key, k
    for k, v in (("seed", 7), ("map", 0.1), ("commit", "other"), ("run", "other")):
        assert report.config_key(dict(run, **{k: v})) == key, k
    assert report.config_key(dict(run, bits=12, alpha=10 / 12)) == key    # α 10/K at every length
    # λ as older results spelled it
    old = {("lambda_" if k == "lambda" else k): v for k, v in run.items()}
    assert report.config_key(old) == key
