"""A Caffe Python data layer that reshuffles its training split every epoch.

Caffe's ``Data`` layer reads an LMDB in key order and never reshuffles: the training split is
shuffled once at conversion, so every epoch repeats nearly the same batches and each image meets
nearly the same few dozen pair partners, which starves a pairwise loss. The same group's released
Caffe code (thuml/HashNet, ``caffe/models/train/*/train_val.prototxt``) reads its training list
through ``ImageData`` with ``shuffle: true``, i.e. a new order every epoch; this layer does the
same over the project's converted splits (dhn.convert), so no image files are needed.

    layer { name: "data" type: "Python" top: "data" top: "label"
            python_param { module: "dhn_data" layer: "ShuffledData"
              param_str: "{'source': 'data/cifar10/lmdb/train', 'batch_size': 64, 'seed': 1234,
                           'crop_size': 227, 'mirror': True, 'mean': [104, 117, 123]}" } }

- ``source``: a converted split folder: ``images/`` and ``labels/``, LMDBs of Caffe Datums with
  keys ``%08d``; or a split of stored outputs (dhn.blobs: ``blobs.npy``, V views of a layer's
  output per record, read memory-mapped): a stored-mode run's, or a frozen-feature run's (its
  features, one view, D×1×1).
- Order: epoch e is ``RandomState([seed, e]).permutation(N)``; batches run on across epoch
  ends, as ImageData's do. ``shuffle: False`` reads in key order (as ``Data``).
- Transform, as Caffe's DataTransformer does in the TRAIN phase: a random ``crop_size`` crop
  (offsets uniform), a mirror with probability 1/2 when ``mirror``, then (pixel − mean) × scale.
  Batch t's crops/mirrors come from ``RandomState([seed, 2**20, t])``. Stored outputs pass
  unchanged: each sample takes one of its record's V views, drawn from the same stream.
- Resume: order and augmentation are functions of the batch number only, so ``start_iter: T``
  (dhn.train writes it when resuming from iteration T) continues the stream exactly; without it
  a resumed ``caffe train -snapshot`` restarts the stream at batch 0, as ``Data`` restarts its
  read position (Caffe's solverstate holds neither).
"""
import ast
import os
import sys

import caffe
import lmdb
import numpy as np
from caffe.proto import caffe_pb2
from dhn.lmdb_io import KEY_FORMAT, datum_array   # the project's one Datum decoder (tools/ is on PYTHONPATH)
from dhn.netgen import SEED


def _fail(msg):
    """Print first: under the caffe binary a Python exception's message is otherwise lost."""
    print("dhn_data: %s" % msg, file=sys.stderr, flush=True)
    raise ValueError(msg)


