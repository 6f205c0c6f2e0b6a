"""`make table-cpu`: the paper's table and ablation on real CIFAR-10, in the frozen-feature mode
or (``--upper CUT``, make: UPPER=) the stored mode (dhn.stored).

    python -m dhn.table --backbone DEPLOY.prototxt:LAYER --weights W.caffemodel [--upper CUT|1]
                        [--bits 12,24,32,48] [--seeds 1,2,3] [--iters 3000] [--database database]

What it runs, each step resumable (every run is a run folder; finished ones are reused):
1. the backbone's features of train, query and the database (dhn.features), once;
2. the mode's measured defaults (netgen.HEAD_DEFAULTS: lr, λ, α = 10/K, balanced pairs, chosen on
   a validation split carved from the training set, docs/lab/2026-12-06-head-defaults.md); with
   --sweep, per code length `make sweep` in the same mode (lr × λ over the paper's grids on that
   validation split, 32 runs a length) instead, whose choice sets lr and λ for that length;
3. DHN, DHN-Q (λ = 0), DHN-E (squared pairwise loss, the same lr and λ) and DHN-B (DHN's net,
   ranked by inner product) at each length, one run per seed, trained on all training images
   and scored on the queries against the database;
4. the untrained features' baselines on the same queries and database (dhn.baselines: sign of a
   seeded random projection, 3 seeds; cosine of the features; the linear probe);
5. `make report`: runs/report.md (mean ± s.d. over seeds) and its MAP-vs-bits plot.
Wall times of each step go to runs/table/table.json. This is an addition to the paper (DHN
fine-tunes the whole net): its rows are labelled "frozen features" wherever they are shown.
With --upper the runs train the backbone's layers above CUT on their stored inputs (its defaults:
netgen.UPPER_DEFAULTS; no --sweep), and DHN-B is DHN's runs ranked by the inner product of their
codes (evaluate.inner_product_run: the same net, so not trained twice); their rows say "fine-tuned
above stored CUT".
"""
import argparse
import json
import os
import sys
import time
from dataclasses import replace

from . import baselines, evaluate, features, kept, netgen, options, paths, report, run_folder, stored, sweep, train
from .atomic import write_atomic
from .run_folder import RunSettings, TrainError


def run_name(dataset, bits, variant, tag, seed):
    """runs/<dataset>-<bits>-<variant>-<tag>-s<seed>; tag: '<features>-frozen' or '<net>-upper-<cut>'."""
    return "%s-%d-%s-%s-s%d" % (dataset, bits, variant, tag, seed)


