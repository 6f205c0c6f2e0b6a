"""`make sweep`: cross-validate lr and λ as the paper does, on a validation split carved out of
the training set (never the queries).

python -m dhn.sweep --dataset cifar10 --bits 48 [--lrs 1e-5,1e-4,...] [--lambdas ...] [--iters N]

The training split's records are divided, with a fixed seed, into ``fit`` (trained on), ``val``
(the queries of the validation retrieval) and ``val_database`` (its database), the last two half of
val_fraction each; all three are copied record for record (convert.subset_split) into
<data>/sweep/. The validation database is held out from training: scored against the images the
head trained on, validation MAP rewards memorising them and picks settings that lose on unseen
images (docs/lab/2026-12-06-head-defaults.md). Each grid point is
a run folder runs/sweep-<dataset>-<bits>/lr<lr>-lambda<λ>/ (resumable like any run); the grid
goes to grid.csv / grid.json and a heat map grid.png, and the choice (highest validation MAP,
ties to the smaller lr, then smaller λ) is printed and stored in grid.json. Whole-net fine-tuning
of a --backbone starts every grid point from one head fitted on the fit part (train.fit_head,
kept in <out>/head/), or from --init-fch as dhn.train takes it ('none': a random fch).
"""
import argparse
import csv
import json
import os
import sys
from dataclasses import replace

import numpy as np

from . import convert, netgen, options, paths, split_folder, train
from .atomic import write_atomic
from .datasets import DatasetError
from .features import backbone_of, features_dir
from .run_folder import RunSettings, TrainError

