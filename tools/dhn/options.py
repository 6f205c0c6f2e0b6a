"""The command-line options of a run's settings (run_folder.RunSettings), declared once.

dhn.train, dhn.sweep and dhn.table add theirs from OPTIONS (add), and the Makefile's
variables that pass them on (tools/run_options.mk: ``make train LR=1e-3 UPPER=1 ...``) are
generated from the same list (make_fragment; `make prototxt` writes it, a test checks the
committed one), so an option, its type, its help and its Make variable cannot drift apart.
Each option is one RunSettings field; its type is the field's, or ``parse`` where the text needs
reading (a B,G,R mean, a number or 'balanced').

    python -m dhn.options [--check]     # write (or check) tools/run_options.mk
"""
import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass

from . import netgen, paths, stored
from .run_folder import RunSettings

FRAGMENT = os.path.join("tools", "run_options.mk")


def mean_arg(text):
    """B,G,R -> a tuple of three floats."""
    try:
        mean = tuple(float(x) for x in text.split(","))
    except ValueError:
        mean = ()
    if len(mean) != 3:
        raise argparse.ArgumentTypeError("%r: give the B,G,R mean, three numbers" % text)
    return mean


def similar_weight_arg(text):
    """'balanced' or a positive number."""
    if text == "balanced":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError("%r: give a positive number or 'balanced'" % text)
    return value


@dataclass(frozen=True)
class Option:
    """One RunSettings field on the command line. kind: "value" (--flag VALUE), "switch" (--flag
    sets True), "off" (--flag sets False), "both" (--flag / --no-flag, None when neither).
    make: its Make variable (a switch: VAR=1; "both": VAR=1 / VAR=0; "off": VAR=0), in the Make
    list ``group`` (TRAIN_ARGS, MODEL_ARGS, RUN_ARGS; None: the Makefile passes it itself)."""
    field: str
    flag: str
    help: str = None
    kind: str = "value"
    make: str = None
    group: str = None
    parse: object = None
    choices: tuple = None
    metavar: str = None

    def add_to(self, ap, help=None, default=None):
        text = self.help if help is None else help
        if self.kind == "switch":
            ap.add_argument(self.flag, dest=self.field, action="store_true", help=text)
        elif self.kind == "off":
            ap.add_argument(self.flag, dest=self.field, action="store_false", help=text)
        elif self.kind == "both":
            ap.add_argument(self.flag, dest=self.field, action="store_true", default=None, help=text)
            ap.add_argument("--no-" + self.flag[2:], dest=self.field, action="store_false")
        else:
            field = _FIELDS[self.field]
            kw = dict(dest=self.field, type=self.parse or field.type, help=text, choices=self.choices,
                      metavar=self.metavar)
            if default is not None or field.default is not dataclasses.MISSING:
                kw["default"] = field.default if default is None else default
            ap.add_argument(self.flag, **kw)

    def make_text(self):
        """This option as its Make variable passes it: $(if $(LR),--lr $(LR))."""
        if self.kind == "switch":
            return "$(if $(filter 1,$(%s)),%s)" % (self.make, self.flag)
        if self.kind == "off":
            return "$(if $(filter 0,$(%s)),%s)" % (self.make, self.flag)
        if self.kind == "both":
            return "$(if $(filter 1,$(%s)),%s) $(if $(filter 0,$(%s)),--no-%s)" % (self.make, self.flag, self.make,
                                                                                 self.flag[2:])
        return "$(if $(%s),%s $(%s))" % (self.make, self.flag, self.make)


_FIELDS = {f.name: f for f in dataclasses.fields(RunSettings)}

