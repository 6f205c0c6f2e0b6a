"""Caffe Datum records in LMDB: the one reader/writer every tool uses.

Keys are zero-padded record indices (``%08d``), because LMDB iterates in key order and
Caffe's Data layer reads in that order: the images DB and the labels DB line up by key.
Images are stored as Caffe does, C×H×W uint8 in BGR order, raw or encoded (PNG/JPEG bytes
with ``encoded = True``, which Caffe's Data layer decodes with OpenCV).

A damaged LMDB (lmdb.Error, a missing record, a record that is no Datum of the size it
says) is reported by every reader here as a DatasetError: one line naming the LMDB and the fix.
"""
import ctypes
import os
import signal

import lmdb
import numpy as np
from caffe.proto import caffe_pb2
from google.protobuf.message import DecodeError

from .datasets import DatasetError

KEY_FORMAT = "%08d"
COMMIT_EVERY = 1000


def datum_array(datum):
    """C×H×W array of a Datum: uint8 for images (encoded ones decoded to BGR with OpenCV, as
    Caffe's Data layer does), float32 for float_data (feature records)."""
    if datum.encoded:
        import cv2  # only encoded records need OpenCV (the GPU bundle has none)
        img = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("an encoded Datum does not decode as an image")
        return img.transpose(2, 0, 1)
    if datum.data:
        return np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)
    return np.asarray(datum.float_data, np.float32).reshape(datum.channels, datum.height, datum.width)


def damaged(path, what):
    """The one error for a damaged LMDB: which one, what is wrong, and the fix."""
    split = os.path.dirname(os.path.normpath(path)) or "."
    what = str(what)
    if what.startswith(path + ": "):      # lmdb.Error names the path itself
        what = what[len(path) + 2:]
    return DatasetError("%s: damaged LMDB (%s): delete %s and build it again (make data, or make features for a "
                        "features split)" % (path, what, split))


# A damaged page can make LMDB read past the end of its file, which the kernel answers with
# SIGBUS: no Python exception can unwind that, and the process would die with "Bus error".
# While an LMDB is open for reading, a C-level handler (ctypes) reports it like any other
# damage instead (one line, exit status 2). A writer's <split>.tmp-<pid> folder may remain; the
# next writer of that folder removes it (convert._remove_stale).
_reading = []
_fault_handler = None


def _on_fault(signum):
    where = _reading[-1] if _reading else "an LMDB"
    os.write(2, ("error: %s\n" % damaged(where, "a read outside the file, SIGBUS")).encode())
    os._exit(2)


def _watch(path):
    global _fault_handler
    if _fault_handler is None:
        libc = ctypes.CDLL(None)
        _fault_handler = ctypes.CFUNCTYPE(None, ctypes.c_int)(_on_fault)
        libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.signal.restype = ctypes.c_void_p
        libc.signal(signal.SIGBUS, ctypes.cast(_fault_handler, ctypes.c_void_p))
    _reading.append(path)


def _unwatch(path):
    if path in _reading:
        _reading.remove(path)


def _open_env(path):
    if not os.path.isdir(path):
        raise DatasetError("%s: no such LMDB (convert the dataset first: make data DATASET=...)" % path)
    try:
        return lmdb.open(path, readonly=True, lock=False)
    except lmdb.Error as e:
        raise damaged(path, e) from None


def parse_datum(path, i, value):
    """The Datum in record i's bytes, checked: it parses and holds as many values as it says."""
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except DecodeError:
        raise damaged(path, "record %d is not a Caffe Datum" % i) from None
    size = datum.channels * datum.height * datum.width
    if size == 0 or not (datum.encoded or len(datum.data) == size or len(datum.float_data) == size):
        raise damaged(path, "record %d does not hold the %d×%d×%d values it says"
                      % (i, datum.channels, datum.height, datum.width))
    return datum


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
        self.path = path
        self.env = _open_env(path)
        _watch(path)
        self.txn = self.env.begin()

    def get_bytes(self, i):
        """Record i's bytes, checked to be a whole Datum (parse_datum)."""
        try:
            value = self.txn.get((KEY_FORMAT % i).encode())
        except lmdb.Error as e:
            raise damaged(self.path, e) from None
        if value is None:
            raise damaged(self.path, "no record %d" % i)
        parse_datum(self.path, i, value)
        return value

    def close(self):
        self.txn.abort()
        self.env.close()
        _unwatch(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def count(path):
    env = _open_env(path)
    try:
        return env.stat()["entries"]
    except lmdb.Error as e:
        raise damaged(path, e) from None
    finally:
        env.close()


def read(path, start=0, stop=None):
    """Yield Datums in key order, records [start, stop); every key in turn, none skipped."""
    env = _open_env(path)
    _watch(path)
    try:
        with env.begin() as txn:
            cur = txn.cursor()
            if not cur.set_range((KEY_FORMAT % start).encode()):
                return
            for i, (key, value) in enumerate(cur, start):
                if stop is not None and i >= stop:
                    break
                if key != (KEY_FORMAT % i).encode():
                    raise damaged(path, "record %d is missing (the next key is %r)" % (i, key[:16].decode("latin-1")))
                yield parse_datum(path, i, value)
    except lmdb.Error as e:
        raise damaged(path, e) from None
    finally:
        env.close()
        _unwatch(path)
