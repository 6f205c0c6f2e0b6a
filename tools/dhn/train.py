"""Train one DHN model with Caffe's own solver, then encode and evaluate it.

python -m dhn.train --dataset cifar10 --bits 48 --variant dhn [--lr 2e-5] [--lambda 10]
                    [--iters 3000] [--gpu 0] [--weights weights/bvlc_alexnet.caffemodel]
                    [--backbone DEPLOY.prototxt:LAYER --weights ITS.caffemodel [--mean B,G,R] [--scale S]]

Everything of a run lives in runs/<dataset>-<bits>-<variant>/: the generated train net,
solver and deploy net, config.json, train.log, loss.png, snapshots/, codes/, results.json
and the plots. Re-running resumes from the latest snapshot (Caffe's ``-snapshot``), and a
run whose results.json exists is done (delete it, or pass --force, to redo the evaluation).

Resume restores what Caffe's .solverstate holds: weights, momentum history and the iteration
(so the lr schedule). It does not hold Caffe's RNG state or the Data layer's read position,
which restart; a resumed run is therefore not bit-identical to an uninterrupted one unless
the training set is a whole number of batches per snapshot interval and the net has no
randomness (tests/test_train_caffe.py checks exactly that case).
"""
import argparse
import json
import os
import sys
from dataclasses import replace
from typing import NamedTuple

from . import evaluate, kept, netgen, options, paths, recalibrate, run_folder, split_folder, stored
from .atomic import write_atomic
from .caffe_process import plot_loss, run_caffe_train
from .datasets import DatasetError, file_digest
from .features import FeatureError, backbone_of, features_dir
from .run_folder import RunSettings, TrainError

class Schedule(NamedTuple):
    max_iter: int
    stepsize: int
    snapshot: int
    note: str          # what ITERS=N made of the default schedule (None: the default)


