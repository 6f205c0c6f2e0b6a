"""The held-out validation of the stored mode's defaults (netgen.UPPER_DEFAULTS; docs/lab/2026-12-07-stored-mode-and-whole-net.md).

    . tools/env.sh && python tools/lab/validate_stored_defaults.py NAME BITS [lr=…] [lambda_=…] [backbone_lr_mult=…]
                                                  [iters=…] [seed=…] [upper=fire9/concat] [stored=FOLDER]

Needs SqueezeNet's outputs at the cut of the training split (dhn.stored; fire9/concat's are
stored by any `make train ... UPPER=1` run; another cut's or another number of views' by
`python -m dhn.stored --cut CUT --views V --splits train [--out FOLDER]`, given as stored=FOLDER). The validation splits are carved from them exactly as
tools/lab/validate_head_defaults.py carves the frozen head's (the same records: sweep/train 4,000 trained on,
sweep/valq 500 queries, sweep/vald 500 database, all held out from training), so the two modes'
held-out MAPs compare. Trains OUT/NAME (OUT = runs/lab/validate_stored_defaults; omitted options:
the mode's defaults), scores valq against vald and appends the line to OUT/results.tsv.

    . tools/env.sh && python tools/lab/validate_stored_defaults.py recal NAME [stored=FOLDER]

scores the trained OUT/NAME again with its head BatchNorm's statistics recomputed over the fit
part's stored outputs (dhn.recalibrate; the first view of each record, the centre crop) and
appends that line too."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import validate_head_defaults as head  # noqa: E402

from dhn import blobs, evaluate, recalibrate, run_folder, split_folder, stored, train  # noqa: E402

STORED = os.path.join("data", "cifar10", "stored", "squeezenet_v1.0_dc-fire9_concat")
OUT = os.path.join("runs", "lab", "validate_stored_defaults")


def recal(name, folder=STORED):
    sweep, run = head.carve(folder), os.path.join(OUT, name)
    snapshot = run_folder.final_model(run)
    out = run_folder.recalibrated_model(snapshot)
    t0 = time.time()
    _, change = recalibrate.recalibrate(os.path.join(run, "deploy.prototxt"), snapshot, os.path.join(sweep, "train"),
                                        None, None, out, progress=False)
    z = {split: blobs.encode_blobs(os.path.join(run, "deploy.prototxt"), out, os.path.join(sweep, split), progress=False)
         for split in ("valq", "vald")}
    labels = {split: split_folder.read_split_labels(os.path.join(sweep, split)) for split in z}
    bits = z["valq"].shape[1]
    score = evaluate.evaluate_codes(z["valq"], labels["valq"], z["vald"], labels["vald"], R=None)["map"]
    line = "valq-vs-vald\t%s+recal\t%d\t%s\t%.4f\t%.0fs" % (name, bits, json.dumps(change), score, time.time() - t0)
    print(line)
    with open(os.path.join(OUT, "results.tsv"), "a") as fh:
        fh.write(line + "\n")


def main(argv):
    if argv[0] == "recal":
        return recal(argv[1], *[a.split("=", 1)[1] for a in argv[2:]])
    name, bits = argv[0], int(argv[1])
    kw = dict(iters=3000, seed=1234, upper="fire9/concat")
    for a in argv[2:]:
        k, v = a.split("=")
        kw[k] = v if k in ("upper", "stored") else (int(v) if k in ("iters", "seed", "views") else float(v))
    sweep = head.carve(kw.pop("stored", STORED))
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
