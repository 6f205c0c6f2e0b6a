"""What a run makes in each of the four training modes, on tiny generated data: for checking that a
change of the code that plans and prepares runs leaves them as they were.

    . tools/env.sh
    python tools/lab/snapshot_modes.py make BASE ROOT OUT     # train the four runs in ROOT, dump to OUT
    python tools/lab/snapshot_modes.py same ROOT              # run them again: each must be found done

``make`` copies BASE (a small foreign backbone saved from random init and 200 generated demo images,
made there on first use, so that two trees compare on the same files) to ROOT, trains the paper's
net, a frozen head, a stored-mode run and a whole-net run from it for 4 iterations each, and writes
OUT/<mode>/ train.prototxt, deploy.prototxt, solver.prototxt, config.json (ROOT spelled "ROOT",
the commit left out) and map. Run it with the old tree, move ROOT aside, run it with the new one
with the same ROOT path, and `diff -r` the two OUTs. ``same`` re-runs the four with this tree in
a ROOT the old tree made (copied back to the same path): a run recognised as the same
configuration says it is done instead of training."""
import contextlib
import io
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
import datagen  # noqa: E402

from dhn import features, train  # noqa: E402

MEAN, SCALE = (128, 128, 128), 1 / 128
MODES = ("paper", "frozen", "stored", "whole")


def _runs(root):
    """(mode, train options) of the four runs in root."""
    deploy, model = os.path.join(root, "smallnet", "deploy.prototxt"), os.path.join(root, "smallnet.caffemodel")
    data = os.path.join(root, "lmdb")
    foreign = dict(backbone=deploy + ":feat", weights=model, mean=MEAN, scale=SCALE)
    return (("paper", dict(data_dir=data)),
            ("frozen", dict(foreign, features=True, data_dir=os.path.join(root, "features"))),
            ("stored", dict(foreign, upper="1", data_dir=data)),
            ("whole", dict(foreign, init_fch=os.path.join(root, "stored"), data_dir=data)))


def _features(root):
    """The frozen mode's features in root (an older tree's folder of features is converted, as the
    next `make features` converts a user's)."""
    features.extract("demo", ("train", "query", "database"), os.path.join(root, "smallnet", "deploy.prototxt") + ":feat",
                     os.path.join(root, "smallnet.caffemodel"), mean=MEAN, scale=SCALE,
                     data_dir=os.path.join(root, "lmdb"), out=os.path.join(root, "features"), progress=False)


def make(base, root, out):
    if not os.path.isdir(base):
        os.makedirs(base)
        datagen.small_backbone(base)
        datagen.converted_demo(base, 200, seed=9, order_seed=1, n_train=120, n_query=40)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(base, root)
    _features(root)
    for mode, kw in _runs(root):
        res = train.train("demo", 16, "dhn", run_dir=os.path.join(root, mode), iters=4, quiet=True, **kw)
        os.makedirs(os.path.join(out, mode))
        for name in ("train.prototxt", "deploy.prototxt", "solver.prototxt"):
            with open(os.path.join(root, mode, name)) as fh, open(os.path.join(out, mode, name), "w") as dump:
                dump.write(fh.read().replace(root, "ROOT"))
        with open(os.path.join(root, mode, "config.json")) as fh:
            config = json.load(fh)
        config.pop("commit")
        with open(os.path.join(out, mode, "config.json"), "w") as dump:
            dump.write(json.dumps(config, indent=1).replace(root, "ROOT"))
        with open(os.path.join(out, mode, "map"), "w") as dump:
            dump.write("%.6f\n" % res["map"])
        print(mode, "%.6f" % res["map"])


def same(root):
    _features(root)
    for mode, kw in _runs(root):
        said = io.StringIO()
        with contextlib.redirect_stderr(said):
            res = train.train("demo", 16, "dhn", run_dir=os.path.join(root, mode), iters=4, **kw)
        done = any("the run is done" in line for line in said.getvalue().splitlines())
        print(mode, "%.6f" % res["map"], "found done" if done else "TRAINED AGAIN")


if __name__ == "__main__":
    {"make": make, "same": same}[sys.argv[1]](*sys.argv[2:])
