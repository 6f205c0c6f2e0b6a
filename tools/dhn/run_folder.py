"""A run folder, runs/<dataset>-<bits>-<variant>[-<backbone>[-frozen|-upper-<cut>]]/: what is in it and how it is read.

    config.json           the run's identity (IDENTITY: a re-run with another one is refused),
                          schedule, weights, data, Caffe build and project commit
    train.prototxt, solver.prototxt, deploy.prototxt, train.log, loss.png
    snapshots/dhn_iter_<N>.caffemodel|.solverstate
    codes/<split>.npy     the encoded query and database (dhn.encode)
    results.json          on the dataset's own query and database; results-<database>.json on
                          another (results_name), each with its plots and gallery

Here: the folder's names, its configuration (read, compared, written), its snapshots and final
model, the input transform of its net, the warm start of a fine-tuning run from a frozen run's
head, its lock, and TrainError, the one-line error every run command ends with.
"""
import contextlib
import glob
import json
import os
import re
import subprocess
from dataclasses import dataclass, field, fields, replace

from caffe.proto import caffe_pb2
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from . import netgen, paths, runlock
from .atomic import write_atomic
from .datasets import DatasetError, read_json


class TrainError(RuntimeError):
    """A one-line, user-facing reason a run stopped."""


@dataclass(frozen=True)
class RunSettings:
    """What a run is asked for: dhn.train's options as one object (dhn.sweep and dhn.table vary
    it with dataclasses.replace). None where the mode decides (resolved())."""
    dataset: str
    bits: int
    variant: str                  # netgen.VARIANTS or dhn-b (dhn's net, ranked by inner product)
    lr: float = None
    lambda_: float = None         # the paper's λ
    alpha: float = None           # θ = α⟨z_i, z_j⟩
    similar_weight: object = None   # weight of a similar pair: a number or "balanced"
    feature_norm: bool = None     # a BatchNorm between the backbone's features and fch
    iters: int = None             # max_iter (None: the solver's)
    batch: int = netgen.BATCH
    seed: int = netgen.SEED
    shuffle: bool = True          # reshuffle every epoch (dhn_data.ShuffledData), else key order
    backbone_lr_mult: float = None  # scales the backbone's lr (0 freezes it; None: the mode's, 1 but UPPER's)
    backbone: str = None          # another Caffe net, DEPLOY.prototxt:LAYER
    weights: str = None           # its caffemodel (default: the dataset's AlexNet)
    mean: tuple = None            # BGR mean of the backbone's inputs
    scale: float = None           # and their scale: (pixel − mean) × scale
    features: bool = False        # the frozen-feature mode, on dhn.features' output
    upper: str = None             # the stored mode: the layer after which the backbone's outputs are stored
                                  # (dhn.stored); the layers above it train ("1": the last learnable layer's input)
    views: int = None             # views stored per training image in the stored mode (dhn.stored.TRAIN_VIEWS)
    init_fch: str = None          # fine-tune from the fch of a frozen run (its folder or caffemodel)
    data_dir: str = None          # converted dataset, or features, folder
    run_dir: str = None
    query: str = "query"
    database: str = "database"
    gpu: int = None
    quiet: bool = False
    force: bool = False           # evaluate again though results exist
    force_new: bool = False       # start over a folder that holds another configuration
    reuse_kept: bool = False      # a run of this name and configuration kept in results/ (dhn.kept) is done

    def check(self):
        """These settings, or TrainError (one line naming the option and what it accepts) for a value
        out of range: checked once, before anything is stored, trained or written."""
        import math

        def bad(option, value, accepts):
            raise TrainError("--%s %s: %s" % (option, value, accepts))
        if self.dataset not in netgen.DATASETS:
            bad("dataset", self.dataset, "one of %s" % ", ".join(sorted(netgen.DATASETS)))
        if self.variant not in netgen.VARIANTS + ("dhn-b",):
            bad("variant", self.variant, "one of %s" % ", ".join(netgen.VARIANTS + ("dhn-b",)))
        for option, value, low, accepts in (("bits", self.bits, 1, "a code length, a whole number of bits >= 1"),
                                            ("iters", self.iters, 1, "a whole number of iterations >= 1"),
                                            ("seed", self.seed, 0, "a whole number >= 0"),
                                            ("batch", self.batch, 2, "a whole number >= 2 (the loss is over pairs)")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                bad(option, value, accepts)
        if self.views is not None and self.views not in (1, 2, 10):
            bad("views", self.views, "1, 2 or 10 views a training image")
        for option, value, positive in (("lr", self.lr, True), ("alpha", self.alpha, True),
                                        ("lambda", self.lambda_, False), ("backbone-lr-mult", self.backbone_lr_mult, False)):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)
                                          and (value > 0 if positive else value >= 0)):
                bad(option, value, "a %s number" % ("positive" if positive else "finite, non-negative"))
        if self.similar_weight is not None and self.similar_weight != "balanced" and not (
                isinstance(self.similar_weight, (int, float)) and math.isfinite(self.similar_weight)
                and self.similar_weight > 0):
            bad("similar-weight", self.similar_weight, "a positive number or 'balanced'")
        if self.upper is not None and not str(self.upper).strip():
            bad("upper", repr(self.upper), "a layer of the backbone, or 1 (below its last learnable layer)")
        if self.upper and self.features:
            raise TrainError("UPPER= and FEATURES=1 are two modes: the stored mode trains layers below the features")
        return self

    @property
    def mode(self):
        """The kind of backbone fch sits on (netgen.BUILT, FOREIGN, FEATURES, STORED): the one
        place the options are read for the mode."""
        if self.features:
            return netgen.FEATURES
        if self.upper:
            return netgen.STORED
        return netgen.FOREIGN if self.backbone else netgen.BUILT

    def resolved(self):
        """These settings with what no option set filled in, typed as config.json records them:
        lr, λ, α and the similar-pair weight are the paper's for the dataset's own net and the
        measured ones for a head on another pretrained net's features (netgen.mode_defaults);
        DHN-Q's λ is 0."""
        mode = self.mode
        head = mode != netgen.BUILT
        d = netgen.mode_defaults(self.dataset, self.bits, head, finetune=mode != netgen.FEATURES, upper=mode == netgen.STORED)
        given = dict(lr=self.lr, lambda_=self.lambda_, alpha=self.alpha, similar_weight=self.similar_weight,
                     backbone_lr_mult=self.backbone_lr_mult)
        d.update({k: v for k, v in given.items() if v is not None})
        feature_norm = self.feature_norm
        if feature_norm is None:
            # On by default where it was measured to matter: a pretrained net's raw, non-negative
            # features share a large common part that saturates a random fch
            # (docs/lab/2026-11-29-head-on-raw-features.md). AlexNet keeps the paper's fc7 → fch,
            # which the project could not measure (no AlexNet weights on its machines).
            feature_norm = head
        return replace(self, lr=d["lr"], alpha=float(d["alpha"]),
                       lambda_=0.0 if self.variant == "dhn-q" else float(d["lambda_"]),
                       similar_weight=d["similar_weight"] if d["similar_weight"] == "balanced"
                       else float(d["similar_weight"]),
                       feature_norm=bool(feature_norm), shuffle=bool(self.shuffle),
                       backbone_lr_mult=float(d["backbone_lr_mult"]))


