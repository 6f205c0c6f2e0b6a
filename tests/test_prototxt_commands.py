"""The `caffe` commands of docs/USAGE.md ("Calling caffe"), run as written from a clean checkout: the committed canonical
prototxts train (`caffe train -solver ...`, snapshotting into a folder that exists) and time
(`caffe time -model ...`) with nothing but the data step done."""
import os
import re
import shutil
import signal
import subprocess
import threading

import numpy as np
import pytest

from dhn import convert

ROOT = os.environ["DHN_ROOT"]


def usage_command(prefix):
    """The command line of docs/USAGE.md that starts with prefix (in a code block)."""
    for line in open(os.path.join(ROOT, "docs", "USAGE.md")):
        line = line.strip()
        if line.startswith(prefix):
            return line.split("#")[0].split()
    raise AssertionError("docs/USAGE.md has no line starting with %r" % prefix)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """The tracked and not-ignored files only (what a fresh clone of a commit of them has), plus a tiny CIFAR-10-shaped train split
    where the data step puts it."""
    dest = str(tmp_path_factory.mktemp("clone") / "dhn")
    tracked = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, text=True, timeout=120)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout: cannot tell the tracked files (%s)" % tracked.stderr.strip())
    for rel in filter(None, tracked.stdout.split("\0")):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))
    n = 70
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (n, 256, 256, 3)).astype(np.uint8)
    labels = np.eye(10, dtype=np.uint8)[np.arange(n) % 10]
    convert.build_splits(os.path.join(dest, "data", "cifar10", "lmdb"), "cifar10", {"train": np.arange(n)}, labels,
                         lambda i: (images[i], None), size=256, progress=False)
    return dest


def test_documented_caffe_train_runs_from_a_clean_checkout(checkout):
    cmd = usage_command("tools/caffe train -solver")
    cmd = [c for c in cmd if c != "-weights" and not c.endswith(".caffemodel")]   # AlexNet's cannot be fetched here
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    proc = subprocess.Popen(cmd, cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    timer = threading.Timer(600, proc.kill)    # a caffe that hangs silent ends the loop below too
    timer.start()
    log = []
    try:
        for line in proc.stdout:
            log.append(line)
            if re.search(r"Iteration 0 .*loss = ", line):
                proc.send_signal(signal.SIGINT)     # caffe's default -sigint_effect: snapshot, then stop
    finally:
        timer.cancel()
    assert proc.wait() == 0, ("killed after 600 s: " if proc.returncode == -signal.SIGKILL else "") + "".join(log[-30:])
    text = "".join(log)
    assert re.search(r"Train net output #\d+: pair_loss = [\d.]+", text)
    assert "Optimization stopped early" in text
    print("".join(l for l in log if re.search(r"Iteration 0 |pair_loss|quant_loss|Snapshotting to|stopped early", l)))
    snaps = [f for f in os.listdir(os.path.join(checkout, "prototxt", "cifar10")) if f.endswith(".caffemodel")]
    assert snaps and all(f.startswith("dhn_48_iter_") for f in snaps), snaps


def test_documented_caffe_time_runs_from_a_clean_checkout(checkout):
    cmd = usage_command("tools/caffe time -model") + ["-iterations", "1"]
    out = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True,
                         env=dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0"), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"Average Forward pass: [\d.]+ ms", out.stderr)
    print("\n".join(l for l in out.stderr.splitlines() if "Average" in l or "Total Time" in l))
