"""A converted split folder (dhn.convert, dhn.subset), or a split of stored outputs (dhn.blobs:
frozen features, the stored mode): reading it back.

    <split>/manifest.json, <split>/images/ (or blobs.npy), <split>/labels/, <split>/records.txt

What every module that reads a split uses: the checked manifest, the label matrix, and the
fingerprint a run records of its training split. Writing splits is dhn.convert's.
"""
import hashlib
import json
import os

import numpy as np

from . import lmdb_io
from .datasets import DatasetError, read_json

BLOBS = "blobs.npy"     # a split of stored outputs (dhn.blobs): frozen features, or the stored mode's


def check_split(split_dir):
    """The manifest of a finished split, after checking that its images and labels LMDBs
    hold the same number of records (the manifest's count). DatasetError otherwise."""
    mpath = os.path.join(split_dir, "manifest.json")
    if not os.path.isfile(mpath):
        raise DatasetError("%s: not a finished conversion (no manifest.json): run python -m dhn.convert"
                           % split_dir)
    manifest = read_json(mpath, "delete %s and build it again (make data, or make features for a features split)"
                         % split_dir)
    if not isinstance(manifest, dict) or not manifest.get("complete"):
        raise DatasetError("%s: conversion not complete: delete it and convert again" % mpath)
    counts = {}
    dbs = manifest.get("databases", ["images", "labels"])   # a split of stored outputs: labels (and blobs.npy)
    for db in dbs:
        path = os.path.join(split_dir, db)
        if not os.path.isfile(os.path.join(path, "data.mdb")):
            raise DatasetError("%s: missing LMDB: delete %s and convert again" % (path, split_dir))
        counts[db] = lmdb_io.count(path)
    if counts[dbs[0]] != counts["labels"]:
        raise DatasetError("%s: %s/ holds %d records but labels/ holds %d: the conversion is damaged; "
                           "delete %s and convert again" % (split_dir, dbs[0], counts[dbs[0]], counts["labels"], split_dir))
    if counts[dbs[0]] != manifest["count"]:
        raise DatasetError("%s: %d records but manifest.json says %d: delete %s and convert again"
                           % (split_dir, counts[dbs[0]], manifest["count"], split_dir))
    return manifest


def read_split_labels(split_dir):
    """N×C uint8 0/1 label matrix of a converted split, in record order (after check_split)."""
    manifest = check_split(split_dir)
    c = manifest["num_labels"]
    out = np.zeros((manifest["count"], c), np.uint8)
    n = 0
    for n, datum in enumerate(lmdb_io.read(os.path.join(split_dir, "labels")), 1):
        vec = lmdb_io.datum_array(datum).reshape(-1)
        if vec.size != c:
            raise DatasetError("%s: record %d has %d labels, manifest says %d" % (split_dir, n - 1, vec.size, c))
        if vec.max() > 1:
            raise lmdb_io.damaged(os.path.join(split_dir, "labels"), "record %d holds a label other than 0 or 1" % (n - 1))
        out[n - 1] = vec
    if n != manifest["count"]:
        raise DatasetError("%s: read %d label records, expected %d" % (split_dir, n, manifest["count"]))
    return out


def split_key(split_dir):
    """A short fingerprint of a converted split (or one of stored outputs), what a run records of
    its training split: sha256 of its manifest's key read placeless (what the split holds, not
    where its inputs sat), so that the same split made in another checkout or on another machine
    has the same fingerprint and its runs count as done there (dhn.kept)."""
    return _digest(placeless(_manifest_key(split_dir)))


def split_key_with_paths(split_dir):
    """The fingerprint runs recorded before split_key read keys placeless: sha256 of the whole key,
    absolute paths and all. Read only to recognise such a record (run_folder.check_same_config)."""
    return _digest(_manifest_key(split_dir))


def _manifest_key(split_dir):
    return read_json(os.path.join(split_dir, "manifest.json"),
                     "delete %s and build it again (make data / make features)" % split_dir).get("key")


def _digest(key):
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def placeless(value):
    """A split's key without where things sat: an absolute path (a backbone's weights file, an image
    list, an image folder) by its file or folder name, beside the sha256 the key records of a file;
    a backbone's DEPLOY.prototxt:LAYER by short_backbone's name."""
    if isinstance(value, dict):
        return {k: short_backbone(v) if k == "spec" else placeless(v) for k, v in value.items()}
    if isinstance(value, list):
        return [placeless(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return os.path.basename(os.path.normpath(value))
    return value


def short_backbone(spec):
    """DEPLOY.prototxt:LAYER -> its model folder (or file) and layer; anything else as it is: the
    name of a backbone wherever its files sit."""
    if not isinstance(spec, str) or ":" not in spec:
        return spec
    path, _, layer = spec.rpartition(":")
    name = os.path.splitext(os.path.basename(path))[0]
    if name in ("deploy", "train_val"):
        name = os.path.basename(os.path.dirname(path))
    return "%s:%s" % (name, layer)


def read_blobs(split_dir):
    """(blobs memmap (N·V)×C×H×W, manifest) of a finished split of stored outputs; DatasetError otherwise."""
    manifest = check_split(split_dir)
    path = os.path.join(split_dir, BLOBS)
    if not manifest.get("blobs"):
        raise DatasetError("%s: no stored outputs (%s): make them again (make features, or make train ... UPPER=)%s"
                           % (split_dir, BLOBS, "; a features/ LMDB is the older format, which make features converts"
                              if "features" in manifest.get("databases", []) else ""))
    try:
        blobs = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise DatasetError("%s: unreadable (%s): delete %s and store it again (make features, or make train ... UPPER=)"
                           % (path, e, split_dir)) from None
    want = manifest["count"] * manifest["blobs"]["views"]
    if blobs.shape[0] != want or list(blobs.shape[1:]) != manifest["blobs"]["shape"]:
        raise DatasetError("%s: holds %s where the manifest says %d×%s: delete %s and store it again"
                           % (path, "×".join(map(str, blobs.shape)), want, manifest["blobs"]["shape"], split_dir))
    return blobs, manifest


def first_views(split_dir):
    """N×D float32: each record's first view (the centre crop), flattened, in record order; what
    the baselines read of frozen features."""
    blobs, manifest = read_blobs(split_dir)
    return np.asarray(blobs[::manifest["blobs"]["views"]], np.float32).reshape(manifest["count"], -1)
