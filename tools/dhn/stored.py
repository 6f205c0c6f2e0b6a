"""Stored lower-layer outputs: what lets a CPU fine-tune a pretrained net's upper layers for
thousands of iterations (the ``UPPER=`` mode of `make train`).

    python -m dhn.stored --dataset cifar10 --backbone DEPLOY.prototxt:LAYER --weights W.caffemodel \\
                         --cut CUT [--views 2] [--splits train,query,database]

The backbone (dhn.netgen.foreign_backbone, cut after LAYER) is split after layer CUT: the lower
part (input → CUT, with the in-place layers on CUT's output other than Dropout) runs once per
image in Caffe's TEST phase, and its outputs are stored; the upper part (CUT's Dropout, if any,
→ LAYER) trains with fch on them (netgen.train_net with stored_backbone()). For SqueezeNet cut
at ``pool8`` (``UPPER=1``, default_cut) the upper part is fire9 → drop9 → conv_final → ReLU → pool_final.

Per split, beside the image LMDBs (``data/<dataset>/lmdb``), ``data/<dataset>/stored/<net>-<cut>/<split>/``
holds the split's outputs at CUT in the one format of stored outputs (dhn.blobs: ``blobs.npy``,
float16 (N·V)×C×H×W, V views per image; ``labels/``, ``records.txt``, ``manifest.json`` with the
backbone, the cut and the source split's key). Frozen features are the same format at the
feature layer (dhn.features).

The training split gets ``views`` views (default 2: the centre crop and its mirror; the data
layer draws one per image and batch), query and database one (the centre crop, as encoding
does). float16 halves the disk (SqueezeNet pool8 or fire9/concat: 512×13×13, 173 kB a view) at a
relative error of about 1e-3, far below what changes a sign. A split is written under a
temporary name and renamed when whole; a finished split with the same key is skipped, so an
interrupted store resumes split by split.
"""
import argparse
import json
import os
import sys
import time
from dataclasses import replace

import numpy as np

from . import blobs, convert, cv_net, encode, features, netgen, paths, split_folder
from .datasets import DatasetError, file_digest

TRAIN_VIEWS = 2


def split_backbone(bb, cut):
    """(lower backbone, upper layers, cut blob) of a foreign backbone (netgen.foreign_backbone)
    split after layer ``cut``. ValueError names the net and the layer when the cut is not a
    clean one (an upper layer reading a blob from below it) or leaves nothing to train."""
    layers = list(bb.layers)
    names = [layer.name for layer in layers]
    if cut not in names:
        raise ValueError("%s: no layer %r below %s (its layers: %s)" % (bb.name, cut, bb.feature, ", ".join(names)))
    i = names.index(cut)
    blob = layers[i].top[0]
    j = i + 1    # deterministic in-place layers on the cut's output stay below it (stored as TEST computes them)
    while j < len(layers) and list(layers[j].bottom) == [blob] and list(layers[j].top) == [blob] \
            and layers[j].type != "Dropout":
        j += 1
    lower, upper = layers[:j], layers[j:]
    have = {blob}
    for layer in upper:
        missing = [b for b in layer.bottom if b not in have]
        if missing:
            raise ValueError("%s: cut at %s: layer %s above it reads %s from below it; cut after that layer instead"
                             % (bb.name, cut, layer.name, missing[0]))
        have.update(layer.top)
    if not any(layer.type in ("Convolution", "InnerProduct") for layer in upper):
        raise ValueError("%s: nothing learnable between %s and %s: that is the frozen-feature mode (FEATURES=1)"
                         % (bb.name, cut, bb.feature))
    return replace(bb, layers=tuple(lower), feature=blob), upper, blob


