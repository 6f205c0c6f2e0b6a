"""Rewrite the training-split fingerprint that runs recorded with paths in it
(split_folder.split_key_with_paths, the only form before 2026-12-07) as the placeless one
(split_folder.split_key), in config.json's identity and in every results*.json, for run folders
and kept results of this checkout. Each record is verified first: the key its run saw (this
checkout's split, with the weights file and backbone the run recorded) must hash to the recorded
value; a record that does not verify is named and left as it is.

    . tools/env.sh && python tools/lab/placeless_train_split.py [--write] [FOLDER ...]
      (default: results/* and runs/*; without --write it only says what it would change)
"""
import copy
import glob
import json
import os
import sys

from dhn import paths, split_folder
from dhn.atomic import write_atomic


def local_split(data_dir, root):
    """The run's training split in this checkout (its recorded data folder, or the same path under this root)."""
    for d in (data_dir, os.path.join(root, data_dir[data_dir.find("/data/") + 1:]) if "/data/" in data_dir else None):
        if d and os.path.isfile(os.path.join(d, "train", "manifest.json")):
            return os.path.join(d, "train")
    return None


def key_the_run_saw(split, config):
    """This checkout's split key with the weights path and backbone spec the run recorded (what a
    stored or features split's key held where the run stored it)."""
    key = copy.deepcopy(json.load(open(os.path.join(split, "manifest.json")))["key"])
    bb = key.get("backbone") if isinstance(key, dict) else None
    if isinstance(bb, dict):
        bb["weights"] = os.path.abspath(config["weights"]) if config.get("weights") else bb.get("weights")
        bb["spec"] = config["identity"]["backbone"]
    return key


def main(argv):
    write = "--write" in argv
    root = paths.root()
    folders = [a for a in argv if a != "--write"] or sorted(glob.glob(os.path.join(root, "results", "*")) +
                                                           glob.glob(os.path.join(root, "runs", "*")))
    for folder in folders:
        path = os.path.join(folder, "config.json")
        if not os.path.isfile(path):
            continue
        config = json.load(open(path))
        recorded = config.get("identity", {}).get("train_split")
        split = local_split(config.get("data_dir") or "", root)
        if not recorded or split is None:
            print("skip %s: %s" % (folder, "no train_split" if not recorded else "its split is not here"))
            continue
        new = split_folder.split_key(split)
        if recorded == new:
            print("same %s %s" % (folder, new))
            continue
        if split_folder._digest(key_the_run_saw(split, config)) != recorded:
            print("UNVERIFIED %s: recorded %s, not the key of %s as the run saw it" % (folder, recorded, split))
            continue
        print("%s %s: %s -> %s" % ("rewrote" if write else "would rewrite", folder, recorded, new))
        if write:
            config["identity"]["train_split"] = new
            write_atomic(path, json.dumps(config, indent=1, sort_keys=folder.startswith(os.path.join(root, "results"))) + "\n")
            for res in glob.glob(os.path.join(folder, "results*.json")):
                doc = json.load(open(res))
                if doc.get("train_split") == recorded:
                    doc["train_split"] = new
                    write_atomic(res, json.dumps(doc, indent=1, sort_keys=folder.startswith(os.path.join(root, "results"))) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
