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
import glob
import json
import os
import re
import subprocess
import sys

from . import netgen

ITER_RE = re.compile(r"Iteration (\d+).*loss = (\S+)")
OUTPUT_RE = re.compile(r"Train net output #\d+: (\w+) = (\S+)")


class TrainError(RuntimeError):
    """A one-line, user-facing reason a run stopped."""


DATASET_R = {"cifar10": None, "nuswide21": 5000, "flickr25k": None, "demo": None}  # None: all


def run_name(dataset, bits, variant):
    return "%s-%d-%s" % (dataset, bits, variant)


def write_text(path, text):
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def prepare_run(run_dir, dataset, bits, variant, lr, lambda_, iters, data_dir, gpu, seed, batch,
                backbone=None, **solver_overrides):
    """Write the run's own net, solver and deploy net (generated, with this run's values)."""
    os.makedirs(os.path.join(run_dir, "snapshots"), exist_ok=True)
    net_variant = "dhn" if variant == "dhn-b" else variant
    train = netgen.train_net(dataset, bits, net_variant, lambda_=lambda_,
                             data_dir=os.path.join(data_dir, "train"), batch=batch, backbone=backbone)
    write_text(os.path.join(run_dir, "train.prototxt"), str(train))
    write_text(os.path.join(run_dir, "deploy.prototxt"), str(netgen.deploy_net(dataset, bits, backbone=backbone)))
    extra = dict(netgen.DEMO_SOLVER) if dataset == "demo" else {}
    if iters:
        extra["max_iter"] = iters
        extra["stepsize"] = max(1, min(extra.get("stepsize", netgen.SOLVER_DEFAULTS["stepsize"]), iters // 3 or 1))
        # at least four snapshots per run, so that an interrupted short run resumes too
        extra["snapshot"] = max(1, min(extra.get("snapshot", netgen.SOLVER_DEFAULTS["snapshot"]), iters // 4))
    extra["random_seed"] = seed
    extra.update(solver_overrides)
    sol = netgen.solver(os.path.abspath(os.path.join(run_dir, "train.prototxt")),
                        os.path.abspath(os.path.join(run_dir, "snapshots", "dhn")), lr=lr, **extra)
    if gpu is not None:
        sol.solver_mode = sol.GPU
    write_text(os.path.join(run_dir, "solver.prototxt"), str(sol))
    return sol


def snapshot_is_whole(state_path):
    """A run killed while Caffe writes a snapshot leaves a truncated file: whole means the
    .solverstate parses, its .caffemodel parses, and the state's momentum history has one blob
    per learnable blob of the model."""
    from google.protobuf.message import DecodeError
    from caffe.proto import caffe_pb2
    state, model = caffe_pb2.SolverState(), caffe_pb2.NetParameter()
    try:
        with open(state_path, "rb") as fh:
            state.ParseFromString(fh.read())
        model_path = os.path.join(os.path.dirname(state_path), os.path.basename(state.learned_net))
        with open(model_path, "rb") as fh:
            model.ParseFromString(fh.read())
    except (OSError, DecodeError):
        return False
    n_blobs = sum(len(layer.blobs) for layer in model.layer)
    return n_blobs > 0 and len(state.history) == n_blobs


def latest_snapshot(run_dir, subdir="snapshots"):
    """(iteration, .solverstate path) of the newest whole snapshot, or (0, None)."""
    found = []
    for path in glob.glob(os.path.join(run_dir, subdir, "dhn_iter_*.solverstate")):
        found.append((int(re.search(r"_iter_(\d+)\.solverstate$", path).group(1)), path))
    for it, path in sorted(found, reverse=True):
        if snapshot_is_whole(path):
            return it, path
    return 0, None


def run_caffe_train(run_dir, solver_path, max_iter, weights=None, snapshot=None, gpu=None, quiet=False):
    """`caffe train` in a subprocess, log appended to train.log, a progress bar from its log."""
    from tqdm import tqdm
    cmd = [os.path.join(os.environ["CAFFE_ROOT"], "bin", "caffe"), "train", "-solver", solver_path]
    if snapshot:
        cmd += ["-snapshot", snapshot]
    elif weights:
        cmd += ["-weights", weights]
    if gpu is not None:
        cmd += ["-gpu", str(gpu)]
    start = latest_snapshot(run_dir)[0] if snapshot else 0
    log_path = os.path.join(run_dir, "train.log")
    # progress, divergence and loss.png are read from the INFO log, whatever the caller set
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    bar = tqdm(total=max_iter, initial=start, desc="train", unit="it", disable=quiet, leave=False)
    last_iter, diverged = start, False
    with open(log_path, "a") as log:
        log.write("$ %s\n" % " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
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
    bar.close()
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
    fig.savefig(png_path + ".tmp.png", dpi=100)
    plt.close(fig)
    os.replace(png_path + ".tmp.png", png_path)


def data_transform(train_prototxt):
    """(crop, BGR mean, scale) of the training net's image Data layer: encoding applies the
    same transform (Caffe's TEST-phase centre crop), read from the one place that defines it."""
    from google.protobuf import text_format
    from caffe.proto import caffe_pb2
    net = caffe_pb2.NetParameter()
    with open(train_prototxt) as fh:
        text_format.Merge(fh.read(), net)
    t = [layer for layer in net.layer if layer.type == "Data"][0].transform_param
    return t.crop_size, tuple(t.mean_value), t.scale


def encode_split(run_dir, weights, data_dir, split, gpu):
    from . import encode
    crop, mean, scale = data_transform(os.path.join(run_dir, "train.prototxt"))
    z = encode.encode(os.path.join(run_dir, "deploy.prototxt"), weights, os.path.join(data_dir, split, "images"),
                      crop=crop, mean_bgr=mean, scale=scale, gpu=gpu)
    os.makedirs(os.path.join(run_dir, "codes"), exist_ok=True)
    encode.save_codes(os.path.join(run_dir, "codes", split), z)
    return z


def evaluate_run(run_dir, dataset, bits, variant, weights, data_dir, gpu=None, query="query",
                 database="database", R=None, meta=None):
    """Encode query and database with the trained net, score, write results.json and plots."""
    from . import convert, evaluate
    zq = encode_split(run_dir, weights, data_dir, query, gpu)
    zd = encode_split(run_dir, weights, data_dir, database, gpu)
    lq = convert.read_split_labels(os.path.join(data_dir, query))
    ld = convert.read_split_labels(os.path.join(data_dir, database))
    results = evaluate.evaluate_codes(zq, lq, zd, ld, R=R, binary=(variant != "dhn-b"))
    evaluate.write_results(run_dir, results, dict(meta or {}, dataset=dataset, bits=bits, variant=variant,
                                                  weights=os.path.relpath(weights, run_dir)))
    return results


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


def train(dataset, bits, variant, lr=None, lambda_=None, iters=None, gpu=None, weights=None,
          data_dir=None, run_dir=None, seed=1234, batch=netgen.BATCH, quiet=False, force=False,
          query="query", database="database", backbone=None, mean=None, scale=None):
    """The whole job; returns the results dict (see dhn.evaluate). ``backbone``: another Caffe
    net as ``deploy.prototxt:layer`` (with ``weights``, its caffemodel; ``mean`` (BGR) and ``scale``
    of its inputs, applied as Caffe does: (pixel − mean) × scale)."""
    if dataset not in netgen.DATASETS:
        raise TrainError("unknown dataset %r (one of %s)" % (dataset, ", ".join(netgen.DATASETS)))
    bb = foreign_backbone(dataset, backbone, mean, scale, weights) if backbone else None
    lr = netgen.DEMO_LR if (lr is None and dataset == "demo") else (lr or netgen.DEFAULT_LR)
    if lambda_ is None:
        lambda_ = netgen.DEMO_LAMBDA if dataset == "demo" else netgen.DEFAULT_LAMBDA
    root = os.environ.get("DHN_ROOT", ".")
    data_dir = data_dir or os.path.join(root, "data", dataset, "lmdb")
    run_dir = run_dir or os.path.join(root, "runs", run_name(dataset, bits, variant) + ("-" + bb["name"] if bb else ""))
    results_path = os.path.join(run_dir, "results.json")
    if os.path.exists(results_path) and not force:
        print("%s exists: the run is done (pass --force to evaluate again)" % results_path, file=sys.stderr)
        return json.load(open(results_path))
    for split in ("train", query, database):
        if not os.path.exists(os.path.join(data_dir, split, "manifest.json")):
            raise TrainError("%s: no converted %s split; run `make data DATASET=%s` first"
                             % (os.path.join(data_dir, split), split, dataset))
    if not bb and netgen.DATASETS[dataset]["backbone"] == "alexnet":
        weights = weights or os.path.join(root, "weights", "bvlc_alexnet.caffemodel")
        if not os.path.exists(weights):
            raise TrainError("%s: ImageNet AlexNet weights missing; run `make weights` (or pass --weights)" % weights)
    sol = prepare_run(run_dir, dataset, bits, variant, lr, lambda_, iters, data_dir, gpu, seed, batch, backbone=bb)
    config = dict(dataset=dataset, bits=bits, variant=variant, lr=lr, lambda_=lambda_, max_iter=sol.max_iter,
                  seed=seed, batch=batch, gpu=gpu, weights=weights, data_dir=os.path.abspath(data_dir),
                  backbone=backbone or netgen.DATASETS[dataset]["backbone"], mean=list(bb["mean"]) if bb else None, scale=bb["scale"] if bb else None)
    write_text(os.path.join(run_dir, "config.json"), json.dumps(config, indent=1))
    final = os.path.join(run_dir, "snapshots", "dhn_iter_%d.caffemodel" % sol.max_iter)
    final_state = final[:-len(".caffemodel")] + ".solverstate"
    if not (os.path.exists(final_state) and snapshot_is_whole(final_state)):
        it, state = latest_snapshot(run_dir)
        if state and not quiet:
            print("resuming %s from iteration %d" % (run_dir, it), file=sys.stderr)
        run_caffe_train(run_dir, os.path.join(run_dir, "solver.prototxt"), sol.max_iter,
                        weights=weights, snapshot=state, gpu=gpu, quiet=quiet)
    plot_loss(os.path.join(run_dir, "train.log"), os.path.join(run_dir, "loss.png"))
    return evaluate_run(run_dir, dataset, bits, variant, final, data_dir, gpu=gpu, query=query,
                        database=database, R=DATASET_R.get(dataset), meta=dict(lr=lr, lambda_=lambda_))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="cifar10", choices=sorted(netgen.DATASETS))
    ap.add_argument("--bits", type=int, default=48)
    ap.add_argument("--variant", default="dhn", choices=netgen.VARIANTS + ("dhn-b",))
    ap.add_argument("--lr", type=float)
    ap.add_argument("--lambda", dest="lambda_", type=float, help="the paper's λ (default %g)" % netgen.DEFAULT_LAMBDA)
    ap.add_argument("--iters", type=int, help="max_iter (default: the solver's)")
    ap.add_argument("--gpu", type=int, help="GPU id (needs a CUDA build: make setup CUDA=1)")
    ap.add_argument("--weights", help="pretrained caffemodel (default weights/bvlc_alexnet.caffemodel)")
    ap.add_argument("--backbone", help="another Caffe net: DEPLOY.prototxt:LAYER, fch goes on LAYER (needs --weights)")
    ap.add_argument("--mean", type=lambda v: tuple(float(x) for x in v.split(",")),
                    help="BGR mean of --backbone's inputs, B,G,R (default 104,117,123)")
    ap.add_argument("--scale", type=float, help="scale of --backbone's inputs after the mean (default 1)")
    ap.add_argument("--data", dest="data_dir", help="converted dataset folder (default data/<dataset>/lmdb)")
    ap.add_argument("--run", dest="run_dir", help="run folder (default runs/<dataset>-<bits>-<variant>)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--force", action="store_true", help="evaluate again even if results.json exists")
    args = ap.parse_args(argv)
    try:
        res = train(**{k: v for k, v in vars(args).items()})
    except TrainError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("MAP = %.4f" % res["map"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
