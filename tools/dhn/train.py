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
from dataclasses import dataclass, replace
from typing import NamedTuple

from . import evaluate, features, kept, netgen, options, paths, recalibrate, run_folder, split_folder, stored
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
    if bb.crop > size:
        raise TrainError("%s: input %d×%d is larger than %s's %d×%d images" % (spec, bb.crop, bb.crop, dataset, size, size))
    return bb


def _input(s, root):
    """(net Backbone, images Backbone, backbone spec, weights, data folder) of resolved settings
    ``s``: what fch sits on and what it reads, by mode: the frozen features, the stored outputs
    (stored where missing, _stored_input), or the images through the dataset's own net or a
    DEPLOY:LAYER backbone (net and images are then the same Backbone)."""
    if s.mode == netgen.FEATURES:
        return _frozen_input(s, root)
    if s.mode == netgen.STORED:
        return _stored_input(s, root)
    data_dir = s.data_dir or os.path.join(root, "data", s.dataset, "lmdb")
    if s.mode == netgen.FOREIGN:
        bb = foreign_backbone(s.dataset, s.backbone, s.mean, s.scale, s.weights)
        return bb, bb, s.backbone, s.weights, data_dir
    name = netgen.DATASETS[s.dataset]["backbone"]
    weights = s.weights or (paths.alexnet_weights(root) if name == "alexnet" else None)
    bb = netgen.built_backbone(name)
    return bb, bb, name, weights, data_dir


def _frozen_input(s, root):
    """_input of the frozen-feature mode: dhn.features' output of the backbone feeds fch."""
    try:
        images, weights, fname = backbone_of(s.dataset, s.backbone, s.mean, s.scale, s.weights)
    except FeatureError as e:
        raise TrainError(str(e)) from None
    data_dir = s.data_dir or features_dir(s.dataset, fname)
    manifest = os.path.join(data_dir, "train", "manifest.json")
    if not os.path.exists(manifest):
        raise TrainError("%s: no features for %s: run `make features DATASET=%s%s` first"
                         % (data_dir, fname, s.dataset, " BACKBONE=%s WEIGHTS=%s" % (s.backbone, weights) if s.backbone else ""))
    try:   # an older-format features folder is refused here, with the fix (make features converts it)
        _, manifest = split_folder.read_blobs(os.path.dirname(manifest))
    except DatasetError as e:
        raise TrainError(str(e)) from None
    net = netgen.features_backbone(fname, features.dim(manifest))
    return net, images, s.backbone or netgen.DATASETS[s.dataset]["backbone"] + ":fc7", weights, data_dir


def run_tag(mode, images, cut=None):
    """The run-name suffix of a mode (runs/<dataset>-<bits>-<variant><tag>; dhn.sweep's folder too):
    "-<net>-frozen", "-<net>-upper-<cut>", "-<net>" (another net whole), "" (the dataset's own
    net); ``images``: the Backbone that reads the images."""
    if mode == netgen.FEATURES:
        return "-%s-frozen" % images.name
    if mode == netgen.STORED:
        return "-" + stored.run_tag(images, cut)
    return "-" + images.name if mode == netgen.FOREIGN else ""


def paper_net(dataset, weights, root):
    """(DEPLOY:LAYER, caffemodel) of the dataset's own pretrained net for the stored mode, which
    cuts a deploy net: AlexNet conv1–fc7 (netgen.ALEXNET_DEPLOY) and its ImageNet weights."""
    if netgen.DATASETS[dataset]["backbone"] != "alexnet":
        raise TrainError("UPPER= cuts a pretrained net and the %s dataset's own net is trained from scratch: give "
                         "BACKBONE=DEPLOY.prototxt:LAYER and WEIGHTS=" % dataset)
    weights = weights or paths.alexnet_weights(root)
    if not os.path.exists(weights):
        raise TrainError("%s: ImageNet AlexNet weights missing; run `make weights` (or pass --weights)" % weights)
    return netgen.ALEXNET_DEPLOY + ":fc7", weights


def _stored_input(s, root):
    """_input of the stored mode (dhn.stored): the lower layers' outputs of train, query
    and database, stored first where missing (resuming split by split), feed the upper layers."""
    if not s.backbone:
        raise TrainError("UPPER= cuts a pretrained DEPLOY.prototxt:LAYER backbone: give BACKBONE= and WEIGHTS=")
    bb = foreign_backbone(s.dataset, s.backbone, s.mean, s.scale, s.weights)
    try:
        cut = stored.default_cut(bb) if s.upper == "1" else s.upper
        _, upper, blob = stored.split_backbone(bb, cut)
        if s.data_dir and os.path.isfile(os.path.join(s.data_dir, "train", split_folder.BLOBS)):
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
    net = netgen.stored_backbone(bb, upper, blob, manifests["train"]["blobs"]["shape"], cut)
    return net, bb, s.backbone, s.weights, out


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
    return settings.mode == netgen.FOREIGN


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
    todo = steps(settings)
    if len(todo) > 1 and not settings.quiet:
        print("dhn.train: two steps: the fitted head (%s, a stored-mode run), then whole-net fine-tuning from it"
              % todo[0].run_dir, file=sys.stderr)
    for step in todo[:-1]:
        _said_head(run_one(step), settings)
    return run_one(todo[-1])


