"""`make features`: forward every split once through a pretrained backbone, for the frozen-feature mode.

    python -m dhn.features --dataset cifar10 [--backbone DEPLOY.prototxt:LAYER --weights W.caffemodel
                           [--mean B,G,R] [--scale S]] [--splits train,query,database] [--batch 64]

The backbone is cut as training cuts it (the dataset's AlexNet conv1–fc7, or any Caffe deploy net
cut after LAYER, dhn.netgen) and run in Caffe's TEST phase on the converted split's images with the
encoding transform (centre crop, BGR mean, scale: dhn.encode). Features are the stored mode's
outputs at the feature layer with one view: per split, beside the image LMDBs,
``data/<dataset>/features/<net>-<layer>/<split>/`` holds the one format of stored outputs
(dhn.blobs): ``blobs.npy`` (N×D×1×1 float32, the split's record order), ``labels/``,
``records.txt`` and ``manifest.json`` (blobs {shape, dtype, views: 1}, backbone, the source
split's key, img/s, "complete": true). A features folder of the older format (a ``features/``
LMDB of float Datums) is converted to it, value for value, the next time ``make features`` runs.

``make train ... FEATURES=1`` then trains fch + the DHN losses on them with `caffe train` (the
data layer reads blobs.npy): the frozen-feature mode, an addition to the paper (DHN fine-tunes the
whole net), much faster on a CPU and labelled "frozen" wherever its results are shown.
A split is written under a temporary name and renamed when whole; a finished split whose manifest
matches (same backbone, weights and source split) is skipped.
"""
import argparse
import inspect
import json
import os
import sys

import numpy as np

from . import blobs, convert, encode, lmdb_io, netgen, paths, split_folder
from .datasets import DatasetError, file_digest


class FeatureError(ValueError):
    """One line: the file and the fix."""


def transform_suffix(mean, scale):
    """'' for a foreign backbone's default input transform (netgen.foreign_backbone's mean and
    scale), else '-mean<B>,<G>,<R>-scale<S>': features of other inputs get a folder of their own
    instead of overwriting these (the default folder keeps its name)."""
    params = inspect.signature(netgen.foreign_backbone).parameters
    if [float(v) for v in mean] == [float(v) for v in params["mean"].default] and \
            float(scale) == float(params["scale"].default):
        return ""
    return "-mean%s-scale%g" % (",".join("%g" % v for v in mean), scale)


def backbone_of(dataset, spec=None, mean=None, scale=None, weights=None):
    """(netgen.Backbone, weights path, features name) for the dataset's own backbone or DEPLOY:LAYER;
    the name carries the input transform when it is not the default (transform_suffix)."""
    root = paths.root()
    if spec:
        try:
            bb = netgen.foreign_backbone(spec, **({"mean": mean} if mean else {}), scale=scale or 1.0)
        except ValueError as e:
            raise FeatureError(str(e)) from None
        layer = spec.rpartition(":")[2] + transform_suffix(bb.mean, bb.scale)
    else:
        name = netgen.DATASETS[dataset]["backbone"]
        bb = netgen.built_backbone(name)
        layer = "fc7"
        weights = weights or paths.alexnet_weights(root)
    if not weights or not os.path.isfile(weights):
        raise FeatureError("%s: the backbone's pretrained caffemodel is missing: pass --weights (make: WEIGHTS=)%s"
                           % (weights or spec, "" if spec else ", or run `make weights`"))
    return bb, weights, "%s-%s" % (bb.name, layer)


def check_weights(bb, weights, spec):
    """Refuse (FeatureError) a caffemodel whose blobs do not fit the backbone net, before any
    split: Caffe would abort the process on it (encode.weights_mismatch)."""
    import tempfile

    import caffe
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt") as fh:
        fh.write(str(netgen.backbone_net(bb, batch=1)))
        fh.flush()
        net = caffe.Net(fh.name, caffe.TEST)
    try:
        bad = encode.weights_mismatch(net, weights)
    except ValueError as e:
        raise FeatureError(str(e)) from None
    if bad:
        raise FeatureError("%s does not fit %s (%s): pass the caffemodel of that net (--weights, make: WEIGHTS=)"
                           % (weights, spec or "the dataset's AlexNet", bad))


def features_dir(dataset, name, root=None):
    root = root or paths.root()
    return os.path.join(root, "data", dataset, "features", name)


# The engine that forwards the backbone for features: Caffe, as for every frozen run measured so
# far (OpenCV's outputs agree to float32 rounding, but would not be the same bytes: dhn.cv_net).
ENGINE = "caffe"


def _store_features(split_dir, out_dir, bb, weights, key, batch, gpu, progress):
    """Write out_dir: the backbone's features of the converted split in split_dir, stored outputs
    (dhn.blobs) at the feature layer, one view, float32, flattened to D×1×1."""
    return blobs.store_split(split_dir, out_dir, bb, weights, views=1, batch=batch, gpu=gpu, progress=progress,
                             key=key, engine=ENGINE, dtype="float32", flatten=True)


