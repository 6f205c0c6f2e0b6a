"""make bench's runner: the table, runs/bench.json as a flat name -> number object, and a broken
benchmark reported without losing the others' figures. The search bench (at 20,000 codes) stands in for all."""
import json
import sys
import types

import pytest

from dhn.bench import Figure
from dhn.bench import __main__ as bench_main


def test_search_bench_writes_a_flat_json(tmp_path, capsys, monkeypatch):
    from dhn.bench import bench_search
    monkeypatch.setattr(bench_search, "SIZES", (20_000,))      # the bench's 200,000 and 2,000,000 take minutes
    out = tmp_path / "bench.json"
    bench_main.main(["search", "--out", str(out)])
    figures = json.loads(out.read_text())
    assert all(isinstance(v, (int, float)) for v in figures.values())
    assert 0 < figures["search.20k_64b.lookup_r2_recall_at_100"] <= 1      # the radius-2 balls are not empty
    assert figures["search.20k_64b.ivf_recall_at_100"] >= bench_search.IVF_RECALL
    assert figures["search.20k_64b.scan_1q_ms"] > 0 and "search.20k_64b.scan_1q_ms.ratio" in figures
    table = capsys.readouterr().out
    assert "search.20k_64b.faiss_flat_1000q_s" in table and "compared with" in table


def test_a_failing_bench_keeps_the_others(tmp_path, monkeypatch, capsys):
    good = types.ModuleType("dhn.bench.bench_zgood")
    good.run = lambda: [Figure("zgood.value", 1.5, "s", None, "")]
    bad = types.ModuleType("dhn.bench.bench_zbad")

    def broken():
        raise ValueError("broken on purpose")
    bad.run = broken
    monkeypatch.setitem(sys.modules, "dhn.bench.bench_zgood", good)
    monkeypatch.setitem(sys.modules, "dhn.bench.bench_zbad", bad)
    monkeypatch.setattr(bench_main.pkgutil, "iter_modules",
                        lambda path: [types.SimpleNamespace(name="bench_zbad"), types.SimpleNamespace(name="bench_zgood")])
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as e:
        bench_main.main(["--out", str(out)])
    assert e.value.code == 1
    assert json.loads(out.read_text()) == {"zgood.value": 1.5}
    assert "bench_zbad failed: ValueError: broken on purpose" in capsys.readouterr().err


def test_the_peak_bench_counts_flops_and_multiplies_through_caffes_blas(tmp_path):
    """bench_peak's parts, small: the SGEMM it times is Caffe's BLAS's and checked against numpy;
    the multiply-adds of a net are counted per layer as a hand count gives them."""
    pytest.importorskip("caffe")
    from dhn.bench import bench_peak
    assert "blas" in bench_peak.caffe_blas()
    assert bench_peak.sgemm_gflops(n=256, repeat=1) > 0
    path = tmp_path / "net.prototxt"
    path.write_text("""
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu" type: "ReLU" bottom: "c" top: "c" }
layer { name: "fc" type: "InnerProduct" bottom: "c" top: "y" inner_product_param { num_output: 5 } }
""")
    import caffe
    macs = bench_peak.layer_macs(caffe.Net(str(path), caffe.TEST))
    assert macs == {"conv": 4 * 8 * 8 * 3 * 3 * 3, "fc": 5 * 4 * 8 * 8}
    # a step: forward and weight gradient of both, the bottom gradient of all but the lowest
    assert bench_peak.train_step_gflop(str(path), batch=2) == pytest.approx(2.0 * 2 * (2 * sum(macs.values()) + macs["fc"]) / 1e9)


def test_the_real_data_benches_build_and_run_their_nets(tmp_path):
    """What make bench times on real-data shapes, built and run briefly (its timings are the bench's,
    not the test's): the frozen head on a generated split of stored features (dhn.blobs' layout)
    and AlexNet's forward pass from the built backbone."""
    from dhn import netgen
    from dhn.bench import bench_realdata
    assert bench_realdata.frozen_rate(str(tmp_path), iters=2) > 0
    assert bench_realdata.forward_rate(netgen.built_backbone("alexnet"), None, batch=1) > 0
