"""One writer per folder (dhn.runlock): two real processes on one run folder, weights folder or
codes folder; the second exits 2 with one line naming the first one's pid, having written nothing;
a holder killed with -9 blocks no one afterwards."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import datagen
import procs
from dhn import runlock, weights

HOLD = """
import sys, time
from dhn import runlock
with runlock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def wait_for(predicate, what, seconds=300):
    deadline = time.time() + seconds
    while not predicate():
        if time.time() > deadline:
            pytest.fail("gave up after %d s waiting for %s" % (seconds, what))
        time.sleep(0.1)


@pytest.fixture
def holder(tmp_path):
    """A process holding tmp_path/folder's lock (killed with -9 at the end)."""
    folder = tmp_path / "folder"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "held\n"
        yield folder, proc
    finally:
        proc.kill()
        proc.wait(timeout=60)


def refused_by(out, pid):
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "in use by another process (pid %d)" % pid in out.stderr, out.stderr


def test_a_second_train_on_the_same_run_folder_is_refused(tmp_path):
    data, _ = datagen.converted_demo(str(tmp_path / "demo"), 200, seed=3, order_seed=0, n_train=120, n_query=30)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dhn.train", "--dataset", "demo", "--bits", "8", "--iters", "5000",
           "--data", data, "--run", str(run)]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        lock = run / runlock.NAME
        wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), "the first run's lock")
        wait_for(lambda: (run / "config.json").exists(), "the first run's config.json")
        config = (run / "config.json").read_bytes()
        second = procs.run(cmd, timeout=300)
        refused_by(second, first.pid)
        assert second.stderr.startswith("error: %s is in use" % run)
        assert first.poll() is None, "the first run ended: the refusal proves nothing"
        assert (run / "config.json").read_bytes() == config
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)


def test_weights_encode_and_evaluate_refuse_a_held_folder(holder, tmp_path):
    folder, proc = holder
    src = tmp_path / "model.caffemodel"
    src.write_bytes(b"weights")
    runs = [
        ["dhn.weights", "--out", str(folder / "bvlc_alexnet.caffemodel"), "--url", src.as_uri()],
        ["dhn.encode", "--deploy", "d.prototxt", "--weights", "w.caffemodel", "--images", "lmdb", "--crop", "28",
         "--out", str(folder / "query")],
        ["dhn.evaluate", "--query-codes", "q.npy", "--query-labels", "ql.npy", "--db-codes", "d.npy",
         "--db-labels", "dl.npy", "--out", str(folder)],
    ]
    for args in runs[:2]:
        refused_by(procs.run([sys.executable, "-m", *args], timeout=300), proc.pid)
    assert sorted(os.listdir(folder)) == [runlock.NAME]     # nothing written beside the holder's lock
    # dhn.evaluate scores first (its inputs are needed): real codes, then the refusal
    import numpy as np
    for name, arr in (("q", np.ones((2, 4))), ("ql", np.eye(2)), ("d", np.ones((3, 4))), ("dl", np.eye(3)[:, :2])):
        np.save(tmp_path / (name + ".npy"), arr.astype(np.float32 if len(name) == 1 else np.uint8))
    args = [a if not a.endswith(".npy") else str(tmp_path / a) for a in runs[2]]
    refused_by(procs.run([sys.executable, "-m", *args], timeout=300), proc.pid)
    assert sorted(os.listdir(folder)) == [runlock.NAME]


def test_a_holder_killed_with_minus_9_blocks_no_one(holder, tmp_path):
    folder, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert (folder / runlock.NAME).read_text().strip() == str(proc.pid)   # its file is left behind...
    src = tmp_path / "model.caffemodel"
    src.write_bytes(b"weights")
    import hashlib
    out = folder / "bvlc_alexnet.caffemodel"
    weights.fetch(str(out), src.as_uri(), hashlib.sha1(b"weights").hexdigest(), quiet=True)   # ...and ignored
    assert out.read_bytes() == b"weights" and not (folder / runlock.NAME).exists()


def test_a_process_reenters_a_folder_it_holds(tmp_path):
    with runlock.hold(str(tmp_path)):
        with runlock.hold(str(tmp_path / ".")):
            pass
        assert re.fullmatch(r"%d\n" % os.getpid(), (tmp_path / runlock.NAME).read_text())
    assert not (tmp_path / runlock.NAME).exists()
