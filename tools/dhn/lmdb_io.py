"""Caffe Datum records in LMDB: the one reader/writer every tool uses.

Keys are zero-padded record indices (``%08d``), because LMDB iterates in key order and
Caffe's Data layer reads in that order: the images DB and the labels DB line up by key.
Images are stored as Caffe does, C×H×W uint8 in BGR order, raw or encoded (PNG/JPEG bytes
with ``encoded = True``, which Caffe's Data layer decodes with OpenCV).
"""
import os

import lmdb
import numpy as np
from caffe.proto import caffe_pb2
from dhn_data import datum_array  # noqa: F401  (the one Datum decoder; layers/ is on PYTHONPATH)

KEY_FORMAT = "%08d"
COMMIT_EVERY = 1000


def image_datum(bgr_hwc, label=0, encoding=None):
    """A Datum for an H×W×3 BGR uint8 image; encoding None (raw), 'png' or 'jpg'."""
    datum = caffe_pb2.Datum()
    datum.label = int(label)
    if encoding is None:
        chw = np.ascontiguousarray(bgr_hwc.transpose(2, 0, 1))
        datum.channels, datum.height, datum.width = chw.shape
        datum.data = chw.tobytes()
    else:
        import cv2  # here, not at the top: raw records need no OpenCV (the GPU bundle has none)
        ok, buf = cv2.imencode("." + encoding, bgr_hwc)
        if not ok:
            raise ValueError("OpenCV could not encode an image as %s" % encoding)
        datum.channels, datum.height, datum.width = bgr_hwc.shape[2], bgr_hwc.shape[0], bgr_hwc.shape[1]
        datum.data = buf.tobytes()
        datum.encoded = True
    return datum


def float_datum(vector):
    """A Datum holding a float feature vector (D×1×1 float_data), as Caffe's Data layer reads one."""
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = vec.size, 1, 1
    datum.float_data.extend(vec.tolist())
    return datum


def label_datum(labels):
    """A Datum holding a label vector (C×1×1 uint8), read by a second Data layer as N×C×1×1."""
    vec = np.asarray(labels, dtype=np.uint8).reshape(-1)
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = vec.size, 1, 1
    datum.data = vec.tobytes()
    return datum


class Writer:
    """Append Datums under consecutive keys; commits in batches. Use as a context manager."""

    def __init__(self, path, map_size=1 << 40):
        # meminit: zero-filled page padding, so the same records always give the same file bytes
        self.env = lmdb.open(path, map_size=map_size, subdir=True, meminit=True, map_async=True)
        self.txn = self.env.begin(write=True)
        self.count = 0

    def put(self, datum):
        self.put_bytes(datum.SerializeToString())

    def put_bytes(self, value):
        """Append an already serialized Datum."""
        self.txn.put((KEY_FORMAT % self.count).encode(), value)
        self.count += 1
        if self.count % COMMIT_EVERY == 0:
            self.txn.commit()
            self.txn = self.env.begin(write=True)

    def close(self):
        if self.txn is not None:
            self.txn.commit()
            self.txn = None
            self.env.sync()
            self.env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None and self.txn is not None:
            self.txn.abort()
            self.txn = None
            self.env.close()
        else:
            self.close()


class Reader:
    """Random access to the serialized Datum of record i. Use as a context manager."""

    def __init__(self, path):
        if not os.path.isdir(path):
            raise FileNotFoundError("%s: no such LMDB" % path)
        self.path = path
        self.env = lmdb.open(path, readonly=True, lock=False)
        self.txn = self.env.begin()

    def get_bytes(self, i):
        value = self.txn.get((KEY_FORMAT % i).encode())
        if value is None:
            raise KeyError("%s: no record %d" % (self.path, i))
        return value

    def close(self):
        self.txn.abort()
        self.env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def count(path):
    with lmdb.open(path, readonly=True, lock=False) as env:
        return env.stat()["entries"]


def read(path, start=0, stop=None):
    """Yield Datums in key order, records [start, stop)."""
    if not os.path.isdir(path):
        raise FileNotFoundError("%s: no such LMDB (convert the dataset first: make data DATASET=...)" % path)
    env = lmdb.open(path, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            cur = txn.cursor()
            if not cur.set_range((KEY_FORMAT % start).encode()):
                return
            for i, (_, value) in enumerate(cur, start):
                if stop is not None and i >= stop:
                    break
                datum = caffe_pb2.Datum()
                datum.ParseFromString(value)
                yield datum
    finally:
        env.close()
