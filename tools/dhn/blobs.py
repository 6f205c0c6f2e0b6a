"""A split of stored layer outputs: the one format of frozen features (dhn.features) and of the
stored mode (dhn.stored), with its one writer, reader and encoder.

    <split>/blobs.npy      (N·V)×C×H×W, the outputs of V views per record, rows i·V … i·V+V−1 for
                           record i (dhn.encode.view_crops: 1 the centre crop, 2 and its mirror,
                           10 Caffe's oversample); float16 for the stored mode (half the disk),
                           float32 for frozen features (D×1×1: the features exactly as Caffe gave them)
    <split>/labels/        the split's label LMDB, copied record for record
    <split>/records.txt    the split's, copied
    <split>/manifest.json  databases ["labels"], blobs {file, shape, dtype, views, blob}, the
                           source split's key, img/s, "complete": true

Frozen features are the stored outputs of a whole backbone at its feature layer with one view.
The training data layer (layers/dhn_data.py) reads blobs.npy memory-mapped, one view of each
record per sample; encoding reads each record's first view. A split is written under a temporary
name and renamed when whole (dhn.convert.write_split); a finished split with the same key is
skipped.
"""
import os
import shutil
import sys
import time

import numpy as np

from . import convert, cv_net, encode, lmdb_io, netgen, split_folder
from .datasets import DatasetError

BLOBS = split_folder.BLOBS
# The stored net never trains, so on a CPU either Caffe or OpenCV's DNN module (dhn.cv_net, equal
# to Caffe's outputs within float32 rounding) can forward it; which is faster depends on the net
# (OpenCV ran SqueezeNet 2.5x as fast as Caffe, AlexNet 0.4x, docs/BENCHMARKS.md): "auto" times
# one batch of each before storing and takes the faster. A GPU run uses Caffe.
ENGINE = "auto"
ENGINE_CHOICES = cv_net.ENGINES + ("auto",)


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


def engine_rates(net, weights, batch=64, engines=cv_net.ENGINES):
    """{engine: images/s} of one timed batch of the backbone ``net`` in each CPU engine of
    ``engines`` (after one untimed batch, which allocates)."""
    import tempfile
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            n = cv_net.net_batch(engine, None, batch)
            deploy, blob = write_backbone_net(net, tmp, n)
            forward = cv_net.forward_net(deploy, weights, net.crop, blob, None, engine)
            data = forward.blobs[forward.inputs[0]].data
            data[...] = np.random.RandomState(0).uniform(-100, 100, data.shape)
            forward.forward(blobs=[blob])
            t0 = time.perf_counter()
            forward.forward(blobs=[blob])
            rates[engine] = n / (time.perf_counter() - t0)
    return rates


def choose_engine(engine, net, weights, batch=64, gpu=None, say=True):
    """The engine that stores: Caffe on a GPU, else ``engine``, or for "auto" the faster of one
    timed batch each (engine_rates), said in one line."""
    if gpu is not None:
        return "caffe"
    if engine != "auto":
        return engine
    rates = engine_rates(net, weights, batch)
    best = max(rates, key=rates.get)
    if say:
        print("dhn.blobs: storing with %s, the faster here (%s; one batch each)"
              % (best, ", ".join("%s %.0f img/s" % kv for kv in sorted(rates.items()))), file=sys.stderr)
    return best