def run_name(dataset, bits, variant):
    return "%s-%d-%s" % (dataset, bits, variant)


def warm_start(backbone_weights, trained, out_path):
    """A caffemodel with the backbone's pretrained layers and every trained layer of ``trained``
    (a frozen or stored-mode run's caffemodel, or its run folder: its final snapshot): fch and its
    BatchNorm, and for a stored-mode run the upper layers it fine-tuned (dhn.stored), each
    replacing the pretrained layer of its name. What `caffe train -weights` starts a whole-net
    fine-tuning from (a hash layer already fitted instead of a random one, whose first pair losses
    are large on raw non-negative features: docs/lab/2026-11-29-head-on-raw-features.md), and what
    puts a run's trained layers back into the whole net that takes images."""
    trained = final_model(trained)
    net, src = caffe_pb2.NetParameter(), caffe_pb2.NetParameter()
    with open(backbone_weights, "rb") as fh:
        net.ParseFromString(fh.read())
    with open(trained, "rb") as fh:
        src.ParseFromString(fh.read())
    learned = [layer for layer in src.layer if layer.blobs]
    if not any(layer.name == "fch" for layer in learned):
        raise TrainError("%s has no fch layer: give a DHN run's caffemodel" % trained)
    names = {layer.name for layer in learned}
    kept = [layer for layer in net.layer if layer.name not in names]
    del net.layer[:]
    net.layer.extend(kept + learned)
    write_atomic(out_path, net.SerializeToString())
    return trained


