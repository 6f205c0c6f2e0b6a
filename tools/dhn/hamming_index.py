"""The index of a run's database codes: exact Hamming ranking by our C kernel, radius lookup and
approximate search by FAISS (dhn.search answers images with it; the gallery ranks with its scan).

The scan is exact with ties in database order; FAISS's IndexBinaryHash answers a radius lookup
(16-bit bucket keys, exact) and IndexBinaryIVF an approximate top k (--nprobe). Its FAISS
indexes are kept beside the codes (``codes/<database>.faissindex``, .hash, .ivf), keyed on the
codes file's size/mtime/inode, and reused until the codes are written again.
"""
import json
import math
import os
import sys

import faiss
import numpy as np

from dhn import hamming_ap, metrics
from dhn.atomic import write_atomic

# IndexBinaryHash's bucket key: a code's first 16 bits (of 16, 32 and 64 key bits the fastest
# radius-2 lookup on the bench's codes, and the smallest index: docs/BENCHMARKS.md)
HASH_BITS = 16


def key_bits(bits):
    """Bits of the bucket key for K-bit codes (FAISS pads codes to whole bytes with zero bits)."""
    return min(HASH_BITS, 8 * ((bits + 7) // 8))


# A radius-r lookup probes every bucket key within r flips of the query's: sum of C(b, i), i = 0..r,
# b = key_bits(K) (16: 137 at r = 2, 2,517 at r = 4, 39,203 at r = 8). Above this
# many probes a query is refused: the scan (no --radius, a larger --top) returns the same items
# within r at a cost that does not grow with r.
MAX_PROBES = 50000


class RadiusError(ValueError):
    """A radius lookup refused: one line, with the largest radius allowed."""


def probes(bits, radius):
    """Bucket keys probed by a radius lookup at this code length."""
    return sum(math.comb(key_bits(bits), r) for r in range(radius + 1))


def check_radius(bits, radius):
    if radius < 0:
        raise RadiusError("--radius %d: a Hamming radius is 0 or more" % radius)
    if probes(bits, radius) > MAX_PROBES:
        largest = max(r for r in range(bits + 1) if probes(bits, r) <= MAX_PROBES)
        raise RadiusError("--radius %d at %d bits probes %s bucket keys a query, above the limit of %s (they grow "
                          "as C(%d, r)): use a radius of at most %d, or the scan (no RADIUS=, a larger TOP=)"
                          % (radius, bits, format(probes(bits, radius), ","), format(MAX_PROBES, ","),
                             key_bits(bits), largest))


def ivf_lists(n):
    """IndexBinaryIVF's list count for n codes: about sqrt(n), with ≥ 39 training codes a list
    (FAISS warns below that)."""
    return max(1, min(int(round(np.sqrt(n))), n // 39))


class HammingIndex:
    """The sign codes of a database (z ≥ 0 → 1), packed as FAISS packs binary codes (np.packbits,
    zero bits padding the last byte: no distance sees them), searched three ways:
    - scan: the exact top k, ties in database order, by our C kernel (hamming_ap.top_k; numpy
      where no compiler exists): database order by construction. FAISS's IndexBinaryFlat returned
      the same rows in every case measured (its heap breaks ties by id), but that is its
      implementation, not a documented promise; its edge on one query is small beside encoding
      the image, and on many queries its OpenMP threads lose most on a busy machine
      (docs/BENCHMARKS.md, Search);
    - lookup: every item within Hamming radius r, by FAISS IndexBinaryHash (buckets keyed by the
      codes' first HASH_BITS bits, probed at every key within r flips: a code within r of the
      query differs from it in at most r key bits, so nothing is missed), ranked as the scan ranks;
    - approximate: the top k from FAISS IndexBinaryIVF (ivf_lists(N) lists, nprobe of them
      searched): exact distances, items in lists not probed missed.
    ``files`` (IndexFiles) keeps the FAISS indexes beside the codes file, reused while it is
    unchanged."""

    def __init__(self, codes=None, packed=None, bits=None, files=None):
        if packed is None:
            codes = np.asarray(codes)
            if codes.ndim != 2 or len(codes) == 0:
                raise ValueError("an index needs N×K codes, got shape %s" % (codes.shape,))
            bits, packed = codes.shape[1], self._packbits(codes)
        self.bits, self.packed = bits, np.ascontiguousarray(packed, np.uint8)
        self.n = len(self.packed)
        pad = (-self.packed.shape[1]) % 8        # the kernel's 64-bit words
        self.words = np.ascontiguousarray(np.pad(self.packed, ((0, 0), (0, pad))) if pad else self.packed).view(np.uint64)
        self.files = files
        self._faiss = {}

    @classmethod
    def open(cls, codes_path):
        """The index of a codes file (N×K .npy), its FAISS files kept beside it (IndexFiles)."""
        files = IndexFiles(codes_path)
        flat = files.load("flat")
        if flat is not None:     # the packed codes in database order, without reading the float codes
            index = cls(packed=faiss.vector_to_array(flat.xb).reshape(flat.ntotal, flat.code_size),
                        bits=files.bits, files=files)
            index._faiss["flat"] = flat
            return index
        index = cls(np.load(codes_path), files=files)
        index.faiss("flat")
        return index

    @staticmethod
    def _packbits(codes):
        return np.packbits(codes >= 0 if codes.dtype.kind == "f" else codes > 0, axis=1)

    def pack(self, queries):
        """Queries as packed bytes (the FAISS layout)."""
        queries = np.asarray(queries)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.shape[1] != self.bits:
            raise ValueError("queries have %d bits, the index %d" % (queries.shape[1], self.bits))
        return self._packbits(queries)

    def _pack_words(self, queries):
        q = self.pack(queries)
        pad = (-q.shape[1]) % 8
        return np.ascontiguousarray(np.pad(q, ((0, 0), (0, pad))) if pad else q).view(np.uint64)

    def scan(self, queries, top, workers=2):
        """(idx, dist), each nq×top: the Hamming ranking's top, ties in database order."""
        q = self._pack_words(queries)
        if hamming_ap.available():
            return hamming_ap.top_k(q, self.words, self.bits, top, workers)
        return self.scan_numpy(q, top)

    def scan_numpy(self, packed_queries, top):
        """The same ranking with numpy only: popcount distances, then a stable sort."""
        nb = self.packed.shape[1]
        d = metrics.hamming_distances(packed_queries.view(np.uint8)[:, :nb], self.packed)
        order = np.argsort(d, axis=1, kind="stable")[:, :top]
        return order.astype(np.int64), np.take_along_axis(d, order, axis=1).astype(np.int32)

    # the FAISS indexes, built on first use (or read from their files)
    def faiss(self, kind):
        if kind not in self._faiss:
            build = {"flat": self._flat, "hash": self._hash, "ivf": self._ivf}[kind]
            self._faiss[kind] = self.files.get(kind, build) if self.files else build()
        return self._faiss[kind]

    def _flat(self):
        index = faiss.IndexBinaryFlat(8 * self.packed.shape[1])
        index.add(self.packed)
        return index

    def _hash(self):
        index = faiss.IndexBinaryHash(8 * self.packed.shape[1], key_bits(self.bits))
        index.add(self.packed)
        return index

    def _ivf(self):
        d = 8 * self.packed.shape[1]
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(d), d, ivf_lists(self.n))
        index.train(self.packed)
        index.add(self.packed)
        return index

    def lookup(self, queries, radius=2):
        """For each query, (idx, dist) of every database item within Hamming distance ``radius``,
        ranked as the scan ranks them (distance, then database order). At most MAX_PROBES probes."""
        check_radius(self.bits, radius)
        index = self.faiss("hash")
        index.nflip = min(radius, index.b)          # every key within radius flips is probed
        lims, dist, idx = index.range_search(self.pack(queries), radius + 1)    # FAISS keeps d < radius
        out = []
        for s, e in zip(lims[:-1], lims[1:]):
            order = np.lexsort((idx[s:e], dist[s:e]))
            out.append((idx[s:e][order].astype(np.int64), dist[s:e][order].astype(np.int32)))
        return out

    def approximate(self, queries, top, nprobe):
        """[(idx, dist)] of the top ``top`` items IndexBinaryIVF finds in ``nprobe`` lists, ranked
        by (distance, database row); fewer where the lists hold fewer."""
        index = self.faiss("ivf")
        index.nprobe = nprobe
        dist, idx = index.search(self.pack(queries), top)
        out = []
        for d, i in zip(dist, idx):
            keep = i >= 0
            d, i = d[keep], i[keep]
            order = np.lexsort((i, d))
            out.append((i[order].astype(np.int64), d[order].astype(np.int32)))
        return out


class IndexFiles:
    """The FAISS indexes of one codes file, kept beside it: <codes>.faissindex (IndexBinaryFlat:
    the packed codes in database order), <codes>.hash.faissindex, <codes>.ivf.faissindex, each
    with a .json recording the codes file it was built from (size, mtime, inode: encoding writes
    codes to a new file and renames it): a later search reads the index while that still matches
    and rebuilds it (the codes were encoded again) when not."""

    def __init__(self, codes_path):
        self.codes = codes_path
        shape = np.load(codes_path, mmap_mode="r").shape      # the header only
        st = os.stat(codes_path)
        self.bits = shape[1]
        self.key = {"codes": os.path.basename(codes_path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                    "inode": st.st_ino, "shape": list(shape)}
        self.built = []     # kinds built (and written) by this process, not read

    def path(self, kind):
        stem = self.codes[:-len(".npy")] if self.codes.endswith(".npy") else self.codes
        return stem + (".faissindex" if kind == "flat" else ".%s.faissindex" % kind)

    def _want(self, kind):
        return dict(self.key, kind=kind, hash_bits=HASH_BITS if kind == "hash" else None)

    def load(self, kind):
        """The index of this kind from its file if built from these codes; None otherwise."""
        try:
            with open(self.path(kind) + ".json") as fh:
                if json.load(fh) != self._want(kind):
                    return None
            return faiss.read_index_binary(self.path(kind))
        except (OSError, ValueError, RuntimeError):   # none, or unreadable (FAISS raises RuntimeError): build it
            return None

    def get(self, kind, build):
        """The index of this kind: load() it, else build() and write it (a temporary name, then
        os.replace; the .json last, so an interrupted write is rebuilt next time)."""
        index = self.load(kind)
        if index is not None:
            return index
        index = build()
        self.built.append(kind)
        path = self.path(kind)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        try:
            write_atomic(path, lambda t: faiss.write_index_binary(index, t), tmp)
            write_atomic(path + ".json", json.dumps(self._want(kind)), tmp)
        except (OSError, RuntimeError) as e:    # a read-only run folder: answer without keeping the file
            print("warning: %s not written (%s): the index is rebuilt at each search" % (path, e), file=sys.stderr)
        return index
