"""`make features`: forward every split once through a pretrained backbone, for the frozen-feature mode.

    python -m dhn.features --dataset cifar10 [--backbone DEPLOY.prototxt:LAYER --weights W.caffemodel
                           [--mean B,G,R] [--scale S]] [--splits train,query,database] [--batch 64]

The backbone is cut as training cuts it (the dataset's AlexNet conv1–fc7, or any Caffe deploy net
cut after LAYER, dhn.netgen) and run in Caffe's TEST phase on the converted split's images with the
encoding transform (centre crop, BGR mean, scale: dhn.encode). Per split it writes, beside the
image LMDBs, ``data/<dataset>/features/<net>-<layer>/<split>/``:

    features/      LMDB of float Datums (D×1×1 float_data), keys %08d in the split's record order
    labels/        the split's label LMDB, copied record for record
    records.txt    the split's, copied
    manifest.json  databases ["features", "labels"], dim, backbone (deploy, layer, weights sha256,
                   crop, mean, scale), source split's manifest key, img/s, "complete": true

``make train ... FEATURES=1`` then trains fch + the DHN losses on them with `caffe train` (a data
layer over ``features/``): the frozen-feature mode, an addition to the paper (DHN fine-tunes the
whole net), much faster on a CPU and labelled "frozen" wherever its results are shown.
A split is written under a temporary name and renamed when whole; a finished split whose manifest
matches (same backbone, weights and source split) is skipped.
"""
import argparse
import inspect
import json
import os
import shutil
import sys
import time

import numpy as np

from . import convert, encode, lmdb_io, netgen, paths, split_folder
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


def write_backbone_net(bb, folder, batch):
    """(path, output blob) of the backbone's TEST net (netgen.backbone_net) written into folder."""
    proto = netgen.backbone_net(bb, batch=batch)
    path = os.path.join(folder, "backbone.prototxt")
    with open(path, "w") as fh:
        fh.write(str(proto))
    return path, proto.layer[-1].top[0]


def copy_labels_and_records(split_dir, out):
    """The split's label LMDB and records.txt, copied record for record into out."""
    with lmdb_io.Writer(os.path.join(out, "labels")) as dst:
        for datum in lmdb_io.read(os.path.join(split_dir, "labels")):
            dst.put(datum)
    shutil.copyfile(os.path.join(split_dir, "records.txt"), os.path.join(out, "records.txt"))


def extract_split(split_dir, out_dir, bb, weights, batch=64, gpu=None, progress=True, key=None):
    """Write out_dir (see module doc) from the converted split in split_dir; returns its manifest."""
    src = split_folder.check_split(split_dir)
    done = convert.finished_split(out_dir, key) if key is not None else None
    if done:
        return done

    def fill(tmp):
        deploy, feature_blob = write_backbone_net(bb, tmp, batch)
        t0 = time.perf_counter()
        feats = encode.encode(deploy, weights, os.path.join(split_dir, "images"), crop=bb.crop,
                              mean_bgr=bb.mean, scale=bb.scale, batch_size=batch, code_blob=feature_blob,
                              gpu=gpu, progress=progress)
        seconds = time.perf_counter() - t0
        os.remove(deploy)
        feats = feats.reshape(len(feats), -1)
        if len(feats) != src["count"]:
            raise FeatureError("%s: %d features for %d records" % (split_dir, len(feats), src["count"]))
        with lmdb_io.Writer(os.path.join(tmp, "features")) as out:
            for row in feats:
                out.put(lmdb_io.float_datum(row))
        copy_labels_and_records(split_dir, tmp)
        return dict(dataset=src["dataset"], split=src["split"], count=int(len(feats)), num_labels=src["num_labels"],
                    databases=["features", "labels"], dim=int(feats.shape[1]), feature_blob=feature_blob,
                    label_counts=src["label_counts"], source_split=os.path.abspath(split_dir),
                    feature_stats={"mean": float(feats.mean()), "max": float(feats.max()),
                                   "row_norm": float(np.linalg.norm(feats, axis=1).mean())},
                    seconds=round(seconds, 1), images_per_s=round(len(feats) / max(seconds, 1e-9), 1),
                    created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), key=key, complete=True)

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
        t0 = time.time()
        m = extract_split(split_dir, os.path.join(out, split), bb, weights, batch, gpu, progress, key=json.loads(json.dumps(key)))
        m = dict(m, backbone=backbone)
        done[split] = m
        print("dhn.features: %s/%s: %d × %d features (%.1f img/s) -> %s%s"
              % (dataset, split, m["count"], m["dim"], m["images_per_s"], os.path.join(out, split),
                 "" if time.time() - t0 > 5 else " (up to date)"), file=sys.stderr)
    return out, done


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