@dataclass(frozen=True)
class RunPlan:
    """One run resolved once from its RunSettings (plan()): what every later step reads instead of
    deciding the mode again. ``net.kind`` is the mode (netgen.BUILT or FOREIGN: the whole net on
    the images; FEATURES: frozen features; STORED: the layers above a cut on stored outputs)."""
    settings: RunSettings       # resolved: every default of the mode filled in
    net: netgen.Backbone        # what fch sits on in the generated nets
    images: netgen.Backbone     # the net that reads the images (its transform; below the features or the cut)
    spec: str                   # the backbone as config.json records it (DEPLOY:LAYER, or the dataset's net)
    weights: str                # the pretrained caffemodel (None: the demo's net trains from scratch)
    data_dir: str               # the converted images, the features or the stored outputs
    run_dir: str
    schedule: Schedule
    identity: dict              # run_folder.RunIdentity, as config.json records it

    @property
    def start_weights(self):
        """What caffe train copies pretrained layers from: nothing for a frozen run (its net is the head)."""
        return None if self.net.kind == netgen.FEATURES else self.weights

    @property
    def recorded_before(self):
        """The identity values a run of this plan recorded the earlier way (run_folder.read_as_now):
        its training split's fingerprint with paths, as runs recorded it before it was placeless."""
        return {"train_split": split_folder.split_key_with_paths(os.path.join(self.data_dir, "train"))}


def plan(settings):
    """The RunPlan of one run (one of steps()): its settings checked and resolved, the backbone and
    input of its mode (the stored mode stores what is still missing, since the stored outputs'
    shape and key belong to the run), its folder, schedule and identity."""
    settings.check()
    root = paths.root()
    s = settings.resolved()
    net, images, spec, weights, data_dir = _input(s, root)
    run_dir = s.run_dir or os.path.join(root, "runs", run_folder.run_name(s.dataset, s.bits, s.variant) + run_tag(net.kind, images, net.cut))
    for split in ("train", s.query, s.database):
        if not os.path.exists(os.path.join(data_dir, split, "manifest.json")):
            raise TrainError("%s: no converted %s split; run `make data DATASET=%s` first"
                             % (os.path.join(data_dir, split), split, s.dataset))
    if net.kind == netgen.BUILT and net.name == "alexnet" and not os.path.exists(weights):
        raise TrainError("%s: ImageNet AlexNet weights missing; run `make weights` (or pass --weights)" % weights)
    if s.init_fch and net.kind == netgen.FEATURES:
        raise TrainError("--init-fch starts a fine-tuning run from a frozen run's fch; this run is frozen itself")
    sched = schedule(s.dataset, s.iters)
    identity = run_identity(s, net, images, spec, weights, data_dir, sched)
    return RunPlan(s, net, images, spec, weights, data_dir, run_dir, sched, identity)


def run_one(settings):
    """One run of a RunSettings (one of steps()): plan() it, then run_plan(); returns the run's
    results.json document (metrics and configuration)."""
    return run_plan(plan(settings))


