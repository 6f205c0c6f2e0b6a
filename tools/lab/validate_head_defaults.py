"""The held-out validation behind the frozen head's defaults (netgen.HEAD_DEFAULTS; the runs and
what they showed: docs/lab/2026-12-06-head-defaults.md).

    . tools/env.sh && python tools/lab/validate_head_defaults.py NAME BITS [lr=…] [lambda_=…] [alpha=…]
                                                  [similar_weight=balanced|…] [iters=…] [seed=…]

Needs the SqueezeNet features of `make features` (SqueezeNet from `make weights MODEL=squeezenet`,
or DHN_SQUEEZENET=<folder>). Splits, each copied record
for record from the features' training split (convert.subset_split): sweep/train (4,000, trained
on) and sweep/val (1,000) as the old `make sweep` carved them (sweep.carve_validation with
val_fraction 0.2, seed 0, before val_database existed); sweep/valq and sweep/vald: the 1,000 val
records split 500/500 by RandomState(5).permutation. Trains OUT/NAME (OUT = runs/lab/validate_head_defaults;
omitted options: the mode's defaults; alpha=-10 means 10/BITS), scores it fit (val vs train) and held
out (valq vs vald), and appends both to OUT/results.tsv."""
import json
import os
import sys
import time

import numpy as np

from dhn import convert, split_folder, train

SQ = os.environ.get("DHN_SQUEEZENET") or os.path.join(os.environ.get("DHN_ROOT", "."), "weights", "squeezenet_v1.0_dc")
OUT = os.path.join("runs", "lab", "validate_head_defaults")
FEATURES = os.path.join("data", "cifar10", "features", "squeezenet_v1.0_dc-pool_final")


def carve(features=FEATURES):
    train_dir, sweep = os.path.join(features, "train"), os.path.join(features, "sweep")
    n = split_folder.check_split(train_dir)["count"]
    order = np.random.RandomState(0).permutation(n)
    n_val = int(round(0.2 * n))
    convert.subset_split(train_dir, os.path.join(sweep, "train"), np.sort(order[n_val:]), "train", seed=0, shuffle=True)
    convert.subset_split(train_dir, os.path.join(sweep, "val"), np.sort(order[:n_val]), "val", seed=0)
    half = np.random.RandomState(5).permutation(n_val)
    convert.subset_split(os.path.join(sweep, "val"), os.path.join(sweep, "valq"), half[:n_val // 2], "valq")
    convert.subset_split(os.path.join(sweep, "val"), os.path.join(sweep, "vald"), half[n_val // 2:], "vald")
    return sweep


def main(argv):
    name, bits = argv[0], int(argv[1])
    kw = dict(iters=3000, seed=1234)
    for a in argv[2:]:
        k, v = a.split("=")
        kw[k] = v if v == "balanced" else (int(v) if k in ("iters", "seed") else float(v))
    if kw.get("alpha", 1) < 0:
        kw["alpha"] = -kw["alpha"] / bits
    sweep = carve()
    scores = {}
    for q, d in (("val", "train"), ("valq", "vald")):
        t0 = time.time()
        res = train.train("cifar10", bits, "dhn", features=True, backbone=SQ + "/deploy.prototxt:pool_final",
                          weights=SQ + "/squeezenet_v1.0_dc.caffemodel", data_dir=sweep, query=q, database=d,
                          run_dir=os.path.join(OUT, name), quiet=True, **kw)
        scores["%s-vs-%s" % (q, d)] = round(res["map"], 4)
        line = "%s-vs-%s\t%s\t%d\t%s\t%.4f\t%.0fs" % (q, d, name, bits, json.dumps(kw), res["map"], time.time() - t0)
        print(line)
        with open(os.path.join(OUT, "results.tsv"), "a") as fh:
            fh.write(line + "\n")
    return scores


if __name__ == "__main__":
    main(sys.argv[1:])