def store_split(split_dir, out_dir, net, weights, views=1, batch=64, gpu=None, progress=True, key=None,
                engine=ENGINE, dtype="float16", flatten=False):
    """Write out_dir (see the module doc) from the converted split in split_dir: the output of the
    backbone ``net`` (netgen.Backbone, TEST phase, its last layer's top) for ``views`` views of each
    image, as ``dtype``; ``flatten``: each as D×1×1 (frozen features: the vector fch reads, whatever
    the feature layer's shape). Returns its manifest; a finished split with the same key is kept."""
    src = split_folder.check_split(split_dir)
    done = convert.finished_split(out_dir, key, placeless=True) if key is not None else None
    if done:
        return done
    engine = choose_engine(engine, net, weights, batch, gpu, say=progress)
    batch = cv_net.net_batch(engine, gpu, batch)

    def fill(tmp):
        deploy, blob = write_backbone_net(net, tmp, batch)
        forward = cv_net.forward_net(deploy, weights, net.crop, blob, gpu, engine)
        os.remove(deploy)
        out, row, t0 = None, 0, time.perf_counter()
        for block in encode.forward_batches(forward, os.path.join(split_dir, "images"), net.crop, net.mean,
                                            blob, batch, net.scale, views=views, progress=progress):
            if flatten:
                block = block.reshape(len(block), -1, 1, 1)
            if out is None:
                out = np.lib.format.open_memmap(os.path.join(tmp, BLOBS), mode="w+", dtype=dtype,
                                                shape=(src["count"] * views,) + block.shape[1:])
            if row + len(block) > len(out):
                raise DatasetError("%s: more records than its manifest's %d: convert it again" % (split_dir, src["count"]))
            out[row:row + len(block)] = block
            row += len(block)
        seconds = time.perf_counter() - t0
        if out is None or row != len(out):
            raise DatasetError("%s: %d views stored for %d records × %d views: convert it again"
                               % (split_dir, row, src["count"], views))
        shape = list(out.shape[1:])
        out.flush()
        del out
        copy_labels_and_records(split_dir, tmp)
        return dict(dataset=src["dataset"], split=src["split"], count=src["count"], num_labels=src["num_labels"],
                    databases=["labels"], blobs=dict(file=BLOBS, shape=shape, dtype=dtype, views=views, blob=blob),
                    label_counts=src["label_counts"],
                    source_split=os.path.abspath(split_dir), seconds=round(seconds, 1),
                    engine="caffe" if gpu is not None else engine,
                    images_per_s=round(src["count"] / max(seconds, 1e-9), 1),
                    created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), key=key, complete=True)

    manifest = convert.write_split(out_dir, fill)
    split_folder.read_blobs(out_dir)
    return manifest


def forward_first_views(net, blobs, manifest, out_blob, batch=64):
    """``out_blob`` of ``net`` (its input: the stored blob) for the first view of each record of a
    stored split (split_folder.read_blobs), ``batch`` records at a time: what encoding and dhn.recalibrate read."""
    n, views, data = manifest["count"], manifest["blobs"]["views"], net.blobs[net.inputs[0]]
    for start in range(0, n, batch):
        rows = blobs[start * views:min(n, start + batch) * views:views]
        if data.data.shape[0] != len(rows):
            data.reshape(len(rows), *blobs.shape[1:])
        data.data[...] = rows
        yield net.forward(blobs=[out_blob])[out_blob]


def encode_blobs(deploy_prototxt, caffemodel, split_dir, batch=64, code_blob="code", gpu=None, progress=True):
    """float32 N×K codes of a split of stored outputs (its first view per record: the centre crop)
    through a deploy net whose input is the stored blob (netgen.deploy_net with a FEATURES or
    STORED backbone)."""
    from tqdm import tqdm
    blobs, manifest = split_folder.read_blobs(split_dir)
    net = encode._load_net(deploy_prototxt, caffemodel, None, code_blob, gpu)
    data = net.blobs[net.inputs[0]]
    if tuple(data.data.shape[1:]) != tuple(blobs.shape[1:]):
        raise ValueError("%s takes %s, %s holds %s: store the split at the run's cut (or the run's features)"
                         % (deploy_prototxt, "×".join(map(str, data.data.shape[1:])), split_dir,
                            "×".join(map(str, blobs.shape[1:]))))
    name = os.path.join(*os.path.normpath(os.path.abspath(split_dir)).split(os.sep)[-2:])
    codes = []
    with tqdm(total=manifest["count"], unit="img", desc="encode %s" % name, disable=not progress, file=sys.stderr) as bar:
        for out in forward_first_views(net, blobs, manifest, code_blob, batch):
            codes.append(np.array(out, np.float32).reshape(len(out), -1))
            bar.update(len(out))
    return np.concatenate(codes)