def run_plan(p):
    """Train, recalibrate where the plan says so, and evaluate a RunPlan, in its folder and under
    its lock: a run whose results exist (or, with reuse_kept, are kept in results/) is done; one
    with snapshots resumes. Returns the results.json document."""
    s, run_dir = p.settings, p.run_dir
    with run_folder.locked(run_dir):
        same = run_folder.check_same_config(run_dir, p.identity, s.force_new, p.recorded_before)
        if p.schedule.note and not s.quiet:
            print(p.schedule.note, file=sys.stderr)
        run_folder.file_results_by_database(run_dir)
        done = _done(p, same)
        if done:
            return done
        # a resumed run's data layer continues its stream where the snapshot left it
        start_iter = run_folder.latest_snapshot(run_dir)[0] if same else 0
        sol = prepare_run(run_dir, s, p.schedule, p.net, p.data_dir, start_iter=start_iter)
        config = dict(identity=p.identity, schedule_note=p.schedule.note, snapshot=p.schedule.snapshot, gpu=s.gpu,
                      weights=os.path.abspath(p.weights) if p.weights else None, data_dir=os.path.abspath(p.data_dir),
                      mean=list(p.images.mean), scale=p.images.scale,
                      caffe=run_folder.caffe_build(), commit=run_folder.project_commit())
        write_atomic(os.path.join(run_dir, "config.json"), json.dumps(config, indent=1))
        weights = p.start_weights
        if s.init_fch:   # the backbone's weights + the frozen run's fch: what caffe train starts from
            weights = os.path.join(run_dir, "init.caffemodel")
            run_folder.warm_start(p.weights, s.init_fch, weights)
        final = os.path.join(run_dir, "snapshots", "dhn_iter_%d.caffemodel" % sol.max_iter)
        final_state = final[:-len(".caffemodel")] + ".solverstate"
        if not (os.path.exists(final_state) and run_folder.snapshot_is_whole(final_state)):
            it, state = run_folder.latest_snapshot(run_dir)
            if state and not s.quiet:
                print("resuming %s from iteration %d" % (run_dir, it), file=sys.stderr)
            run_caffe_train(run_dir, os.path.join(run_dir, "solver.prototxt"), sol.max_iter,
                            weights=weights, snapshot=state, gpu=s.gpu, quiet=s.quiet)
        plot_loss(os.path.join(run_dir, "train.log"), os.path.join(run_dir, "loss.png"))
        if p.identity["bn_recalibration"]:
            final = recalibrated(run_dir, final, p.data_dir, s)
        meta = dict(p.identity, query=s.query, database=s.database, caffe=config["caffe"], commit=config["commit"],
                    run=os.path.basename(os.path.abspath(run_dir)))
        return evaluate.evaluate_run(run_dir, s.dataset, s.bits, s.variant, final, p.data_dir, gpu=s.gpu, query=s.query,
                                     database=s.database, R=evaluate.DATASET_R.get(s.dataset), meta=meta)


def _done(p, same):
    """The results.json document of a plan already done (here, or kept in results/ by another
    machine when reuse_kept: make table-cpu), said; None when it is still to do."""
    s, run_dir = p.settings, p.run_dir
    results_path = os.path.join(run_dir, run_folder.results_name(s.query, s.database))
    done = run_folder.load_results(results_path, s.query, s.database) if same and not s.force else None
    if done:
        if not s.quiet:
            print("%s exists: the run is done (pass --force, make: FORCE=1, to evaluate again)" % results_path,
                  file=sys.stderr)
        return done
    if s.reuse_kept and not (s.force or s.force_new):
        done = kept.find(os.path.basename(os.path.abspath(run_dir)), p.identity,
                         run_folder.results_name(s.query, s.database), paths.root(), p.recorded_before)
        if done and not s.quiet:
            print("%s: kept in %s" % (run_dir, kept.FOLDER), file=sys.stderr)
    return done


def run_identity(s, net, images, spec, weights, data_dir, sched):
    """What makes a run one configuration (run_folder.RunIdentity), as config.json records it: the
    resolved settings ``s``, the Backbone fch sits on and the one that reads the images, the
    backbone spec and weights, the data folder and the Schedule."""
    upper = net.cut if net.kind == netgen.STORED else None
    frozen = net.kind == netgen.FEATURES
    mode = "frozen features" if frozen else "fine-tuned above stored %s" % upper if upper else "fine-tuned"
    return run_folder.RunIdentity(
        dataset=s.dataset, bits=s.bits, variant=s.variant, mode=mode,
        backbone=spec, weights_sha256=file_digest(weights, "sha256") if weights else None,
        features=net.name if frozen else None, lr=s.lr, alpha=s.alpha,
        max_iter=sched.max_iter, lr_policy=netgen.SOLVER_DEFAULTS["lr_policy"],
        gamma=netgen.SOLVER_DEFAULTS["gamma"], stepsize=sched.stepsize, batch=s.batch, seed=s.seed,
        shuffle=s.shuffle, train_split=split_folder.split_key(os.path.join(data_dir, "train")),
        backbone_lr_mult=s.backbone_lr_mult,
        init_fch=file_digest(run_folder.final_model(s.init_fch), "sha256") if s.init_fch else None,
        feature_norm=s.feature_norm, similar_weight=s.similar_weight, upper=upper, norm_stats=norm_stats(s),
        # a foreign backbone's Dropout layers train only without the BatchNorm (netgen.without_dropout)
        backbone_dropout=(not s.feature_norm) if net.spliced else None,
        # the fitted head's BatchNorm kept in training goes stale as the net below moves
        bn_recalibration=BN_RECALIBRATION if norm_stats(s) == "global" and net.takes_images else None,
        views=split_folder.check_split(os.path.join(data_dir, "train"))["blobs"]["views"] if upper else None,
        mean=[float(v) for v in images.mean], scale=float(images.scale), lambda_=s.lambda_).to_json()


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