class EpochOrder:
    """Record indices batch by batch. Sample p of the stream (p = 0, 1, ...) is record
    perm_e[p mod n] of epoch e = p div n, with perm_e = RandomState([seed, e]).permutation(n)
    (key order when not shuffling): a pure function of p, so a stream started at sample
    ``start`` continues exactly where an uninterrupted one would be."""

    def __init__(self, n, seed, shuffle=True, start=0):
        self.n, self.seed, self.shuffle, self.pos = n, seed, shuffle, start
        self._epoch, self._perm = None, None

    def _order(self, epoch):
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = (np.random.RandomState([self.seed, epoch]).permutation(self.n) if self.shuffle
                          else np.arange(self.n))
        return self._perm

    def take(self, k):
        out = np.empty(k, np.int64)
        for i in range(k):
            out[i] = self._order(self.pos // self.n)[self.pos % self.n]
            self.pos += 1
        return out


class ShuffledData(caffe.Layer):
    """Tops: data (B×C×crop×crop, or B×C×H×W stored outputs) and label (B×C×1×1)."""
    defaults = {"source": "", "batch_size": 64, "seed": SEED, "crop_size": 0, "mirror": False,
                "mean": [0.0, 0.0, 0.0], "scale": 1.0, "shuffle": True, "start_iter": 0}

    def setup(self, bottom, top):
        p = dict(self.defaults)
        try:
            given = ast.literal_eval(self.param_str) if self.param_str.strip() else {}
        except (ValueError, SyntaxError) as e:
            _fail("ShuffledData: param_str %r is not a dict literal (%s)" % (self.param_str, e))
        unknown = sorted(set(given) - set(p))
        if unknown:
            _fail("ShuffledData: unknown parameter %r (known: %s)" % (unknown[0], ", ".join(sorted(p))))
        p.update(given)
        if len(bottom) != 0 or len(top) != 2:
            _fail("ShuffledData takes no bottom and has two tops (data, label)")
        self.p = p
        src = p["source"]
        # stored outputs, or features in the older format (a features/ LMDB), which read_blobs refuses with the fix
        if os.path.isfile(os.path.join(src, "blobs.npy")) or os.path.isdir(os.path.join(src, "features")):
            return self._setup_blobs(src, p)
        for db in ("images", "labels"):
            if not os.path.isfile(os.path.join(src, db, "data.mdb")):
                _fail("%s: no %s LMDB: convert the dataset first (make data)" % (os.path.join(src, db), db))
        self.kind = "images"
        self.labels = np.stack([datum_array(d).reshape(-1) for d in self._read_all(os.path.join(src, "labels"))])
        self.labels = self.labels.astype(np.float32)
        n = len(self.labels)
        self.env = lmdb.open(os.path.join(src, "images"), readonly=True, lock=False)
        if self.env.stat()["entries"] != n:
            _fail("%s: %d image records but %d labels: convert it again" % (src, self.env.stat()["entries"], n))
        first = self._image(0)
        crop = int(p["crop_size"]) or first.shape[1]
        if crop > min(first.shape[1:]):
            _fail("%s: crop_size %d is larger than its %d×%d images" % (src, crop, *first.shape[1:]))
        shape = (first.shape[0], crop, crop)
        self.mean = np.asarray(p["mean"], np.float32).reshape(-1, 1, 1)
        self.shape = shape
        self.batch = int(p["start_iter"])     # batches already consumed (a resumed run)
        self.order = EpochOrder(n, int(p["seed"]), bool(p["shuffle"]), start=self.batch * int(p["batch_size"]))

    def _setup_blobs(self, src, p):
        """A split of stored outputs (dhn.blobs): labels from its LMDB, views from blobs.npy
        (memory-mapped: 5,000 images × 2 views of SqueezeNet's pool8 are 1.7 GB of float16)."""
        from dhn.split_folder import read_blobs    # the one reader of stored outputs: checks them against the manifest
        from dhn.datasets import DatasetError
        try:
            self.stored, manifest = read_blobs(src)
        except DatasetError as e:
            _fail(str(e))
        self.kind = "blobs"
        self.labels = np.stack([datum_array(d).reshape(-1) for d in self._read_all(os.path.join(src, "labels"))])
        self.labels = self.labels.astype(np.float32)
        self.views, n = manifest["blobs"]["views"], manifest["count"]
        self.shape = tuple(self.stored.shape[1:])
        self.batch = int(p["start_iter"])
        self.order = EpochOrder(n, int(p["seed"]), bool(p["shuffle"]), start=self.batch * int(p["batch_size"]))

    @staticmethod
    def _read_all(path):
        with lmdb.open(path, readonly=True, lock=False) as env, env.begin() as txn:
            for _, value in txn.cursor():
                datum = caffe_pb2.Datum()
                datum.ParseFromString(value)
                yield datum

    def _image(self, i):
        with self.env.begin() as txn:
            value = txn.get((KEY_FORMAT % i).encode())
        datum = caffe_pb2.Datum()
        datum.ParseFromString(value)
        return datum_array(datum)

    def reshape(self, bottom, top):
        b = int(self.p["batch_size"])
        top[0].reshape(b, *self.shape)
        top[1].reshape(b, self.labels.shape[1], 1, 1)

    def forward(self, bottom, top):
        idx = self.order.take(int(self.p["batch_size"]))
        top[1].data[...] = self.labels[idx].reshape(top[1].data.shape)
        if self.kind == "blobs":
            aug = np.random.RandomState([int(self.p["seed"]), 1 << 20, self.batch])   # this batch's views
            self.batch += 1
            rows = idx * self.views + aug.randint(self.views, size=len(idx))
            top[0].data[...] = self.stored[rows]
            return
        crop, scale = self.shape[1], float(self.p["scale"])
        aug = np.random.RandomState([int(self.p["seed"]), 1 << 20, self.batch])   # this batch's crops/mirrors
        self.batch += 1
        for k, i in enumerate(idx):
            img = self._image(int(i))
            h_off = aug.randint(img.shape[1] - crop + 1)
            w_off = aug.randint(img.shape[2] - crop + 1)
            out = img[:, h_off:h_off + crop, w_off:w_off + crop]
            if self.p["mirror"] and aug.randint(2):
                out = out[:, :, ::-1]
            top[0].data[k] = (out - self.mean) * scale

    def backward(self, top, propagate_down, bottom):
        pass