def table(dataset="cifar10", backbone=None, weights=None, bits=(12, 24, 32, 48), seeds=(1, 2, 3), iters=None,
          database="database", lrs=sweep.PAPER_LRS, lambdas=sweep.PAPER_LAMBDAS, variants=("dhn", "dhn-q", "dhn-e", "dhn-b"),
          cross_validate=False, upper=None, mean=None, scale=None):
    """``mean`` (B,G,R) and ``scale``: the backbone's input transform, as dhn.train and dhn.features take it."""
    for k in bits:                   # every run's settings checked before the features are extracted
        for seed in seeds:
            for variant in variants:
                RunSettings(dataset, k, variant, iters=iters, seed=seed, upper=upper).check()
    root = paths.root()
    if upper and not backbone:       # the stored mode on the paper's AlexNet
        backbone, weights = train.paper_net(dataset, weights, root)
    out = os.path.join(root, "runs", "table")
    os.makedirs(out, exist_ok=True)
    times, choices = {}, {}
    t0 = time.time()
    fdir, _ = features.extract(dataset, ("train", "query", database), backbone, weights, mean=mean, scale=scale)
    fname = os.path.basename(os.path.normpath(fdir))
    times["features_s"] = round(time.time() - t0, 1)
    # every run's settings but its bits, variant, lr, λ and seed (set per run below)
    base = RunSettings(dataset, 0, "dhn", features=not upper, upper=upper, backbone=backbone, weights=weights,
                       mean=mean, scale=scale, iters=iters, quiet=True, reuse_kept=True)
    tag = fname + "-frozen"
    if upper:
        if cross_validate:
            raise ValueError("--sweep is not wired to the stored mode: its defaults come from tools/lab/validate_stored_defaults.py")
        bb = netgen.foreign_backbone(backbone)
        tag = stored.run_tag(bb, stored.default_cut(bb) if upper == "1" else upper)
    for k in bits:
        if not cross_validate:   # what dhn.train itself fills in for this mode (RunSettings.resolved)
            d = replace(base, bits=k).resolved()
            choices[k] = {"lr": d.lr, "lambda": d.lambda_, "map": None,
                          "source": "netgen.UPPER_DEFAULTS" if upper else "netgen.HEAD_DEFAULTS"}
            continue
        t0 = time.time()
        best, _ = sweep.run(replace(base, bits=k), lrs, lambdas)
        choices[k] = dict(best, source="make sweep")
        times["sweep_%d_s" % k] = round(time.time() - t0, 1)
        print("dhn.table: %d bits: lr %g, λ %g (validation MAP %.4f)" % (k, best["lr"], best["lambda"], best["map"]),
              file=sys.stderr)
    t0 = time.time()
    for k in bits:
        lr, lam = choices[k]["lr"], choices[k]["lambda"]
        for variant in variants:
            for seed in seeds:
                run_dir = os.path.join(root, "runs", run_name(dataset, k, variant, tag, seed))
                if upper and variant == "dhn-b":     # DHN's net, its codes ranked by inner product
                    dhn = replace(base, bits=k, variant="dhn", lr=lr, lambda_=lam, seed=seed, database=database,
                                  run_dir=os.path.join(root, "runs", run_name(dataset, k, "dhn", tag, seed)))
                    res = _inner_product_run(dhn, run_dir, database, root)
                else:
                    res = train.run(replace(base, bits=k, variant=variant, lr=lr, lambda_=lam,   # DHN-Q: 0 (resolved)
                                            seed=seed, database=database, run_dir=run_dir))
                if _trained_here(run_dir, database):     # not kept from another machine: keep it
                    kept.keep(run_dir, root)
                print("dhn.table: %s %d bits seed %d: MAP %.4f" % (variant, k, seed, res["map"]), file=sys.stderr)
    times["runs_s"] = round(time.time() - t0, 1)
    t0 = time.time()
    # every length of the paper's table, whatever part of it ran: baselines.json is one file a database
    bl = baselines.run(fdir, sorted(set(bits) | set(netgen.BITS)), (0, 1, 2), "query", database)
    bdir = os.path.join(root, "runs", "baselines-%s-%s" % (fname, database))
    os.makedirs(bdir, exist_ok=True)
    write_atomic(os.path.join(bdir, "baselines.json"), json.dumps(bl, indent=1))
    kept.keep(bdir, root)
    times["baselines_s"] = round(time.time() - t0, 1)
    report.main([])
    write_atomic(os.path.join(out, "table-upper.json" if upper else "table.json"), json.dumps(
        {"dataset": dataset, "backbone": backbone, "features": fname, "bits": list(bits), "seeds": list(seeds),
         "iters": iters, "database": database, "upper": upper, "choices": {str(k): v for k, v in choices.items()},
         "seconds": times, "total_s": round(sum(times.values()), 1)}, indent=1))
    return choices, times


def _inner_product_run(dhn, run_dir, database, root):
    """DHN-B of a stored-mode DHN run (evaluate.inner_product_run): from its codes where the DHN run
    was trained here; its kept results where both were kept on another machine; else DHN is
    trained here first."""
    train.run(dhn)
    results = run_folder.results_name("query", database)
    if not _trained_here(dhn.run_dir, database):     # DHN kept, not trained here: DHN-B kept with it?
        doc = kept.find(os.path.basename(run_dir), dict(kept.identity(os.path.basename(dhn.run_dir), root),
                                                        variant="dhn-b"), results, root)
        if doc:
            return doc
        train.run(replace(dhn, reuse_kept=False))
    return evaluate.inner_product_run(dhn.run_dir, run_dir, "query", database)


def _trained_here(run_dir, database):
    """The run folder holds its results (a run counted as done from results/ leaves none here)."""
    return os.path.isfile(os.path.join(run_dir, run_folder.results_name("query", database)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add(ap, ("dataset", "backbone", "weights", "mean", "scale", "iters", "database", "upper"),
                defaults=dict(dataset="cifar10"))
    ap.add_argument("--bits", default="12,24,32,48", help="the code lengths, comma-separated")
    ap.add_argument("--seeds", default="1,2,3", help="the seeds of each cell, comma-separated")
    ap.add_argument("--variants", default="dhn,dhn-q,dhn-e,dhn-b")
    ap.add_argument("--sweep", action="store_true",
                    help="cross-validate lr and λ per code length (make sweep) instead of the mode's measured defaults")
    args = ap.parse_args(argv)
    try:
        choices, times = table(args.dataset, args.backbone, args.weights, tuple(int(b) for b in args.bits.split(",")),
                               tuple(int(s) for s in args.seeds.split(",")), args.iters, args.database,
                               variants=tuple(args.variants.split(",")), cross_validate=args.sweep, upper=args.upper,
                               mean=args.mean, scale=args.scale)
    except (TrainError, features.FeatureError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("dhn.table: done in %.0f s (%s)" % (sum(times.values()), ", ".join("%s %s" % kv for kv in times.items())),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
