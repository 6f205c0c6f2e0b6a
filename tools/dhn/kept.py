"""Results that outlive the machine: `results/<run>/` holds a finished run's config.json and its
results*.json (a few KB; no model, codes or plots), committed to the repository, so that a table
that needs more CPU hours than one machine gives grows across machines.

    python -m dhn.kept RUN_DIR [RUN_DIR ...]     (make keep RUN=runs/NAME)

`make table-cpu` keeps every run it makes and counts a kept run of the same configuration as done
(train.run with RunSettings.reuse_kept); `make report` reads results/ beside runs/.
"""
import argparse
import glob
import json
import os
import sys

from . import paths
from .atomic import write_atomic
from .datasets import DatasetError, read_json
from .run_folder import read_as_now, with_keys_added_since
from .split_folder import short_backbone

FOLDER = "results"


def folder(root=None):
    """The kept results' folder of a checkout: <project root>/results (paths.root())."""
    return os.path.join(root or paths.root(), FOLDER)


def keep(run_dir, root=None):
    """Copy a finished run's config.json and results*.json (a baselines folder's baselines.json)
    into results/<folder name>/; returns that folder. DatasetError (one line naming the file) when
    there are no results, or results without the configuration that produced them."""
    name = os.path.basename(os.path.abspath(run_dir))
    found = sorted(glob.glob(os.path.join(run_dir, "results*.json")) + glob.glob(os.path.join(run_dir, "baselines.json")))
    if not found:
        raise DatasetError("%s: no results*.json: the run is not finished (make train ... RUN=%s), nothing to keep"
                           % (run_dir, run_dir))
    docs = {}
    if glob.glob(os.path.join(run_dir, "results*.json")):
        docs["config.json"] = read_json(os.path.join(run_dir, "config.json"),
                                        "the run's configuration is lost: train it again (make train ... FORCE_NEW=1)")
    for path in found:
        docs[os.path.basename(path)] = read_json(path, "evaluate the run again (make train ... FORCE=1)")
    out = os.path.join(folder(root), name)
    os.makedirs(out, exist_ok=True)
    for fname, doc in docs.items():
        write_atomic(os.path.join(out, fname), json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return out


def find(name, identity, results_name="results.json", root=None, earlier=None):
    """The kept results document of run ``name`` when its recorded identity equals ``identity``
    (run_folder.RunIdentity), else None: a kept run of another configuration is not this run.
    ``earlier``: values recorded the earlier way that mean the same (run_folder.read_as_now)."""
    path = os.path.join(folder(root), name)
    try:
        config = read_json(os.path.join(path, "config.json"), "")
        doc = read_json(os.path.join(path, results_name), "")
    except DatasetError:
        return None
    old = config.get("identity")
    if isinstance(old, dict):     # recorded before a key existed: read as that key's old behaviour
        old = read_as_now(with_keys_added_since(old, config, identity), identity, earlier)
    return doc if same_identity(old, identity) else None


def identity(name, root=None):
    """The recorded identity of the run kept as results/<name>; DatasetError (one line) when there is none."""
    return read_json(os.path.join(folder(root), name, "config.json"),
                     "keep the run first (make keep RUN=runs/%s)" % name)["identity"]


def same_identity(a, b):
    """Two recorded identities are one configuration; the backbone's path may differ between machines
    (its weights' sha256 is part of the identity), its folder or file name and layer may not."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return dict(a, backbone=short_backbone(a.get("backbone"))) == dict(b, backbone=short_backbone(b.get("backbone")))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run folders (runs/NAME)")
    args = ap.parse_args(argv)
    try:
        for run_dir in args.runs:
            print("kept %s -> %s" % (run_dir, os.path.relpath(keep(run_dir))), file=sys.stderr)
    except DatasetError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