def image_net(run_dir, batch=1):
    """(deploy prototxt, caffemodel, crop, mean, scale) of the run's net that takes an image: its
    own deploy net for a run trained on images; for a frozen or stored-mode run, its backbone
    whole with the run's trained layers put back (warm_start), written to <run>/search/."""
    config = read_config(run_dir)
    weights = final_model(run_dir)
    crop, mean, scale = data_transform(os.path.join(run_dir, "train.prototxt"))
    if crop:
        return os.path.join(run_dir, "deploy.prototxt"), weights, crop, mean, scale
    ident = config["identity"]
    if ident["backbone"] in ("alexnet", "alexnet:fc7"):
        bb = netgen.built_backbone("alexnet")
    else:   # a frozen run's backbone is DEPLOY:LAYER with the mean and scale it was given
        bb = netgen.foreign_backbone(ident["backbone"], **({"mean": tuple(config["mean"])} if config.get("mean") else {}),
                                     scale=config.get("scale") or 1.0)
    out = os.path.join(run_dir, "search")
    os.makedirs(out, exist_ok=True)
    deploy = os.path.join(out, "image_deploy.prototxt")
    write_atomic(deploy, str(netgen.deploy_net(ident["dataset"], ident["bits"], batch=batch, backbone=bb,
                                                   feature_norm=ident.get("feature_norm", False))))
    model = os.path.join(out, "image_net.caffemodel")
    warm_start(config["weights"], weights, model)
    return deploy, model, bb.crop, tuple(bb.mean), bb.scale


def recalibrated_model(snapshot):
    """Where a snapshot's copy with the head's BatchNorm recomputed lives (dhn.recalibrate): beside it."""
    return os.path.splitext(snapshot)[0] + ".bn.caffemodel"


def final_model(run_or_model):
    """A run folder's final caffemodel (from its config: the last snapshot, or its BatchNorm-recalibrated
    copy where the run recalibrates), or the caffemodel given; TrainError if absent."""
    path = run_or_model
    if os.path.isdir(run_or_model):
        try:
            with open(os.path.join(run_or_model, "config.json")) as fh:
                ident = json.load(fh)["identity"]
            it = ident["max_iter"]
        except (OSError, ValueError, KeyError):
            raise TrainError("%s: not a finished run folder (no config.json): give a run folder or a caffemodel"
                             % run_or_model) from None
        path = os.path.join(run_or_model, "snapshots", "dhn_iter_%d.caffemodel" % it)
        if ident.get("bn_recalibration"):     # its last snapshot with the BatchNorm recomputed (dhn.recalibrate)
            path = recalibrated_model(path)
    if not os.path.isfile(path):
        raise TrainError("%s: no trained model there: train that run first (make train ... FEATURES=1)" % path)
    return path


def read_config(run_dir):
    """The run's config.json, its data folder as found now (data_dir_here); DatasetError (one line)
    when it is unreadable."""
    doc = read_json(os.path.join(run_dir, "config.json"),
                    "the run's configuration is lost: train it again (make train ... FORCE_NEW=1)")
    if doc.get("data_dir"):
        doc["data_dir"] = data_dir_here(doc["data_dir"], run_dir)
    return doc


def data_dir_here(recorded, run_dir):
    """The folder of a run's splits: the absolute path its config.json recorded or, where that is
    gone because the checkout moved (or the run was trained in another checkout of the project,
    a clone or a worktree), the same path from a ``data`` component on in the checkout that holds
    the run now (runs/NAME: two folders up). Else the recorded path, whose reader names it."""
    if os.path.isdir(recorded):
        return recorded
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(run_dir)))
    parts = recorded.split(os.sep)
    for i in reversed(range(len(parts))):
        here = os.path.join(checkout, *parts[i:])
        if parts[i] == "data" and os.path.isdir(here):
            return here
    return recorded