def default_cut(bb):
    """The cut ``UPPER=1`` means: below the backbone's last learnable layer and the module that
    feeds it, which then train. A module is Caffe's naming of a Fire or Inception block, layers
    named MODULE/…: SqueezeNet's conv_final reads fire9/concat, so the cut is below fire9, at
    pool8, and fire9 trains with conv_final (held-out validation MAP 0.5455 against 0.5302 with
    conv_final alone at fire9/concat, 48 bits: docs/lab/2026-12-07-stored-mode-defaults.md). A net
    without modules is cut below its last learnable layer (AlexNet's fc7: at fc6)."""
    layers = list(bb.layers)
    last = max((i for i, layer in enumerate(layers) if layer.type in ("Convolution", "InnerProduct")), default=None)
    if last is None:
        raise ValueError("%s: no learnable layer up to %s: nothing to fine-tune above a cut" % (bb.name, bb.feature))
    below = _producer(layers, last, layers[last].bottom[0])
    if below is None:
        raise ValueError("%s: %s reads the input: nothing below it to store" % (bb.name, layers[last].name))
    module = below.name.split("/")[0] + "/" if "/" in below.name else None
    if module:
        first = next(i for i, layer in enumerate(layers) if layer.name.startswith(module))
        outside = _producer(layers, first, layers[first].bottom[0]) if layers[first].bottom else None
        if outside is not None and not outside.name.startswith(module):
            below = outside
    return below.name


def _producer(layers, i, blob):
    """The last layer before layers[i] whose top is ``blob`` (an in-place layer's is the layer it
    follows: the cut is named by the layer that makes the blob), or None."""
    makers = [layer for layer in layers[:i] if blob in layer.top and blob not in layer.bottom]
    return makers[-1] if makers else None


def cut_name(cut):
    """A folder-safe name of a cut layer: fire9/concat -> fire9_concat."""
    return cut.replace("/", "_")


def run_tag(bb, cut):
    """What names a stored-mode run folder after its dataset, bits and variant: <net>-upper-<cut>."""
    return "%s-upper-%s" % (bb.name, cut_name(cut))


def stored_folder(data_dir, bb, cut):
    """Where store() keeps a backbone's outputs at a cut: beside the converted images,
    data/<dataset>/lmdb -> data/<dataset>/stored/<net>-<cut>[<transform>]."""
    return os.path.join(os.path.dirname(os.path.abspath(data_dir)), "stored", "%s-%s%s" % (
        bb.name, cut_name(cut), features.transform_suffix(bb.mean, bb.scale)))


def store(dataset, spec, weights, cut, splits=("train", "query", "database"), views=TRAIN_VIEWS, mean=None,
          scale=None, data_dir=None, out=None, batch=64, gpu=None, progress=True, engine=blobs.ENGINE):
    """Store the lower part's outputs of each split (the training split with ``views`` views, the
    others with the centre crop); returns (stored folder, {split: manifest}). Skips finished splits."""
    bb, weights, _ = features.backbone_of(dataset, spec, mean, scale, weights)
    if bb.kind != netgen.FOREIGN:
        raise ValueError("the stored mode cuts a DEPLOY.prototxt:LAYER backbone: pass --backbone (make: BACKBONE=)")
    features.check_weights(bb, weights, spec)
    lower, _, _ = split_backbone(bb, cut)
    root = paths.root()
    data_dir = data_dir or os.path.join(root, "data", dataset, "lmdb")
    out = out or stored_folder(data_dir, bb, cut)
    backbone = dict(name=bb.name, spec=spec, cut=cut, weights=os.path.abspath(weights),
                    weights_sha256=file_digest(weights, "sha256"), crop=bb.crop, mean=list(bb.mean),
                    scale=bb.scale)
    done = {}
    for split in splits:
        split_dir = os.path.join(data_dir, split)
        if not os.path.isfile(os.path.join(split_dir, "manifest.json")):
            raise DatasetError("%s: no converted %s split: run `make data DATASET=%s` first" % (split_dir, split, dataset))
        v = views if split == "train" else 1
        key = json.loads(json.dumps(dict(backbone=backbone, views=v,
                                         source_key=split_folder.check_split(split_dir).get("key"))))
        fresh = convert.finished_split(os.path.join(out, split), key, placeless=True) is None
        if fresh and engine == "auto":
            engine = blobs.choose_engine(engine, lower, weights, batch, gpu, say=progress)
        m = blobs.store_split(split_dir, os.path.join(out, split), lower, weights, v, batch, gpu, progress, key=key,
                        engine=engine)
        done[split] = m
        print("dhn.stored: %s/%s: %d images × %d views of %s %s, %.2f GB (%.1f img/s) -> %s%s"
              % (dataset, split, m["count"], v, cut, "×".join(map(str, m["blobs"]["shape"])),
                 os.path.getsize(os.path.join(out, split, blobs.BLOBS)) / 1e9, m["images_per_s"], os.path.join(out, split),
                 "" if fresh else " (up to date)"), file=sys.stderr)
    return out, done


