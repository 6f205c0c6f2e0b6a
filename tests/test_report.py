"""dhn.evaluate (results.json + plots, the CLI) and dhn.report (the paper-style tables)."""
import json
import os

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
    with pytest.raises(SystemExit, match=r"R=301 must be an integer in 1\.\.300"):
        evaluate.main(args + ["--R", "301"])


def write_run(runs, name, **doc):
    os.makedirs(runs / name)
    (runs / name / "results.json").write_text(json.dumps(doc))


def test_report_table(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_run(runs, "cifar10-12-dhn", dataset="cifar10", bits=12, variant="dhn", map=0.5, R=54000, n_database=54000)
    write_run(runs, "cifar10-48-dhn-b", dataset="cifar10", bits=48, variant="dhn-b", map=0.6, R=54000, n_database=54000)
    # two runs of one cell are averaged, never maxed
    write_run(runs, "nus-a", dataset="nuswide21", bits=24, variant="dhn", map=0.70, R=5000, n_database=149736)
    write_run(runs, "nus-b", dataset="nuswide21", bits=24, variant="dhn", map=0.72, R=5000, n_database=149736)
    write_run(runs, "broken", dataset="cifar10")          # skipped, with a note on stderr
    os.makedirs(runs / "sweep-cifar10-48" / "lr1e-05-lambda1")   # grid runs are not read
    (runs / "sweep-cifar10-48" / "lr1e-05-lambda1" / "results.json").write_text(
        json.dumps(dict(dataset="cifar10", bits=48, variant="dhn", map=0.99)))
    report.main(["--runs", str(runs)])
    text = (runs / "report.md").read_text()
    assert text in capsys.readouterr().out     # printed as well as written
    lines = text.splitlines()
    cifar = lines.index("## CIFAR-10 (MAP over the whole database)")
    assert lines[cifar + 2] == "| variant | 12 bits | 24 bits | 32 bits | 48 bits |"
    assert lines[cifar + 4] == "| DHN | 0.500 / 0.555 | — / 0.594 | — / 0.603 | — / 0.621 |"
    assert lines[cifar + 5] == "| DHN-B | — / — | — / — | — / — | 0.600 / — |"
    nus = lines.index("## NUS-WIDE (21 concepts) (MAP@5000)")
    assert lines[nus + 4] == "| DHN | — / 0.708 | 0.710 ±0.014, 2 runs / 0.735 | — / 0.748 | — / 0.758 |"
    assert "0.99" not in text and "broken" not in text


def test_report_without_runs(tmp_path):
    report.main(["--runs", str(tmp_path / "none"), "--out", str(tmp_path / "r.md")])
    assert "No runs yet" in (tmp_path / "r.md").read_text()