def results_name(query="query", database="database"):
    """The file of a run's results on one query and one database split: results.json on the dataset's
    own query and database, results-<database>.json (results-<query>-vs-<database>.json) on others;
    so evaluating a run on another database writes beside its results, never over them."""
    if (query, database) == ("query", "database"):
        return "results.json"
    name = database if query == "query" else "%s-vs-%s" % (query, database)
    return "results-%s.json" % name.replace(os.sep, "_")


def results_suffix(name):
    """'' for results.json, '-<database>' for results-<database>.json: the plots' and gallery's suffix."""
    return os.path.splitext(name)[0][len("results"):]


def data_transform(train_prototxt):
    """(crop, BGR mean, scale) of the training net's data layer (netgen.data_transform)."""
    net = caffe_pb2.NetParameter()
    with open(train_prototxt) as fh:
        text_format.Merge(fh.read(), net)
    return netgen.data_transform(net)


def snapshot_is_whole(state_path):
    """A run killed while Caffe writes a snapshot leaves a truncated file: whole means the
    .solverstate parses, its .caffemodel parses, and the state's momentum history has one blob
    per learnable blob of the model."""
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


# ----------------------------------------------------------------------------- configuration

def caffe_build():
    """The Caffe build in use: its BUILD_INFO (version, variant, python, patches hash)."""
    info = {"root": os.environ.get("CAFFE_ROOT")}
    try:
        for line in open(os.path.join(os.environ["CAFFE_ROOT"], "BUILD_INFO")):
            key, _, value = line.strip().partition(" ")
            if key in ("caffe", "system", "variant", "python", "patches"):
                info[key] = value
    except (KeyError, OSError):
        pass
    return info


def project_commit():
    """The project's git commit, "+dirty" when tracked files differ from it; None outside git."""
    root = paths.root()
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _foreign_dropout(old, doc, new):
    """Before backbone_dropout was recorded, a foreign backbone trained with its Dropout layers."""
    return True if old.get("mode") != "frozen features" and ":" in str(old.get("backbone")) else None


def _key(before=None):
    """A field of RunIdentity; ``before``: for a key that joined the identity after the first runs
    were recorded, what a run recorded before it existed did (a function of that run's identity,
    its whole config.json and the identity now asked for)."""
    return field(default=None, metadata={"before": before} if before else {})


@dataclass(frozen=True, kw_only=True)
class RunIdentity:
    """What makes a run folder one configuration, in the order config.json's "identity" records it
    (to_json): a re-run with any field changed is refused (check_same_config). A record from before
    a key existed is read with that key's ``before`` filled in (with_keys_added_since), so an old
    run folder of the same configuration is recognised as the same."""
    dataset: str = _key()
    bits: int = _key()
    variant: str = _key()
    mode: str = _key()                 # "fine-tuned", "frozen features", "fine-tuned above stored CUT"
    backbone: str = _key()             # the net's spec (DEPLOY:LAYER or the dataset's own)
    weights_sha256: str = _key()
    features: str = _key()             # the frozen mode's features folder name
    lr: float = _key()
    alpha: float = _key()
    max_iter: int = _key()
    lr_policy: str = _key()
    gamma: float = _key()
    stepsize: int = _key()
    batch: int = _key()
    seed: int = _key()
    shuffle: bool = _key()
    train_split: str = _key()          # the training split's key (split_folder.split_key)
    backbone_lr_mult: float = _key()
    init_fch: str = _key()             # sha256 of the caffemodel a fine-tuning run started from
    feature_norm: bool = _key()
    similar_weight: object = _key(lambda old, doc, new: 1.0)          # the paper's weight
    upper: str = _key(lambda old, doc, new: None)                     # before the stored mode: not that mode
    norm_stats: str = _key(lambda old, doc, new: "batch" if old.get("feature_norm") else None)  # batch statistics always
    backbone_dropout: bool = _key(_foreign_dropout)
    bn_recalibration: str = _key(lambda old, doc, new: None)          # the final net was the last snapshot
    views: int = _key(lambda old, doc, new: None)
    # the input transform: the config's own mean and scale (None there: the dataset's own backbone,
    # whose transform no option changes)
    mean: list = _key(lambda old, doc, new: new["mean"] if doc.get("mean") is None else doc["mean"])
    scale: float = _key(lambda old, doc, new: new["scale"] if doc.get("scale") is None else doc["scale"])
    lambda_: float = _key()            # the paper's λ, recorded as "lambda"

    @staticmethod
    def key(name):
        """A field's name in config.json."""
        return "lambda" if name == "lambda_" else name

    def to_json(self):
        """The identity as config.json records it (tuples as lists)."""
        return json.loads(json.dumps({self.key(f.name): getattr(self, f.name) for f in fields(self)}))