def expected_seconds(bb, cut, weights, bits, to_store, iters, to_encode, batch=64, engine=blobs.ENGINE):
    """What a stored-mode run will cost on this machine, from one batch of each net timed now:
    {store, train, encode: (seconds, rate)} for ``to_store`` lower-part forwards (images × views),
    ``iters`` training steps (forward and backward of the layers above the cut and fch; the data
    layer and losses are not counted) and ``to_encode`` images through the stored deploy net."""
    import tempfile
    import caffe
    lower, upper, blob = split_backbone(bb, cut)
    store_rate = max(blobs.engine_rates(lower, weights, batch, cv_net.ENGINES if engine == "auto" else (engine,)).values())
    with tempfile.TemporaryDirectory() as tmp:
        deploy, _ = blobs.write_backbone_net(lower, tmp, 1)
        net = cv_net.forward_net(deploy, weights, lower.crop, blob, None, "caffe")
        shape = net.forward(blobs=[blob])[blob].shape[1:]
        proto = netgen.deploy_net("cifar10", bits, batch, backbone=netgen.stored_backbone(bb, upper, blob, shape, cut),
                                  feature_norm=True)
        proto.force_backward = True
        path = os.path.join(tmp, "upper.prototxt")
        with open(path, "w") as fh:
            fh.write(str(proto))
        up = caffe.Net(path, caffe.TEST)
        up.blobs[up.inputs[0]].data[...] = np.random.RandomState(1).gamma(1.0, 1.0, up.blobs[up.inputs[0]].data.shape)
        up.blobs["code"].diff[...] = 1e-3
        up.forward()
        up.backward()        # the first pass allocates and fills caches: timed from the second on
        t0 = time.perf_counter()
        up.forward()
        forward = time.perf_counter() - t0
        t0 = time.perf_counter()
        up.backward()
        step = forward + time.perf_counter() - t0
    return dict(store=(to_store / store_rate, store_rate), train=(iters * step, step),
                encode=(to_encode * forward / batch, batch / forward))


def describe_expected(expected, to_store, iters, to_encode):
    """One line for the user, from expected_seconds()."""
    def minutes(sec):
        return "%.0f min" % (sec / 60) if sec >= 90 else "%.0f s" % sec
    total = sum(sec for sec, _ in expected.values())
    return ("expected ≈ %s here: store %s views ≈ %s (%.0f img/s), train %s iterations ≈ %s (%.2f s each), "
            "encode %s ≈ %s (%.0f img/s); one batch of each timed just now"
            % (minutes(total), format(to_store, ","), minutes(expected["store"][0]), expected["store"][1],
               format(iters, ","), minutes(expected["train"][0]), expected["train"][1], format(to_encode, ","),
               minutes(expected["encode"][0]), expected["encode"][1]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="cifar10", choices=sorted(k for k in netgen.DATASETS if k != "demo"))
    ap.add_argument("--backbone", required=True, help="DEPLOY.prototxt:LAYER")
    ap.add_argument("--weights", required=True, help="its caffemodel")
    ap.add_argument("--cut", required=True, help="the layer whose outputs are stored (e.g. fire9/concat)")
    ap.add_argument("--views", type=int, default=TRAIN_VIEWS, choices=encode.VIEWS,
                    help="views per training image (default %(default)s: centre crop and mirror)")
    ap.add_argument("--engine", choices=blobs.ENGINE_CHOICES, default=blobs.ENGINE,
                    help="what forwards the lower part on a CPU (default %(default)s; a GPU run uses Caffe)")
    features.add_split_args(ap)
    args = ap.parse_args(argv)
    try:
        store(args.dataset, args.backbone, args.weights, args.cut, tuple(args.splits.split(",")), args.views,
              args.mean, args.scale, args.data_dir, args.out, args.batch, args.gpu, engine=args.engine)
    except (features.FeatureError, DatasetError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
