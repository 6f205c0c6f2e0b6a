"""AP@R and the top k of Hamming ranking in one O(N) pass per query, from the C kernel hamming_ap.c.

The metrics module's conventions hold (ties in database order, AP over the relevant items within
the top R, 0 for a query without any). The kernel is compiled with the system's C compiler on
first use into the project's cache folder ($DHN_CACHE, default ~/.cache/dhn), keyed by the
source's hash; where no compiler is found, `available()` is False and dhn.metrics keeps its
numpy path (a stable radix sort per query: the same APs, more slowly; nothing here times it).
"""
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .atomic import write_atomic

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hamming_ap.c")
_lib = None


def _cache_dir():
    return os.environ.get("DHN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dhn")


def _load():
    global _lib
    if _lib is not None:
        return _lib or None
    src = open(SOURCE, "rb").read()
    so = os.path.join(_cache_dir(), "hamming_ap-%s.so" % hashlib.sha256(src).hexdigest()[:12])
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not os.path.exists(so) and cc:
        os.makedirs(os.path.dirname(so), exist_ok=True)
        flags = ["-O3", "-shared", "-fPIC"] + (["-mpopcnt"] if platform.machine() == "x86_64" else [])
        try:   # a compiler that hangs leaves the numpy path, as one that fails does
            write_atomic(so, lambda tmp: subprocess.run([cc, *flags, "-o", tmp, SOURCE], capture_output=True,
                                                        timeout=300, check=True),
                         tmp="%s.%d.tmp" % (so, os.getpid()))
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
    if not os.path.exists(so):
        _lib = False
        return None
    lib = ctypes.CDLL(so)
    p = ctypes.c_void_p
    lib.hamming_ap.argtypes = [p, p, ctypes.c_int64, ctypes.c_int32, p, p, ctypes.c_int32, ctypes.c_int32,
                               ctypes.c_int64, ctypes.c_int64, p, p, p]
    lib.hamming_ap.restype = None
    lib.hamming_topk.argtypes = [p, p, ctypes.c_int64, ctypes.c_int32, ctypes.c_int32, ctypes.c_int64,
                                 ctypes.c_int64, p, p, p]
    lib.hamming_topk.restype = None
    _lib = lib
    return lib


def available():
    return _load() is not None


def _words(bits):
    """N×B bool → N×W uint64 (bits packed, zero-padded to whole words)."""
    packed = np.packbits(bits, axis=1)
    pad = (-packed.shape[1]) % 8
    if pad:
        packed = np.pad(packed, ((0, 0), (0, pad)))
    return np.ascontiguousarray(packed).view(np.uint64)


def average_precisions(query_codes, query_labels, db_codes, db_labels, R, workers=2):
    """Per-query AP@R (float64) for ±1 codes and 0/1 multi-hot labels, inputs already checked."""
    lib = _load()
    qw, dbw = _words(np.asarray(query_codes) > 0), _words(np.asarray(db_codes) > 0)
    ql, dbl = _words(np.asarray(query_labels) > 0), _words(np.asarray(db_labels) > 0)
    n, k, nq = len(dbw), np.asarray(db_codes).shape[1], len(qw)
    ap = np.empty(nq)

    def part(s, e):   # ctypes releases the GIL: parts run in parallel
        dist, rel = np.empty(n, np.uint16), np.empty(n, np.uint8)
        lib.hamming_ap(qw[s:e].ctypes.data, dbw.ctypes.data, n, qw.shape[1], ql[s:e].ctypes.data,
                       dbl.ctypes.data, ql.shape[1], k, R, e - s, ap[s:e].ctypes.data,
                       dist.ctypes.data, rel.ctypes.data)

    _parallel(nq, workers, part)
    return ap


def _parallel(nq, workers, part):
    bounds = np.linspace(0, nq, max(1, min(workers, nq)) + 1).astype(int)
    if len(bounds) == 2:
        part(0, nq)
        return
    with ThreadPoolExecutor(len(bounds) - 1) as pool:
        list(pool.map(lambda i: part(bounds[i], bounds[i + 1]), range(len(bounds) - 1)))


def top_k(query_words, db_words, bits, k, workers=2):
    """(nq×k int64 indices, nq×k int32 distances) of the Hamming ranking's top k, ties in database
    order; inputs are packed words (_words). Ranks past the database size hold -1."""
    lib = _load()
    qw, dbw = np.ascontiguousarray(query_words, np.uint64), np.ascontiguousarray(db_words, np.uint64)
    nq, n = len(qw), len(dbw)
    idx, dist = np.empty((nq, k), np.int64), np.empty((nq, k), np.int32)

    def part(s, e):
        scratch = np.empty(n, np.uint16)
        lib.hamming_topk(qw[s:e].ctypes.data, dbw.ctypes.data, n, qw.shape[1], bits, k, e - s,
                         idx[s:e].ctypes.data, dist[s:e].ctypes.data, scratch.ctypes.data)

    _parallel(nq, workers, part)
    return idx, dist
