"""`caffe train` as a child process: its log appended line by line to the run's train.log, a
progress bar read from it, a diverging loss or an expired time limit stopping it with one line,
and the loss curves drawn from the log (loss.png)."""
import os
import re
import subprocess
import threading

from . import run_folder
from .atomic import write_atomic
from .run_folder import TrainError

ITER_RE = re.compile(r"Iteration (\d+).*loss = (\S+)")
OUTPUT_RE = re.compile(r"Train net output #\d+: (\w+) = (\S+)")


def train_time_limit():
    """Seconds one `caffe train` may run, from DHN_TRAIN_TIMEOUT (unset or 0: no limit): what keeps a
    hung Caffe from holding an unattended job (the test suite sets it) for hours."""
    value = os.environ.get("DHN_TRAIN_TIMEOUT", "").strip()
    try:
        limit = float(value or 0)
    except ValueError:
        raise TrainError("DHN_TRAIN_TIMEOUT=%r: give seconds (0 or unset: no limit)" % value) from None
    return limit if limit > 0 else None


def run_caffe_train(run_dir, solver_path, max_iter, weights=None, snapshot=None, gpu=None, quiet=False):
    """`caffe train` in a subprocess, log appended to train.log, a progress bar from its log;
    stopped (TrainError) when it outlives train_time_limit()."""
    from tqdm import tqdm
    limit = train_time_limit()
    cmd = [os.path.join(os.environ["CAFFE_ROOT"], "bin", "caffe"), "train", "-solver", solver_path]
    if snapshot:
        cmd += ["-snapshot", snapshot]
    elif weights:
        cmd += ["-weights", weights]
    if gpu is not None:
        cmd += ["-gpu", str(gpu)]
    start = run_folder.latest_snapshot(run_dir)[0] if snapshot else 0
    log_path = os.path.join(run_dir, "train.log")
    # progress, divergence and loss.png are read from the INFO log, whatever the caller set
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    bar = tqdm(total=max_iter, initial=start, desc="train", unit="it", disable=quiet, leave=False)
    last_iter, diverged = start, False
    with open(log_path, "a", buffering=1) as log:   # line-buffered: `tail -f train.log` follows the run
        log.write("$ %s\n" % " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        expired = threading.Event()
        timer = threading.Timer(limit or 0, lambda: (expired.set(), proc.kill()))
        timer.daemon = True
        if limit:
            timer.start()
        try:
            for line in proc.stdout:
                log.write(line)
                m = ITER_RE.search(line)
                if m:
                    it = int(m.group(1))
                    bar.update(it - last_iter)
                    last_iter = it
                    if m.group(2) in ("nan", "-nan", "inf"):
                        diverged = True
                        proc.kill()
                    bar.set_postfix(loss=m.group(2))
                if "FloatingPointError" in line:
                    diverged = True
            proc.wait()
        finally:
            timer.cancel()
    bar.close()
    if expired.is_set():
        raise TrainError("caffe train ran past DHN_TRAIN_TIMEOUT=%g s and was stopped near iteration %d, see %s: "
                         "raise or unset the limit; the run resumes from its last snapshot" % (limit, last_iter, log_path))
    if diverged:
        raise TrainError("training diverged (non-finite loss) near iteration %d, see %s: "
                         "rerun with a lower --lr" % (last_iter, log_path))
    if proc.returncode != 0:
        tail = open(log_path).read().splitlines()[-15:]
        raise TrainError("caffe train failed (exit %d); last lines of %s:\n%s"
                         % (proc.returncode, log_path, "\n".join(tail)))


def parse_log(log_path):
    """{output name: [(iteration, value)]} from Caffe's training log, plus 'loss'."""
    curves, it = {}, None
    for line in open(log_path):
        m = ITER_RE.search(line)
        if m:
            it = int(m.group(1))
            curves.setdefault("loss", []).append((it, float(m.group(2))))
            continue
        m = OUTPUT_RE.search(line)
        if m and it is not None:
            curves.setdefault(m.group(1), []).append((it, float(m.group(2))))
    return curves


def plot_loss(log_path, png_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curves = parse_log(log_path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in sorted(curves.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title(os.path.basename(os.path.dirname(os.path.abspath(log_path))))
    fig.tight_layout()
    write_atomic(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