def schedule(dataset, iters):
    """The solver's Schedule (max_iter, stepsize, snapshot, note). The authors' schedule is step γ 0.5
    every 500 of 3,000 iterations; ITERS=N keeps its shape (six halvings), stepsize N/6, and
    says so (note). Snapshots at least four times a run, so an interrupted short run resumes."""
    base = dict(netgen.SOLVER_DEFAULTS, **(netgen.DEMO_SOLVER if dataset == "demo" else {}))
    if not iters:
        return Schedule(base["max_iter"], base["stepsize"], base["snapshot"], None)
    ratio = base["stepsize"] / base["max_iter"]
    stepsize = max(1, int(round(iters * ratio)))
    snapshot = max(1, min(base["snapshot"], iters // 4))
    note = ("lr schedule: γ %g every %d iterations (ITERS=%d keeps the default's shape, %d of %d)"
            % (base["gamma"], stepsize, iters, base["stepsize"], base["max_iter"]))
    return Schedule(iters, stepsize, snapshot, note)


def prepare_run(run_dir, settings, sched, bb, data_dir, start_iter=0):
    """Write the run's own net, solver and deploy net (generated, with this run's values): settings
    resolved (RunSettings.resolved()), sched its Schedule."""
    s = settings
    os.makedirs(os.path.join(run_dir, "snapshots"), exist_ok=True)
    net_variant = "dhn" if s.variant == "dhn-b" else s.variant
    train_net = netgen.train_net(s.dataset, s.bits, net_variant, lambda_=s.lambda_,
                                 data_dir=os.path.join(data_dir, "train"), batch=s.batch, backbone=bb,
                                 shuffle=s.shuffle, seed=s.seed, alpha=s.alpha,
                                 backbone_lr_mult=s.backbone_lr_mult, feature_norm=s.feature_norm,
                                 start_iter=start_iter, similar_weight=s.similar_weight,
                                 norm_stats=norm_stats(s))
    write_atomic(os.path.join(run_dir, "train.prototxt"), str(train_net))
    write_atomic(os.path.join(run_dir, "deploy.prototxt"), str(netgen.deploy_net(s.dataset, s.bits, backbone=bb,
                                                                                  feature_norm=s.feature_norm)))
    extra = dict(max_iter=sched.max_iter, stepsize=sched.stepsize, snapshot=sched.snapshot,
                 random_seed=s.seed, gamma=netgen.SOLVER_DEFAULTS["gamma"])
    if s.dataset == "demo":
        extra["display"] = netgen.DEMO_SOLVER["display"]
    sol = netgen.solver(os.path.abspath(os.path.join(run_dir, "train.prototxt")),
                        os.path.abspath(os.path.join(run_dir, "snapshots", "dhn")), lr=s.lr, **extra)
    if s.gpu is not None:
        sol.solver_mode = sol.GPU
    write_atomic(os.path.join(run_dir, "solver.prototxt"), str(sol))
    return sol


def norm_stats(s):
    """"global" where a whole-net fine-tuning starts from a fitted head (its BatchNorm's averages
    kept, netgen.train_net), "batch" for any other BatchNorm, None without one."""
    if not s.feature_norm:
        return None
    return "global" if s.init_fch else "batch"


BN_RECALIBRATION = "train split, centre crop"   # what dhn.recalibrate recomputes the statistics over


def recalibrated(run_dir, snapshot, data_dir, s):
    """The run's final net: ``snapshot`` with its head BatchNorm's statistics recomputed over the
    training images (dhn.recalibrate), made once (kept beside the snapshot)."""
    out = run_folder.recalibrated_model(snapshot)
    if os.path.exists(out):
        return out
    crop, mean, scale = run_folder.data_transform(os.path.join(run_dir, "train.prototxt"))
    try:
        _, change = recalibrate.recalibrate(os.path.join(run_dir, "deploy.prototxt"), snapshot,
                                            os.path.join(data_dir, "train"), crop, mean, out,
                                            scale=scale, gpu=s.gpu, progress=not s.quiet)
    except (ValueError, DatasetError) as e:
        raise TrainError(str(e)) from None
    if not s.quiet:
        print("dhn.train: BatchNorm statistics recomputed over the training images (means moved %.2f s.d., "
              "variance ×%.2f, medians)" % (change["shift"], change["var_ratio"]), file=sys.stderr)
    return out


def foreign_backbone(dataset, spec, mean, scale, weights):
    """netgen.foreign_backbone with the run's checks: its caffemodel exists, its crop fits the data."""
    try:
        bb = netgen.foreign_backbone(spec, **({"mean": mean} if mean else {}), scale=scale or 1.0)
    except ValueError as e:
        raise TrainError(str(e)) from None
    if not weights or not os.path.exists(weights):
        raise TrainError("%s: a backbone given as DEPLOY:LAYER needs its caffemodel: pass --weights (make: WEIGHTS=)"
                         % (weights or spec))
    size = netgen.BACKBONES[netgen.DATASETS[dataset]["backbone"]]["size"]
    if bb["crop"] > size:
        raise TrainError("%s: input %d×%d is larger than %s's %d×%d images" % (spec, bb["crop"], bb["crop"], dataset, size, size))
    return bb


def _model_and_data(settings, root):
    """(net backbone for netgen, the backbone that takes the images, backbone spec, weights,
    data folder, run-name suffix) of a run: the dataset's AlexNet, a DEPLOY:LAYER backbone, or the
    frozen-feature mode on that backbone's features."""
    dataset, backbone, mean, scale, weights, data_dir = (settings.dataset, settings.backbone, settings.mean,
                                                         settings.scale, settings.weights, settings.data_dir)
    if settings.features:
        try:
            bb_src, weights, fname = backbone_of(dataset, backbone, mean, scale, weights)
        except FeatureError as e:
            raise TrainError(str(e)) from None
        data_dir = data_dir or features_dir(dataset, fname)
        manifest = os.path.join(data_dir, "train", "manifest.json")
        if not os.path.exists(manifest):
            raise TrainError("%s: no features for %s: run `make features DATASET=%s%s` first"
                             % (data_dir, fname, dataset, " BACKBONE=%s WEIGHTS=%s" % (backbone, weights) if backbone else ""))
        bb = netgen.features_backbone(fname, split_folder.check_split(os.path.dirname(manifest))["dim"])
        spec = backbone or netgen.DATASETS[dataset]["backbone"] + ":fc7"
        return bb, bb_src, spec, weights, data_dir, "-%s-frozen" % bb_src["name"]
    if settings.upper:
        return _stored_model_and_data(settings, root)
    bb = foreign_backbone(dataset, backbone, mean, scale, weights) if backbone else None
    data_dir = data_dir or os.path.join(root, "data", dataset, "lmdb")
    if not bb and netgen.DATASETS[dataset]["backbone"] == "alexnet":
        weights = weights or os.path.join(root, "weights", "bvlc_alexnet.caffemodel")
    return bb, bb, backbone or netgen.DATASETS[dataset]["backbone"], weights, data_dir, ("-" + bb["name"] if bb else "")


def paper_net(dataset, weights, root):
    """(DEPLOY:LAYER, caffemodel) of the dataset's own pretrained net for the stored mode, which
    cuts a deploy net: AlexNet conv1–fc7 (netgen.ALEXNET_DEPLOY) and its ImageNet weights."""
    if netgen.DATASETS[dataset]["backbone"] != "alexnet":
        raise TrainError("UPPER= cuts a pretrained net and the %s dataset's own net is trained from scratch: give "
                         "BACKBONE=DEPLOY.prototxt:LAYER and WEIGHTS=" % dataset)
    weights = weights or os.path.join(root, "weights", "bvlc_alexnet.caffemodel")
    if not os.path.exists(weights):
        raise TrainError("%s: ImageNet AlexNet weights missing; run `make weights` (or pass --weights)" % weights)
    return netgen.ALEXNET_DEPLOY + ":fc7", weights


def _stored_model_and_data(s, root):
    """_model_and_data of the stored mode (dhn.stored): the lower layers' outputs of train, query
    and database, stored first where missing (resuming split by split), feed the upper layers."""
    if not s.backbone:
        raise TrainError("UPPER= cuts a pretrained DEPLOY.prototxt:LAYER backbone: give BACKBONE= and WEIGHTS=")
    if s.features:
        raise TrainError("UPPER= and FEATURES=1 are two modes: the stored mode trains layers below the features")
    bb = foreign_backbone(s.dataset, s.backbone, s.mean, s.scale, s.weights)
    try:
        cut = stored.default_cut(bb) if s.upper == "1" else s.upper
        _, upper, blob = stored.split_backbone(bb, cut)
        if s.data_dir and os.path.isfile(os.path.join(s.data_dir, "train", stored.BLOBS)):
            out = s.data_dir     # stored splits already (e.g. a validation carved from them, dhn.sweep)
            manifests = {"train": split_folder.check_split(os.path.join(out, "train"))}
        else:   # data_dir: the converted images; their stored outputs beside them
            if not s.quiet:
                _say_expected(s, bb, cut, root)
            out, manifests = stored.store(s.dataset, s.backbone, s.weights, cut, ("train", s.query, s.database),
                                          views=s.views or stored.TRAIN_VIEWS, mean=s.mean, scale=s.scale,
                                          data_dir=s.data_dir, progress=not s.quiet)
    except (ValueError, FeatureError, DatasetError) as e:
        raise TrainError(str(e)) from None
    sbb = netgen.stored_backbone(bb, upper, blob, manifests["train"]["blobs"]["shape"], cut)
    return sbb, bb, s.backbone, s.weights, out, "-" + stored.run_tag(bb, cut)


def _say_expected(s, bb, cut, root):
    """Before a stored-mode run stores anything: what it will cost here (stored.expected_seconds),
    so that a user can plan. Said only when some split is still to be stored (a fresh run)."""
    data_dir = s.data_dir or os.path.join(root, "data", s.dataset, "lmdb")
    views = s.views or stored.TRAIN_VIEWS
    try:
        counts = {split: split_folder.check_split(os.path.join(data_dir, split))["count"]
                  for split in ("train", s.query, s.database)}
    except DatasetError:
        return          # store() says what is missing
    out = stored.stored_folder(data_dir, bb, cut)
    missing = [split for split in counts if not os.path.isfile(os.path.join(out, split, "manifest.json"))]
    if not missing:
        return          # stored before: only training and encoding are left, and their bars say when
    to_store = sum(counts[split] * (views if split == "train" else 1) for split in missing)
    iters, to_encode = schedule(s.dataset, s.iters).max_iter, counts[s.query] + counts[s.database]
    expected = stored.expected_seconds(bb, cut, s.weights, s.bits, to_store, iters, to_encode)
    print("dhn.train: " + stored.describe_expected(expected, to_store, iters, to_encode), file=sys.stderr)


def whole_foreign_net(settings):
    """Whole-net fine-tuning of a DEPLOY:LAYER backbone (neither FEATURES=1 nor UPPER=)."""
    return bool(settings.backbone) and not settings.features and not settings.upper


def head_settings(settings, run_dir=None):
    """The run whole-net fine-tuning starts from unless told otherwise (--init-fch): the stored-mode
    run of the same dataset, bits, variant, seed and data (its defaults; UPPER=1). A random fch on
    a pretrained net costs MAP in the first iterations and a CPU cannot afford the iterations to
    win it back (docs/lab/2026-12-07-stored-mode-and-whole-net.md). ``run_dir``: its folder
    (default: the stored run's own under runs/, the one dhn.table names; dhn.sweep keeps its head
    among its grid)."""
    root = paths.root()
    bb = foreign_backbone(settings.dataset, settings.backbone, settings.mean, settings.scale, settings.weights)
    try:
        cut = stored.default_cut(bb)
    except ValueError as e:
        raise TrainError(str(e)) from None
    # the stored run's own folder, with the seed as dhn.table names its runs when it is not the default
    name = "%s-%s%s" % (run_folder.run_name(settings.dataset, settings.bits, settings.variant), stored.run_tag(bb, cut),
                        "" if settings.seed == netgen.SEED else "-s%d" % settings.seed)
    return replace(settings, upper="1", iters=None, lr=None, backbone_lr_mult=None,
                   run_dir=run_dir or os.path.join(root, "runs", name),
                   init_fch=None, force=False, force_new=False, views=None)


def fit_head(settings, run_dir=None):
    """Train (or find done) the head_settings run of ``settings``; returns its folder."""
    head = head_settings(settings, run_dir)
    _said_head(run_one(head), settings)
    return head.run_dir


def _said_head(doc, settings):
    if not settings.quiet:
        print("dhn.train: whole-net fine-tuning starts from the fitted head of %s (MAP %.4f)" % (doc["run"], doc["map"]),
              file=sys.stderr)


def steps(settings):
    """The runs a request takes, in order, each a RunSettings that run_one trains: one, or for
    whole-net fine-tuning of a foreign backbone without --init-fch, its fitted head (head_settings)
    first and then the whole net starting from that head's folder."""
    settings.check()
    if settings.upper and not settings.backbone:
        settings = replace(settings, **dict(zip(("backbone", "weights"),
                                                paper_net(settings.dataset, settings.weights, paths.root()))))
    if settings.init_fch is None and whole_foreign_net(settings):
        head = head_settings(settings)
        return [head, replace(settings, init_fch=head.run_dir)]
    if settings.init_fch == "none":       # asked for a cold start: a random fch on the whole net
        settings = replace(settings, init_fch=None)
    return [settings]


def train(dataset, bits, variant, **options):
    """run() of RunSettings(dataset, bits, variant, **options): the keyword form of a run."""
    return run(RunSettings(dataset, bits, variant, **options))


def run(settings):
    """The whole job of a RunSettings: each of its steps() in turn, said when there is more than
    one; returns the last one's results.json document (run_one)."""
    plan = steps(settings)
    if len(plan) > 1 and not settings.quiet:
        print("dhn.train: two steps: the fitted head (%s, a stored-mode run), then whole-net fine-tuning from it"
              % plan[0].run_dir, file=sys.stderr)
    for step in plan[:-1]:
        _said_head(run_one(step), settings)
    return run_one(plan[-1])


def run_one(settings):
    """One run of a RunSettings (one of steps()); returns the run's results.json document (metrics and
    configuration). ``backbone``: another Caffe net as ``deploy.prototxt:layer`` (with ``weights``,
    its caffemodel; ``mean`` (BGR) and ``scale`` of its inputs, applied as Caffe does:
    (pixel − mean) × scale). ``features``: the frozen-feature mode, fch + losses trained on
    dhn.features' output for that backbone (``data_dir`` is then the features folder).
    ``upper``: the stored mode (dhn.stored), the layers above that cut trained on their stored
    inputs. ``init_fch``: fine-tune from the trained layers of a frozen or stored-mode run (its
    folder or caffemodel) instead of a random fch (run_folder.warm_start); whole-net fine-tuning
    of a ``backbone`` needs a head first (steps(); "none" there: a random fch)."""
    settings.check()
    root = paths.root()
    s = settings.resolved()
    dataset, bits, variant, features, query, database = s.dataset, s.bits, s.variant, s.features, s.query, s.database
    bb, img_bb, spec, weights, data_dir, suffix = _model_and_data(s, root)
    run_dir = s.run_dir or os.path.join(root, "runs", run_folder.run_name(dataset, bits, variant) + suffix)
    for split in ("train", query, database):
        if not os.path.exists(os.path.join(data_dir, split, "manifest.json")):
            raise TrainError("%s: no converted %s split; run `make data DATASET=%s` first"
                             % (os.path.join(data_dir, split), split, dataset))
    if not features and not s.backbone and netgen.DATASETS[dataset]["backbone"] == "alexnet" and not os.path.exists(weights):
        raise TrainError("%s: ImageNet AlexNet weights missing; run `make weights` (or pass --weights)" % weights)
    sched = schedule(dataset, s.iters)
    identity = run_identity(s, bb, img_bb, spec, weights, data_dir, sched)
    with run_folder.locked(run_dir):
        same = run_folder.check_same_config(run_dir, identity, s.force_new)
        if sched.note and not s.quiet:
            print(sched.note, file=sys.stderr)
        run_folder.file_results_by_database(run_dir)
        results_path = os.path.join(run_dir, run_folder.results_name(query, database))
        done = run_folder.load_results(results_path, query, database) if same and not s.force else None
        if not done and s.reuse_kept and not (s.force or s.force_new):
            # trained on another machine (make table-cpu): its results, not a second training
            done = kept.find(os.path.basename(os.path.abspath(run_dir)), identity,
                             run_folder.results_name(query, database), root)
            if done:
                if not s.quiet:
                    print("%s: kept in %s" % (run_dir, kept.FOLDER), file=sys.stderr)
                return done
        if done:
            if not s.quiet:
                print("%s exists: the run is done (pass --force, make: FORCE=1, to evaluate again)" % results_path,
                      file=sys.stderr)
            return done
        # a resumed run's data layer continues its stream where the snapshot left it
        start_iter = run_folder.latest_snapshot(run_dir)[0] if same else 0
        sol = prepare_run(run_dir, s, sched, bb if (features or s.backbone) else None, data_dir, start_iter=start_iter)
        config = dict(identity=identity, schedule_note=sched.note, snapshot=sched.snapshot, gpu=s.gpu,
                      weights=os.path.abspath(weights) if weights else None, data_dir=os.path.abspath(data_dir),
                      mean=list(img_bb["mean"]) if img_bb and img_bb.get("mean") else None,
                      scale=img_bb["scale"] if img_bb else None,
                      caffe=run_folder.caffe_build(), commit=run_folder.project_commit())
        write_atomic(os.path.join(run_dir, "config.json"), json.dumps(config, indent=1))
        if s.init_fch:   # the backbone's weights + the frozen run's fch: what caffe train starts from
            run_folder.warm_start(weights, s.init_fch, os.path.join(run_dir, "init.caffemodel"))
            weights = os.path.join(run_dir, "init.caffemodel")
        final = os.path.join(run_dir, "snapshots", "dhn_iter_%d.caffemodel" % sol.max_iter)
        final_state = final[:-len(".caffemodel")] + ".solverstate"
        if not (os.path.exists(final_state) and run_folder.snapshot_is_whole(final_state)):
            it, state = run_folder.latest_snapshot(run_dir)
            if state and not s.quiet:
                print("resuming %s from iteration %d" % (run_dir, it), file=sys.stderr)
            run_caffe_train(run_dir, os.path.join(run_dir, "solver.prototxt"), sol.max_iter,
                            weights=None if features else weights, snapshot=state, gpu=s.gpu, quiet=s.quiet)
        plot_loss(os.path.join(run_dir, "train.log"), os.path.join(run_dir, "loss.png"))
        if identity["bn_recalibration"]:
            final = recalibrated(run_dir, final, data_dir, s)
        meta = dict(identity, query=query, database=database,
                    caffe=config["caffe"], commit=config["commit"], run=os.path.basename(os.path.abspath(run_dir)))
        return evaluate.evaluate_run(run_dir, dataset, bits, variant, final, data_dir, gpu=s.gpu, query=query,
                                     database=database, R=evaluate.DATASET_R.get(dataset), meta=meta)


def run_identity(s, bb, img_bb, spec, weights, data_dir, sched):
    """What makes a run one configuration (run_folder.RunIdentity), as config.json records it: the
    resolved settings ``s``, the net's backbone ``bb`` and the one that takes the images, the
    backbone spec and weights, the data folder and the Schedule."""
    dataset, bits, variant, features = s.dataset, s.bits, s.variant, s.features
    transform = img_bb or netgen.BACKBONES[netgen.DATASETS[dataset]["backbone"]]   # the images' mean and scale
    upper = bb["cut"] if bb and bb.get("stored") else None
    mode = "frozen features" if features else "fine-tuned above stored %s" % upper if upper else "fine-tuned"
    if s.init_fch and features:
        raise TrainError("--init-fch starts a fine-tuning run from a frozen run's fch; this run is frozen itself")
    return run_folder.RunIdentity(
        dataset=dataset, bits=bits, variant=variant, mode=mode,
        backbone=spec, weights_sha256=file_digest(weights, "sha256") if weights else None,
        features=bb["name"] if features else None, lr=s.lr, alpha=s.alpha,
        max_iter=sched.max_iter, lr_policy=netgen.SOLVER_DEFAULTS["lr_policy"],
        gamma=netgen.SOLVER_DEFAULTS["gamma"], stepsize=sched.stepsize, batch=s.batch, seed=s.seed,
        shuffle=s.shuffle, train_split=split_folder.split_key(os.path.join(data_dir, "train")),
        backbone_lr_mult=s.backbone_lr_mult,
        init_fch=file_digest(run_folder.final_model(s.init_fch), "sha256") if s.init_fch else None,
        feature_norm=s.feature_norm, similar_weight=s.similar_weight, upper=upper, norm_stats=norm_stats(s),
        # a foreign backbone's Dropout layers train only without the BatchNorm (netgen.without_dropout)
        backbone_dropout=(not s.feature_norm) if bb and "layers" in bb else None,
        # the fitted head's BatchNorm kept in training goes stale as the net below moves
        bn_recalibration=BN_RECALIBRATION if norm_stats(s) == "global" and not (features or upper) else None,
        views=split_folder.check_split(os.path.join(data_dir, "train"))["blobs"]["views"] if upper else None,
        mean=[float(v) for v in transform["mean"]], scale=float(transform["scale"]), lambda_=s.lambda_).to_json()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add(ap, defaults=dict(dataset="cifar10", bits=48, variant="dhn"))
    args = ap.parse_args(argv)
    try:
        res = run(options.settings(args))
    except (TrainError, DatasetError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("MAP = %.4f" % res["map"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