PAPER_LRS = (1e-5, 1e-4, 1e-3, 1e-2)
PAPER_LAMBDAS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def carve_validation(train_dir, out_dir, val_fraction=0.2, seed=0, progress=True):
    """Write ``out_dir/train`` (the fit part, shuffled), ``out_dir/val`` (validation queries) and
    ``out_dir/val_database`` from the records of a converted training split; returns {split: folder}."""
    manifest = split_folder.check_split(train_dir)
    n = manifest["count"]
    n_val = max(2, int(round(val_fraction * n)))
    order = np.random.RandomState(seed).permutation(n)
    split = {"train": np.sort(order[n_val:]), "val": np.sort(order[:n_val // 2]),
             "val_database": np.sort(order[n_val // 2:n_val])}
    # copied record for record (images, or the stored outputs of a frozen run's features): nothing is re-encoded
    return {name: convert.subset_split(train_dir, os.path.join(out_dir, name), idx, name, seed=seed,
                                       shuffle=(name == "train"))
            for name, idx in split.items()}


def choose(rows):
    """Highest MAP; ties to the smaller lr, then the smaller λ."""
    return max(rows, key=lambda r: (r["map"], -r["lr"], -r["lambda"]))


def plot_grid(rows, lrs, lambdas, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    grid = np.full((len(lrs), len(lambdas)), np.nan)
    for r in rows:
        grid[lrs.index(r["lr"]), lambdas.index(r["lambda"])] = r["map"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(lambdas), 1.2 + 0.6 * len(lrs)))
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(lambdas)), ["%g" % v for v in lambdas])
    ax.set_yticks(range(len(lrs)), ["%g" % v for v in lrs])
    ax.set_xlabel("λ")
    ax.set_ylabel("lr")
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(j, i, "%.3f" % v, ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im, label="validation MAP")
    fig.tight_layout()
    write_atomic(png, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def sweep(dataset, bits, lrs=PAPER_LRS, lambdas=PAPER_LAMBDAS, val_fraction=0.2, out=None, **options):
    """run() of RunSettings(dataset, bits, "dhn", **options): the keyword form of a sweep."""
    return run(RunSettings(dataset, bits, "dhn", **options), lrs, lambdas, val_fraction, out)


def run(settings, lrs=PAPER_LRS, lambdas=PAPER_LAMBDAS, val_fraction=0.2, out=None):
    """The grid on the validation split, each point a dhn.train run of these settings with its lr
    and λ; features/backbone as dhn.train takes them (the frozen-feature mode sweeps on the
    backbone's features, carved the same way)."""
    s = settings.check()
    for lr in lrs:              # the grid's points too, before the validation split is carved
        for lam in lambdas:
            replace(s, lr=lr, lambda_=lam).check()
    dataset, bits, weights, data_dir = s.dataset, s.bits, s.weights, s.data_dir
    root = paths.root()
    images = None
    if s.mode == netgen.FEATURES:
        images, weights, fname = backbone_of(dataset, s.backbone, s.mean, s.scale, weights)
        data_dir = data_dir or features_dir(dataset, fname)
    elif s.mode == netgen.FOREIGN:
        images = netgen.foreign_backbone(s.backbone)
    tag = train.run_tag(s.mode, images)
    data_dir = data_dir or os.path.join(root, "data", dataset, "lmdb")
    out = out or os.path.join(root, "runs", "sweep-%s-%d%s" % (dataset, bits, tag))
    sweep_data = os.path.join(data_dir, "sweep")
    carve_validation(os.path.join(data_dir, "train"), sweep_data, val_fraction, progress=not s.quiet)
    if s.init_fch is None and train.whole_foreign_net(s):
        # every grid point starts from one fitted head, fitted on the fit part in the sweep's own
        # folder: the stored run under runs/ has trained on the validation images
        s = replace(s, init_fch=train.fit_head(replace(s, weights=weights, data_dir=sweep_data, query="val",
                                                       database="val_database"), run_dir=os.path.join(out, "head")))
    alpha, similar_weight = s.alpha, s.similar_weight
    rows = []
    for lr in lrs:
        for lam in lambdas:
            run_dir = os.path.join(out, "lr%g-lambda%g" % (lr, lam))
            try:
                res = train.run(replace(s, lr=lr, lambda_=lam, weights=weights, data_dir=sweep_data, run_dir=run_dir,
                                        query="val", database="val_database", alpha=alpha, similar_weight=similar_weight))
                value = res["map"]
                alpha, similar_weight = res.get("alpha", alpha), res.get("similar_weight", similar_weight)
            except TrainError as e:
                if "diverged" not in str(e):
                    raise
                value = float("nan")      # a diverged point is a result of the sweep, not a crash
            rows.append({"lr": lr, "lambda": lam, "map": value})
            print("lr %-8g lambda %-8g validation MAP %.4f" % (lr, lam, value), file=sys.stderr)
    finite = [r for r in rows if np.isfinite(r["map"])]
    if not finite:
        raise TrainError("every grid point diverged; try smaller learning rates (--lrs)")
    best = choose(finite)
    os.makedirs(out, exist_ok=True)

    def write_csv(tmp):
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["lr", "lambda", "map"])
            w.writeheader()
            w.writerows(rows)
    write_atomic(os.path.join(out, "grid.csv"), write_csv)
    write_atomic(os.path.join(out, "grid.json"), json.dumps(
        {"dataset": dataset, "bits": bits, "iters": s.iters, "val_fraction": val_fraction, "alpha": alpha,
         "similar_weight": similar_weight,
         "feature_norm": s.feature_norm, "init_fch": s.init_fch,
         "mode": "frozen features" if s.features else "fine-tuned", "backbone": s.backbone or netgen.DATASETS[dataset]["backbone"],
         "grid": rows, "choice": best}, indent=1))
    plot_grid(rows, list(lrs), list(lambdas), os.path.join(out, "grid.png"))
    return best, rows


def floats(text):
    return tuple(float(v) for v in text.split(","))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add(ap, ("dataset", "bits"), defaults=dict(dataset="cifar10", bits=48))
    ap.add_argument("--lrs", type=floats, default=PAPER_LRS)
    ap.add_argument("--lambdas", type=floats, default=PAPER_LAMBDAS)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    options.add(ap, ("iters", "data_dir", "weights", "gpu", "backbone", "mean", "scale", "features", "alpha",
                     "similar_weight", "feature_norm", "seed", "backbone_lr_mult", "init_fch", "upper", "views",
                     "lr", "lambda_"),
                helps=dict(init_fch="as dhn.train: every grid point fine-tunes from this run's trained layers "
                                    "('none': a random fch); default for --backbone: a head fitted on the fit part, in "
                                    "OUT/head (a head trained on the whole training split has seen the validation images)",
                           upper="refused: the stored mode's validation is tools/lab/validate_stored_defaults.py",
                           views="refused with --upper",
                           lr="a one-point grid of lr (make sweep LR=)", lambda_="a one-point grid of λ (make sweep LAMBDA=)"))
    args = ap.parse_args(argv)
    lrs = (args.lr,) if args.lr else args.lrs
    lambdas = (args.lambda_,) if args.lambda_ is not None else args.lambdas
    if args.upper or args.views:
        print("error: make sweep does not cover the stored mode (UPPER=): its defaults were validated with "
              "tools/lab/validate_stored_defaults.py (docs/lab/2026-12-07-stored-mode-and-whole-net.md)", file=sys.stderr)
        return 2
    try:
        settings = options.settings(args, variant="dhn", lr=None, lambda_=None)
        best, _ = run(settings, lrs, lambdas, args.val_fraction)
    except (TrainError, DatasetError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("choice: lr %g, lambda %g (validation MAP %.4f)" % (best["lr"], best["lambda"], best["map"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
