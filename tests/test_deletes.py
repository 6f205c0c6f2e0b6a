"""Deletes reach no further than their own: `make clean-caffe` removes the Caffe builds
build_caffe.sh made and nothing else of the cache; `dhn.demo --force --run PATH` deletes only a
folder that is a demo run (the fault injected: a cache holding other things, a --run naming a
folder of someone's files)."""
import json
import os
import subprocess
import sys

from dhn import demo

ROOT = os.environ["DHN_ROOT"]


def test_clean_caffe_removes_only_the_caffe_builds(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, DHN_CACHE=str(cache), PYTHON=sys.executable)
    # the name build_caffe.sh gives this system's build, and other variants of it
    prefix = subprocess.run(["bash", os.path.join(ROOT, "tools", "build", "build_caffe.sh"), "--prefix"], env=env,
                            capture_output=True, text=True, timeout=120).stdout.strip()
    mine = os.path.basename(prefix)
    assert mine.startswith("caffe-") and os.path.dirname(prefix) == str(cache)
    builds = [mine, "work-" + mine, "caffe-1.0.0_git20180821.99bd997_8-debian13-py3.13-cuda90-min-r1-0123456789ab",
              "work-caffe-1.0.0_git20180821.99bd997_8-debian13-py3.13-cuda90-min-r1-0123456789ab"]
    others = ["systems/trixie/etc", "cuda-wheels/nvidia", "caffe-notes", "my-caffe-1.0-py3.11-r1-0123456789ab"]
    for name in builds + others:
        (cache / name).mkdir(parents=True)
        (cache / name / "file").write_text("x")
    (cache / "hamming_ap-321943a1d750.so").write_text("x")
    out = subprocess.run(["make", "-s", "clean-caffe"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    left = sorted(os.listdir(cache))
    assert left == sorted(["systems", "cuda-wheels", "caffe-notes", "my-caffe-1.0-py3.11-r1-0123456789ab",
                           "hamming_ap-321943a1d750.so"]), left
    assert (cache / "systems" / "trixie" / "etc" / "file").read_text() == "x"


def test_demo_force_deletes_only_a_demo_run(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("hours of work")
    assert demo.main(["--force", "--run", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a demo run" in err and str(folder) in err
    assert os.listdir(folder) == ["thesis.tex"]
    # what a demo run is: its config.json or results.json says dataset demo
    (folder / "config.json").write_text(json.dumps({"identity": {"dataset": "cifar10"}}))
    assert not demo.is_demo_run(str(folder))
    (folder / "config.json").write_text(json.dumps({"identity": {"dataset": "demo"}}))
    assert demo.is_demo_run(str(folder))
    (folder / "config.json").unlink()
    (folder / "results.json").write_text(json.dumps({"dataset": "demo", "map": 0.9}))
    assert demo.is_demo_run(str(folder))
