"""The held-out validation of the stored mode's defaults (netgen.UPPER_DEFAULTS; docs/lab/2026-12-07-stored-mode-and-whole-net.md).

    . tools/env.sh && python tools/lab/validate_stored_defaults.py NAME BITS [lr=…] [lambda_=…] [backbone_lr_mult=…]
                                                  [iters=…] [seed=…] [upper=fire9/concat]

Needs SqueezeNet's fire9/concat outputs of the training split (dhn.stored, stored by any
`make train ... UPPER=1` run). The validation splits are carved from them exactly as
tools/lab/validate_head_defaults.py carves the frozen head's (the same records: sweep/train 4,000 trained on,
sweep/valq 500 queries, sweep/vald 500 database, all held out from training), so the two modes'
held-out MAPs compare. Trains OUT/NAME (OUT = runs/lab/validate_stored_defaults; omitted options:
the mode's defaults), scores valq against vald and appends the line to OUT/results.tsv."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import validate_head_defaults as head  # noqa: E402

from dhn import train  # noqa: E402

STORED = os.path.join("data", "cifar10", "stored", "squeezenet_v1.0_dc-fire9_concat")
OUT = os.path.join("runs", "lab", "validate_stored_defaults")


def main(argv):
    name, bits = argv[0], int(argv[1])
    kw = dict(iters=3000, seed=1234, upper="fire9/concat")
    for a in argv[2:]:
        k, v = a.split("=")
        kw[k] = v if k == "upper" else (int(v) if k in ("iters", "seed", "views") else float(v))
    sweep = head.carve(STORED)
    t0 = time.time()
    res = train.train("cifar10", bits, "dhn", backbone=head.SQ + "/deploy.prototxt:pool_final",
                      weights=head.SQ + "/squeezenet_v1.0_dc.caffemodel", data_dir=sweep, query="valq",
                      database="vald", run_dir=os.path.join(OUT, name), quiet=True, **kw)
    line = "valq-vs-vald\t%s\t%d\t%s\t%.4f\t%.0fs" % (name, bits, json.dumps(kw), res["map"], time.time() - t0)
    print(line)
    with open(os.path.join(OUT, "results.tsv"), "a") as fh:
        fh.write(line + "\n")
    return res["map"]


if __name__ == "__main__":
    main(sys.argv[1:])