IDENTITY = tuple(RunIdentity.key(f.name) for f in fields(RunIdentity))
ADDED_KEYS = tuple((RunIdentity.key(f.name), f.metadata["before"]) for f in fields(RunIdentity) if f.metadata)


def with_keys_added_since(old, doc, identity):
    """A recorded identity with the keys added after it was recorded filled in (ADDED_KEYS)."""
    old = dict(old)
    for key, before in ADDED_KEYS:
        if key not in old:
            old[key] = before(old, doc, identity)
    return old


def read_as_now(old, identity, earlier=None):
    """A recorded identity with the values recorded the earlier way read as identity's: ``earlier``
    maps a key to the value the same thing had when recorded before (the training split's
    fingerprint with paths, split_folder.split_key_with_paths: RunPlan.recorded_before)."""
    if not earlier or not isinstance(old, dict):
        return old
    return {k: identity.get(k) if k in earlier and v == earlier[k] else v for k, v in old.items()}


def check_same_config(run_dir, identity, force_new, earlier=None):
    """Refuse (TrainError, one line) a run folder trained under another configuration; with
    force_new, empty it instead. Returns True when the folder already holds this configuration.
    ``earlier``: values recorded the earlier way that mean the same (read_as_now)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return False
    try:
        doc = read_json(path, "pass --force-new (make: FORCE_NEW=1) to start the run over, or --run NAME for a "
                              "new run folder")
    except DatasetError as e:
        if not force_new:
            raise TrainError(str(e)) from None
        doc = {}
    old = doc.get("identity")
    if old is not None:
        old = read_as_now(with_keys_added_since(old, doc, identity), identity, earlier)
    if old == identity:
        return True
    if force_new:
        runlock.empty(run_dir)     # the caller holds the folder's lock: its file stays
        return False
    if old is None:
        what = "an older layout without a recorded configuration"
    else:
        diff = [k for k in IDENTITY if old.get(k) != identity.get(k)]
        what = ", ".join("%s %s -> %s" % (k, old.get(k), identity.get(k)) for k in diff)
    raise TrainError("%s holds a run of another configuration (%s): pass --force-new (make: FORCE_NEW=1) to "
                     "start it over, or --run NAME for a new run folder" % (run_dir, what))


@contextlib.contextmanager
def locked(run_dir):
    """The run folder's lock (runlock) for the block; another process holding it is a TrainError."""
    try:
        with runlock.hold(run_dir):
            yield
    except runlock.Busy as e:
        raise TrainError(str(e)) from None


def _read_results(path):
    """The results document at path; None when there is none or it does not parse."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def file_results_by_database(run_dir):
    """A results.json written before results were filed per database (results_name) may
    hold another database's results: it moves to that database's name, where nothing overwrites it."""
    path = os.path.join(run_dir, "results.json")
    doc = _read_results(path)
    if doc is None:
        return
    name = results_name(doc.get("query", "query"), doc.get("database", "database"))
    if name != "results.json" and not os.path.exists(os.path.join(run_dir, name)):
        os.replace(path, os.path.join(run_dir, name))


def load_results(path, query, database):
    """The results document at path if it holds this query and database's results, else None."""
    doc = _read_results(path)
    if doc is None:
        return None
    return doc if (doc.get("query", "query"), doc.get("database", "database")) == (query, database) else None