def _convert_older(out_dir, key):
    """Rewrite a finished features split of the older format (a features/ LMDB of float Datums) as
    stored outputs, record for record, no forward pass. Its key stays: a run records the training
    split's fingerprint (split_folder.split_key), so converted features keep their runs' identity."""
    old = split_folder.check_split(out_dir)

    def fill(tmp):
        feats = np.lib.format.open_memmap(os.path.join(tmp, blobs.BLOBS), mode="w+", dtype=np.float32,
                                          shape=(old["count"], old["dim"], 1, 1))
        n = 0
        for n, datum in enumerate(lmdb_io.read(os.path.join(out_dir, "features")), 1):
            feats[n - 1] = lmdb_io.datum_array(datum).reshape(-1, 1, 1)
        if n != old["count"]:
            raise FeatureError("%s: %d feature records where its manifest says %d: make features again (delete it)"
                               % (out_dir, n, old["count"]))
        feats.flush()
        del feats
        blobs.copy_labels_and_records(out_dir, tmp)
        manifest = {k: v for k, v in old.items() if k not in ("dim", "feature_blob", "feature_stats")}
        return dict(manifest, databases=["labels"], key=key, converted="from the features/ LMDB format",
                    blobs=dict(file=blobs.BLOBS, shape=[old["dim"], 1, 1], dtype="float32", views=1,
                               blob=old.get("feature_blob")))

    return convert.write_split(out_dir, fill)


def extract(dataset, splits=("train", "query", "database"), spec=None, weights=None, mean=None, scale=None,
            data_dir=None, out=None, batch=64, gpu=None, progress=True):
    """Features of each split; returns (features folder, {split: manifest})."""
    bb, weights, name = backbone_of(dataset, spec, mean, scale, weights)
    check_weights(bb, weights, spec)
    root = paths.root()
    data_dir = data_dir or os.path.join(root, "data", dataset, "lmdb")
    out = out or features_dir(dataset, name)
    weights_sha = file_digest(weights, "sha256")
    backbone = dict(name=bb.name, spec=spec or netgen.DATASETS[dataset]["backbone"] + ":fc7",
                    weights=os.path.abspath(weights), weights_sha256=weights_sha,
                    crop=bb.crop, mean=list(bb.mean), scale=bb.scale)
    done = {}
    for split in splits:
        split_dir = os.path.join(data_dir, split)
        if not os.path.isfile(os.path.join(split_dir, "manifest.json")):
            raise FeatureError("%s: no converted %s split: run `make data DATASET=%s` first" % (split_dir, split, dataset))
        key = dict(backbone=backbone, source_key=split_folder.check_split(split_dir).get("key"))
        key = json.loads(json.dumps(key))
        out_dir = os.path.join(out, split)
        m = convert.finished_split(out_dir, key, placeless=True)      # the same request made before
        if m and "features" in m.get("databases", []):
            m, said = _convert_older(out_dir, key), " (converted from the older features/ LMDB)"
        elif m:
            said = " (up to date)"
        else:
            m, said = _store_features(split_dir, out_dir, bb, weights, key, batch, gpu, progress), ""
        m = dict(m, backbone=backbone)
        done[split] = m
        print("dhn.features: %s/%s: %d × %d features (%.1f img/s) -> %s%s"
              % (dataset, split, m["count"], dim(m), m["images_per_s"], out_dir, said), file=sys.stderr)
    return out, done


def dim(manifest):
    """The features' length D of a features split's manifest (its stored outputs are D×1×1)."""
    return int(np.prod(manifest["blobs"]["shape"]))


def add_split_args(ap):
    """The options dhn.features and dhn.stored share: the input transform, which splits, where, how."""
    ap.add_argument("--mean", type=lambda v: tuple(float(x) for x in v.split(",")), help="B,G,R")
    ap.add_argument("--scale", type=float)
    ap.add_argument("--splits", default="train,query,database")
    ap.add_argument("--data", dest="data_dir")
    ap.add_argument("--out")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--gpu", type=int)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="cifar10", choices=sorted(k for k in netgen.DATASETS if k != "demo"))
    ap.add_argument("--backbone", help="DEPLOY.prototxt:LAYER (default: the dataset's AlexNet, fc7)")
    ap.add_argument("--weights", help="its caffemodel (default weights/bvlc_alexnet.caffemodel)")
    add_split_args(ap)
    args = ap.parse_args(argv)
    try:
        extract(args.dataset, tuple(args.splits.split(",")), args.backbone, args.weights, args.mean, args.scale,
                args.data_dir, args.out, args.batch, args.gpu)
    except (FeatureError, DatasetError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