OPTIONS = (
    Option("dataset", "--dataset", choices=tuple(sorted(netgen.DATASETS))),
    Option("bits", "--bits", help="code length K"),
    Option("variant", "--variant", choices=netgen.VARIANTS + ("dhn-b",)),
    Option("lr", "--lr", make="LR", group="TRAIN_ARGS", parse=float,
           help="base lr (default: %g, the authors'; %g with --features, %g with --upper, %g with --backbone)"
                % (netgen.DEFAULT_LR, netgen.HEAD_DEFAULTS["lr"], netgen.UPPER_DEFAULTS["lr"], netgen.FINETUNE_LR)),
    Option("lambda_", "--lambda", make="LAMBDA", group="TRAIN_ARGS", parse=float,
           help="the paper's λ (default: %g; with --backbone or --features %s)"
                % (netgen.DEFAULT_LAMBDA, ", ".join("%g at %d bits" % (v, k) for k, v in
                                                    sorted(netgen.HEAD_DEFAULTS["lambda_"].items())))),
    Option("iters", "--iters", make="ITERS", group="TRAIN_ARGS", parse=int, help="max_iter (default: the solver's)"),
    Option("gpu", "--gpu", make="GPU", group="TRAIN_ARGS", parse=int,
           help="GPU id (needs a CUDA build: make setup CUDA=1)"),
    Option("alpha", "--alpha", make="ALPHA", group="TRAIN_ARGS", parse=float,
           help="θ = α<z_i, z_j> (default: 1, the paper's; %g/bits with --backbone or --features)"
                % netgen.HEAD_DEFAULTS["alpha_bits"]),
    Option("similar_weight", "--similar-weight", make="SIMILAR_WEIGHT", group="TRAIN_ARGS", parse=similar_weight_arg,
           help="weight of a similar pair in the pairwise loss: a number, or 'balanced' (#pairs / #similar pairs "
                "of each batch); default: 1, the paper's; %s with --backbone or --features"
                % netgen.HEAD_DEFAULTS["similar_weight"]),
    Option("seed", "--seed", make="SEED", group="TRAIN_ARGS", help="the solver's and the data layer's seed"),
    Option("features", "--features", kind="switch", make="FEATURES", group="TRAIN_ARGS",
           help="frozen-feature mode: train fch on `make features` output of the backbone"),
    Option("feature_norm", "--feature-norm", kind="both", make="FEATURE_NORM", group="TRAIN_ARGS",
           help="a BatchNorm between the backbone's features and fch (default: on for --backbone and --features, "
                "off for the paper's AlexNet)"),
    Option("upper", "--upper", make="UPPER", group="TRAIN_ARGS", parse=str, metavar="CUT",
           help="the stored mode: store the backbone's outputs at layer CUT once (dhn.stored) and fine-tune the "
                "layers above it with fch; 1: below the last learnable layer"),
    Option("views", "--views", make="VIEWS", group="TRAIN_ARGS", parse=int, choices=(1, 2, 10),
           help="views stored per training image with --upper (default %d: centre crop and mirror)" % stored.TRAIN_VIEWS),
    Option("backbone_lr_mult", "--backbone-lr-mult", make="BACKBONE_LR_MULT", group="TRAIN_ARGS", parse=float,
           help="scale the backbone's learning rate (0 freezes it; fch keeps 10/20); default 1, with --upper %g "
                "(the fch's rate)" % netgen.UPPER_DEFAULTS["backbone_lr_mult"]),
    Option("init_fch", "--init-fch", make="INIT_FCH", group="TRAIN_ARGS", parse=str,
           help="fine-tune from the trained layers of a frozen or stored-mode run (its folder or caffemodel); "
                "default for --backbone: the stored-mode run (UPPER=1), trained first if missing; 'none': a random fch"),
    Option("shuffle", "--no-shuffle", kind="off", make="SHUFFLE", group="TRAIN_ARGS",
           help="read the training split in its stored order (Caffe's Data layer) instead of reshuffling every epoch"),
    Option("weights", "--weights", make="WEIGHTS", group="MODEL_ARGS", parse=str,
           help="pretrained caffemodel (default weights/bvlc_alexnet.caffemodel)"),
    Option("backbone", "--backbone", make="BACKBONE", group="MODEL_ARGS", parse=str,
           help="another Caffe net: DEPLOY.prototxt:LAYER, fch goes on LAYER (needs --weights)"),
    Option("mean", "--mean", make="MEAN", group="MODEL_ARGS", parse=mean_arg,
           help="BGR mean of --backbone's inputs, B,G,R (default 104,117,123)"),
    Option("scale", "--scale", make="SCALE", group="MODEL_ARGS", parse=float,
           help="scale of --backbone's inputs after the mean (default 1)"),
    Option("data_dir", "--data", make="DATA", group="RUN_ARGS", parse=str,
           help="converted dataset folder (default data/<dataset>/lmdb)"),
    Option("run_dir", "--run", make="RUN", group="RUN_ARGS", parse=str,
           help="run folder (default runs/<dataset>-<bits>-<variant>)"),
    Option("query", "--query", make="QUERY", group="RUN_ARGS", help="the split of queries (default query)"),
    Option("database", "--database", make="DATABASE", group="RUN_ARGS",
           help="the database split (default database; e.g. a dhn.subset one, said in results and report)"),
    Option("force", "--force", kind="switch", make="FORCE", group="RUN_ARGS",
           help="evaluate again even if results.json exists"),
    Option("force_new", "--force-new", kind="switch", make="FORCE_NEW", group="RUN_ARGS",
           help="start the run folder over when it holds another configuration"),
)
BY_FIELD = {o.field: o for o in OPTIONS}
# RunSettings fields no command line sets: the batch is the paper's 64 (netgen.BATCH); quiet and
# reuse_kept are what dhn.sweep and dhn.table ask of the runs they make
NOT_OPTIONS = ("batch", "quiet", "reuse_kept")


def add(ap, fields=None, helps=None, defaults=None):
    """Add the options of ``fields`` (default: all, in OPTIONS' order) to the ArgumentParser ap;
    ``helps``/``defaults``: {field: text/value} where a tool says it its own way."""
    helps, defaults = helps or {}, defaults or {}
    for option in OPTIONS if fields is None else (BY_FIELD[f] for f in fields):
        option.add_to(ap, helps.get(option.field), defaults.get(option.field))


def settings(args, **fixed):
    """RunSettings of the parsed ``args`` (their fields that are RunSettings fields) and ``fixed``."""
    given = {k: v for k, v in vars(args).items() if k in _FIELDS}
    given.update(fixed)
    return RunSettings(**given)


def make_fragment():
    """tools/run_options.mk: the Make lists that pass the variables on as options."""
    lines = ["# Generated by `python -m dhn.options` (make prototxt) from dhn/options.py: do not edit.",
             "# Each Make variable passes one option of dhn.train; VAR=1 turns a switch on (FEATURE_NORM=0: off)."]
    for group in ("TRAIN_ARGS", "MODEL_ARGS", "RUN_ARGS"):
        parts = [o.make_text() for o in OPTIONS if o.group == group]
        lines.append("%s = %s" % (group, " \\\n    ".join(parts)))
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the committed file is stale")
    args = ap.parse_args(argv)
    stale = netgen.write_files({FRAGMENT: make_fragment()}, paths.root(), check=args.check)
    if stale:
        print("stale: %s: run `make prototxt`" % ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
