"""Retrieval metrics for hashing codes (numpy only): MAP@R, precision within a Hamming radius,
precision-recall by radius, precision@N. The tools, the benchmark and the tests share this module.

Conventions (each is tested in tests/test_metrics_*.py):
- Labels are N×C multi-hot 0/1 arrays (single-label data as one-hot). Database item j is relevant
  to query i iff the two label vectors share a label (l_i · l_j > 0).
- Binary codes are ±1 (N×K). A real code z is binarized as z ≥ 0 → +1, z < 0 → -1 (`binarize`).
- Ranking: Hamming distance ascending ('hamming', DHN) or inner product of the real-valued codes
  descending ('inner_product', DHN-B). Ties are ordered by database index (the row order of the
  database arrays): the ranking is a stable sort, so every metric is reproducible.
- MAP@R: AP = (1/n) Σ_{k ≤ R, item k relevant} P@k, where n is the number of relevant items
  within the top R (the authors' convention, not all relevant items of the database). A query
  with no relevant item in its top R has AP = 0 and stays in the mean: no query is ever dropped.
  R = None means the whole database; R larger than the database is an error.
- Precision within Hamming radius r (default 2): relevant items with distance ≤ r / items with
  distance ≤ r; a query whose ball is empty scores 0. Mean over all queries.
- PR curve by radius r = 0..K: per query, precision as above and recall = relevant items in the
  ball / relevant items in the whole database (0 for a query with none); means over all queries.
- precision@N: relevant items among the top N of the ranking (same tie rule) / N; N ≤ database.
- Inner-product ranking: the "ball of radius r" is {j : <q, z_j> ≥ K - 2r}. For ±1 codes
  <b_i, b_j> = K - 2·d_H(b_i, b_j), so on ±1 codes every metric equals the Hamming one.
  Scores are computed in float64.

Speed: AP@R of Hamming ranking with R ≥ N/2 comes from a C kernel (dhn.hamming_ap: one O(N) pass per query,
no sort — with ties in database order, an item's rank is the count of items at smaller distance
plus its running count at its own distance); it is compiled on first use, and where no C compiler
exists the numpy path below computes the same APs. The numpy path: codes are packed into 64-bit words and distances are popcount(xor) (np.bitwise_count),
computed in cache-sized tiles. When the top L of the ranking is most of the database, each row is
ranked by numpy's stable sort of uint8 distances (a radix/counting sort over the K + 1 values).
Otherwise nothing database-sized is sorted: a distance threshold t per query with at least L
items at distance ≤ t is estimated from a sample of the database (rows it leaves short are
ranked fully), the items within it are extracted tile by tile while the tile is in cache, and
only those candidates are sorted, as unique integers packing (query, distance, index), which
is the ranking with ties in database order. Queries are processed in chunks (memory stays at a
few chunk × database arrays) on WORKERS threads: numpy releases the GIL in its loops.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dhn import hamming_ap

# Precision@N cut-offs reported by default (the paper plots precision of the top 1,000).
DEFAULT_NS = (1, 10, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)
QUERY_CHUNK = 64                            # queries scanned together
TILE_BYTES = 1 << 22                        # xor scratch per tile (L3-sized: fewer numpy calls)
WORKERS = min(4, os.cpu_count() or 1)       # threads over query chunks (numpy releases the GIL)
RANKINGS = ("hamming", "inner_product")
USE_KERNEL = True                           # False: the numpy path for every metric (tests use both)


# ----------------------------------------------------------------------------- codes
def binarize(z):
    """±1 int8 codes from real codes: z ≥ 0 → +1, z < 0 → -1."""
    z = np.asarray(z)
    if z.dtype.kind == "f" and not np.isfinite(z).all():
        raise ValueError("codes contain NaN or inf: check the network output")
    return np.where(z >= 0, 1, -1).astype(np.int8)


def pack_codes(codes):
    """N×K ±1 codes (or real codes, packed by sign: z ≥ 0 → bit 1) → N×ceil(K/8) uint8."""
    c = np.asarray(codes)
    if c.ndim != 2:
        raise ValueError("codes must be a 2-D N×K array, got shape %s" % (c.shape,))
    if c.dtype.kind == "f" and not np.isfinite(c).all():
        raise ValueError("codes contain NaN or inf: check the network output")
    return np.packbits(c >= 0, axis=1)


def _words(packed):
    """N×B uint8 → N×W uint64, zero-padded (zero bits add nothing to popcount(xor))."""
    n, nb = packed.shape
    buf = np.zeros((n, -(-nb // 8) * 8), np.uint8)
    buf[:, :nb] = packed
    return buf.view(np.uint64)


def _dist_dtype(k):
    return np.uint8 if k <= 254 else np.uint16   # K + 1 marks padding, so it must fit too


def _xor_count(out, qw, dbw, scratch):
    """out (q×n) = popcount(qw ^ dbw) summed over words; scratch: a q×n uint64 array."""
    np.bitwise_xor(qw[:, None, 0], dbw[None, :, 0], out=scratch)
    np.bitwise_count(scratch, out=out)
    for w in range(1, qw.shape[1]):
        np.bitwise_xor(qw[:, None, w], dbw[None, :, w], out=scratch)
        out += np.bitwise_count(scratch)
    return out


def _tile(q):
    return max(512, TILE_BYTES // (8 * q)) // 8 * 8


def _distances_into(out, qw, dbw):
    """out = q×N Hamming distances between word-packed codes, computed tile by tile."""
    q, n, step = len(qw), len(dbw), _tile(len(qw))
    scratch = np.empty(q * step, np.uint64)
    for s in range(0, n, step):
        w = min(n, s + step) - s
        _xor_count(out[:, s:s + w], qw, dbw[s:s + w], scratch[:q * w].reshape(q, w))
    return out


def hamming_distances(packed_q, packed_db):
    """Q×N Hamming distances (uint8; uint16 past 254 bits) between packed codes (pack_codes).
    The whole matrix is returned: for large sets use the metrics, which work in chunks."""
    packed_q, packed_db = np.asarray(packed_q), np.asarray(packed_db)
    if packed_q.ndim != 2 or packed_db.ndim != 2 or packed_q.shape[1] != packed_db.shape[1]:
        raise ValueError("packed codes must be 2-D with the same bytes per code, got %s and %s"
                         % (packed_q.shape, packed_db.shape))
    out = np.empty((len(packed_q), len(packed_db)), _dist_dtype(8 * packed_q.shape[1]))
    return _distances_into(out, _words(packed_q.astype(np.uint8)), _words(packed_db.astype(np.uint8)))


# ----------------------------------------------------------------------------- ranking
class _Db:
    """Word-packed database codes, with the strided samples used to estimate thresholds."""

    def __init__(self, words, k):
        self.words, self.n, self.k = words, len(words), k
        self._samples = {}

    def sample(self, L):
        stride = int(np.clip(L // 128, 1, 64))      # ≥ ~128 expected sample items per threshold
        if stride not in self._samples:
            self._samples[stride] = np.ascontiguousarray(self.words[::stride])
        return self._samples[stride]


def _top_hamming(qw, db, L, want_dist):
    """(top, d): the L nearest database items per query in (distance, database index) order
    (None when L = 0), and the q×N distances when want_dist (else possibly None)."""
    q, n, k = len(qw), db.n, db.k
    if not L or 2 * L >= n:   # most of the database: a stable radix sort of each row
        d = _distances_into(np.empty((q, n), _dist_dtype(k)), qw, db.words)
        return (np.argsort(d, axis=1, kind="stable")[:, :L] if L else None), d
    keys, layout, d = _candidates(qw, db, _threshold(qw, db, L), want_dist)
    keys.sort()   # keys are unique: (row, distance, column) order is the ranking, ties by index
    row_bits, col_bits, col_mask = layout
    starts = np.searchsorted(keys, np.arange(q + 1, dtype=keys.dtype) << row_bits)
    counts = np.diff(starts)
    top = np.empty((q, L), np.intp)
    good = counts >= L
    top[good] = keys[starts[:-1][good, None] + np.arange(L)] & col_mask
    for i in np.flatnonzero(~good):   # the threshold estimate fell short: rank this row fully
        row = _distances_into(np.empty((1, n), _dist_dtype(k)), qw[i:i + 1], db.words)
        top[i] = np.argsort(row[0], kind="stable")[:L]
    return top, d


def _threshold(qw, db, L):
    """Per query a distance t that very likely has ≥ L items at distance ≤ t: in a sample of
    the database, the distance of the (expected + 3σ)-th nearest sampled item."""
    sample = db.sample(L)
    q, ns, k = len(qw), len(sample), db.k
    m = L * ns / db.n                                # expected sampled items among the true top L
    j = L - 1 if ns == db.n else min(ns - 1, int(np.ceil(m + 3 * np.sqrt(m))))
    ds = _distances_into(np.empty((q, ns), _dist_dtype(k)), qw, sample)
    hist = np.bincount((ds + (np.arange(q) * (k + 2))[:, None]).ravel(), minlength=q * (k + 2))
    return np.argmax(np.cumsum(hist.reshape(q, k + 2), axis=1) > j, axis=1).astype(ds.dtype)


def _candidates(qw, db, t, want_dist):
    """Keys (row, distance, column) packed in one unsigned integer, for every database item
    within t[row] of query row; xor, popcount, compare and extraction run tile by tile while
    the tile is in cache. Returns (keys, (row_bits, col_bits, col_mask), d or None)."""
    q, n, k = len(qw), db.n, db.k
    col_bits, dist_bits = max(1, (n - 1).bit_length()), (k + 1).bit_length()
    row_bits = col_bits + dist_bits
    kdt = np.uint32 if row_bits + q.bit_length() <= 32 else np.uint64   # q << row_bits must fit too
    p = 1 << max(3, (TILE_BYTES // (8 * q)).bit_length() - 1)   # tile width: a power of two
    p_bits = p.bit_length() - 1
    scratch = np.empty((q, p), np.uint64)
    tile = np.empty((q, p), _dist_dtype(k))
    mask = np.empty((q, p), bool)
    words, flat_tile = mask.view(np.uint64).ravel(), tile.ravel()
    d = np.empty((q, n), tile.dtype) if want_dist else None
    parts = []
    for s in range(0, n, p):
        w = min(n, s + p) - s
        _xor_count(tile[:, :w], qw, db.words[s:s + w], scratch[:, :w])
        tile[:, w:] = k + 1                          # padding: never within t ≤ K
        np.less_equal(tile, t[:, None], out=mask)
        # the True entries: first the 8-entry words holding any (bool nonzero is numpy's fast
        # path), then the entries of those words only
        hit = np.flatnonzero(words != 0)
        sub = np.flatnonzero(np.take(words, hit).view(bool))
        flat = np.take(hit, sub >> 3)
        flat <<= 3
        sub &= 7
        flat |= sub                                  # row * p + column in the tile
        dist = np.take(flat_tile, flat).astype(np.int64)
        dist <<= col_bits
        key = flat >> p_bits
        key <<= row_bits
        flat &= p - 1
        flat += s
        key |= flat
        key |= dist
        parts.append(key.astype(kdt))
        if want_dist:
            d[:, s:s + w] = tile[:, :w]
    return np.concatenate(parts), (row_bits, col_bits, kdt((1 << col_bits) - 1)), d


def _top_by_score(s, L):
    """The L highest scores per row of s (q×N float64), ties in database order."""
    n = s.shape[1]
    top = np.empty((len(s), L), np.intp)
    for i, row in enumerate(-s):
        if 2 * L >= n:
            top[i] = np.argsort(row, kind="stable")[:L]
        else:   # everything up to the L-th value, ties included, then a stable sort of those
            cand = np.flatnonzero(row <= np.partition(row, L - 1)[L - 1])
            top[i] = cand[np.argsort(row[cand], kind="stable")[:L]]
    return top


def rank_inner_product(query_codes, db_codes, top):
    """(idx, scores), each q×min(top, N): the database rows with the highest inner product of the
    real codes, ties in database order (the ranking every inner-product user shares: DHN-B's
    evaluation, gallery and search)."""
    scores = np.asarray(query_codes, np.float64) @ np.asarray(db_codes, np.float64).T
    idx = _top_by_score(scores, min(top, scores.shape[1]))
    return idx, np.take_along_axis(scores, idx, axis=1)


# ----------------------------------------------------------------------------- relevance
def _label_words(labels):
    """N×C 0/1 → list of contiguous columns of label bits (bit c set iff label c), in the
    smallest unsigned type that holds C bits (gathers of narrow words are faster)."""
    c = labels.shape[1]
    if c <= 64:
        dt = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if np.dtype(t).itemsize * 8 >= c)
        return [(labels.astype(dt) << np.arange(c, dtype=dt)).sum(axis=1, dtype=dt)]
    words = _words(np.packbits(labels.astype(bool), axis=1))
    return [np.ascontiguousarray(words[:, w]) for w in range(words.shape[1])]


def _relevant(lq, ldb, idx):
    """q×L bool: does database item idx[i, j] share a label with query i."""
    rel = (np.take(ldb[0], idx) & lq[0][:, None]) != 0
    for a, b in zip(lq[1:], ldb[1:]):
        rel |= (np.take(b, idx) & a[:, None]) != 0
    return rel


def _relevant_all(lq, ldb):
    rel = (lq[0][:, None] & ldb[0][None, :]) != 0
    for a, b in zip(lq[1:], ldb[1:]):
        rel |= (a[:, None] & b[None, :]) != 0
    return rel


# ----------------------------------------------------------------------------- input checks
class _Data:
    """Validated inputs in the form the scan needs."""

    def __init__(self, query_codes, query_labels, db_codes, db_labels, ranking):
        if ranking not in RANKINGS:
            raise ValueError("ranking must be one of %s, got %r" % (RANKINGS, ranking))
        qc, dc = np.asarray(query_codes), np.asarray(db_codes)
        ql, dl = np.asarray(query_labels), np.asarray(db_labels)
        for name, a in (("query codes", qc), ("database codes", dc)):
            if a.ndim != 2 or a.shape[1] == 0:
                raise ValueError("%s must be a 2-D N×K array, got shape %s" % (name, a.shape))
        for name, a in (("query labels", ql), ("database labels", dl)):
            if a.ndim != 2:
                raise ValueError("%s must be N×C multi-hot, got shape %s (for class indices y "
                                 "pass np.eye(C)[y])" % (name, a.shape))
            if not ((a == 0) | (a == 1)).all():
                raise ValueError("%s must be 0/1 multi-hot (one-hot for single-label data)" % name)
        if qc.shape[1] != dc.shape[1]:
            raise ValueError("query codes have %d bits but database codes %d: encode both with the "
                             "same net" % (qc.shape[1], dc.shape[1]))
        if ql.shape[1] != dl.shape[1]:
            raise ValueError("query labels have %d classes but database labels %d"
                             % (ql.shape[1], dl.shape[1]))
        for name, c, lab in (("query", qc, ql), ("database", dc, dl)):
            if len(c) != len(lab):
                raise ValueError("%d %s codes but %d %s labels: codes and labels pair up row by row"
                                 % (len(c), name, len(lab), name))
            if len(c) == 0:
                raise ValueError("no %s items: need at least one" % name)
        self.ranking, self.k, self.nq, self.n = ranking, qc.shape[1], len(qc), len(dc)
        self.lq, self.ldb = _label_words(ql), _label_words(dl)
        if ranking == "hamming":
            for name, c in (("query", qc), ("database", dc)):
                if c.dtype == bool or not ((c == 1) | (c == -1)).all():
                    raise ValueError("%s codes must be ±1 for Hamming ranking: binarize real codes "
                                     "first (metrics.binarize) or use ranking='inner_product'" % name)
            self.qw, self.db = _words(pack_codes(qc)), _Db(_words(pack_codes(dc)), self.k)
        else:
            for name, c in (("query", qc), ("database", dc)):
                if c.dtype.kind not in "fiu" or not np.isfinite(c).all():
                    raise ValueError("%s codes must be finite numbers for inner-product ranking" % name)
            self.qf, self.dbf = qc.astype(np.float64), np.ascontiguousarray(dc.T, np.float64)

    def depth(self, what, value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= self.n:
            hint = "; R=None means the whole database" if what == "R" else ""
            raise ValueError("%s=%r must be an integer in 1..%d (the database size%s)"
                             % (what, value, self.n, hint))
        return int(value)


def _check_radius(radius):
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError("radius=%r must be a non-negative integer" % (radius,))
    return int(radius)


# ----------------------------------------------------------------------------- the scan
def _chunk(data, sl, L, want_hist):
    """(rel, hist) for the queries in sl: rel q×L ranked relevance of the top L (None if L = 0);
    hist q×2×(K+2): per radius 0..K+1, all items (row 0) and relevant items (row 1)."""
    k = data.k
    lq = [w[sl] for w in data.lq]
    if data.ranking == "hamming":
        top, radius = _top_hamming(data.qw[sl], data.db, L, want_hist)
    else:
        scores = data.qf[sl] @ data.dbf
        top = _top_by_score(scores, L) if L else None
        # the smallest r whose ball holds j: <q, z_j> ≥ K - 2r (beyond K: bin K + 1)
        radius = np.clip(np.ceil((k - scores) / 2), 0, k + 1).astype(np.int64) if want_hist else None
    rel = _relevant(lq, data.ldb, top) if L else None
    hist = None
    if want_hist:
        q = len(radius)
        key = radius + (np.arange(q) * 2 * (k + 2))[:, None]
        key += _relevant_all(lq, data.ldb) * (k + 2)
        hist = np.bincount(key.ravel(), minlength=q * 2 * (k + 2)).reshape(q, 2, k + 2)
        hist[:, 0] += hist[:, 1]   # row 0 counted irrelevant items: make it all items
    return rel, hist


def _scan(data, L, want_hist):
    """[(slice, rel, hist)] over chunks of queries, run on WORKERS threads."""
    if data.ranking == "hamming" and L:
        data.db.sample(L)   # build the shared sample before the threads read it
    slices = [slice(s, min(data.nq, s + QUERY_CHUNK)) for s in range(0, data.nq, QUERY_CHUNK)]
    if WORKERS <= 1 or len(slices) == 1:
        results = [_chunk(data, sl, L, want_hist) for sl in slices]
    else:
        with ThreadPoolExecutor(WORKERS) as pool:
            results = list(pool.map(lambda sl: _chunk(data, sl, L, want_hist), slices))
    return [(sl,) + r for sl, r in zip(slices, results)]


# ----------------------------------------------------------------------------- metrics
def _ap(rel):
    """AP of each row of ranked relevance rel (q×R bool): Σ P@k over the hits / number of hits,
    0 for a row without hits. Works on the hits only and sums each row in rank order."""
    q, R = rel.shape
    flat = np.flatnonzero(rel)                            # row-major: rows in order, ranks ascending
    bounds = np.searchsorted(flat, np.arange(q + 1) * R)
    hits = np.diff(bounds)
    rows = np.repeat(np.arange(q), hits)
    nth = np.arange(1, len(flat) + 1) - np.repeat(bounds[:-1], hits)   # hit number in its row
    total = np.bincount(rows, weights=nth / (flat - rows * R + 1), minlength=q)   # Σ P@rank
    return np.divide(total, hits, out=np.zeros(q), where=hits > 0)


def _hits_at(rel, ns):
    """q×len(ns): relevant items among the top N of each row."""
    cum = np.cumsum(rel[:, :max(ns)], axis=1)
    return cum[:, np.asarray(ns) - 1]


def _ratio(num, den):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _radius_metrics(hist, k, radius):
    """precision within radius, and the PR curve over radii 0..K, from the q×2×(K+2) histograms."""
    cum = np.cumsum(hist[:, :, :k + 1], axis=2)          # items / relevant items within r
    n_rel = hist[:, 1].sum(axis=1)                       # relevant in the whole database
    precision = _ratio(cum[:, 1], cum[:, 0])             # q×(K+1), empty ball → 0
    recall = _ratio(cum[:, 1], n_rel[:, None])           # no relevant item → 0
    pr = {"radius": list(range(k + 1)), "precision": precision.mean(axis=0).tolist(),
          "recall": recall.mean(axis=0).tolist()}
    return float(precision[:, min(radius, k)].mean()), pr


def evaluate(query_codes, query_labels, db_codes, db_labels, R=None, ranking="hamming",
             radius=2, ns=DEFAULT_NS):
    """All metrics from one scan of the database, as a JSON-ready dict: map, R, ranking, bits,
    n_query, n_database, radius, precision_radius, pr_curve {radius, precision, recall},
    precision_at_n {n, precision}, ap (per query)."""
    data = _Data(query_codes, query_labels, db_codes, db_labels, ranking)
    R = data.n if R is None else data.depth("R", R)
    ns = [data.depth("N", v) for v in ns]
    radius = _check_radius(radius)
    kernel = _kernel_aps(data, query_codes, query_labels, db_codes, db_labels, R)
    ap = np.empty(data.nq) if kernel is None else kernel
    hits = np.empty((data.nq, len(ns)))
    hist = np.empty((data.nq, 2, data.k + 2), np.int64)
    # with the kernel's APs, the ranking is only needed as deep as precision@N looks
    for sl, rel, h in _scan(data, max(ns + [0 if kernel is not None else R]), want_hist=True):
        if kernel is None:
            ap[sl] = _ap(rel[:, :R])
        hits[sl] = _hits_at(rel, ns) if ns else 0
        hist[sl] = h
    p_radius, pr = _radius_metrics(hist, data.k, radius)
    return {
        "map": float(ap.mean()), "R": R, "ranking": ranking, "bits": data.k,
        "n_query": data.nq, "n_database": data.n,
        "radius": radius, "precision_radius": p_radius, "pr_curve": pr,
        "precision_at_n": {"n": ns, "precision": (hits / np.asarray(ns, float)).mean(axis=0).tolist()},
        "ap": ap.tolist(),
    }


def _kernel_aps(data, query_codes, query_labels, db_codes, db_labels, R):
    """Per-query APs from the C kernel (Hamming ranking only), or None: then the numpy path."""
    # For a short top R (NUS-WIDE's 5,000 of 193,734) the numpy candidate path ranks only the
    # items within a distance threshold and beats an O(N) walk; the kernel is for deep R.
    if data.ranking != "hamming" or 2 * R < data.n or not USE_KERNEL or not hamming_ap.available():
        return None
    return hamming_ap.average_precisions(query_codes, query_labels, db_codes, db_labels, R, workers=WORKERS)


def average_precisions(query_codes, query_labels, db_codes, db_labels, R=None, ranking="hamming"):
    """Per-query AP@R (float64 vector), conventions as in the module docstring."""
    data = _Data(query_codes, query_labels, db_codes, db_labels, ranking)
    R = data.n if R is None else data.depth("R", R)
    kernel = _kernel_aps(data, query_codes, query_labels, db_codes, db_labels, R)
    if kernel is not None:
        return kernel
    ap = np.empty(data.nq)
    for sl, rel, _ in _scan(data, R, want_hist=False):
        ap[sl] = _ap(rel)
    return ap


def map_at_r(query_codes, query_labels, db_codes, db_labels, R=None, ranking="hamming"):
    """MAP@R (R=None: the whole database); every query counts, AP = 0 if none relevant in its top R."""
    return float(average_precisions(query_codes, query_labels, db_codes, db_labels, R, ranking).mean())


def _histograms(query_codes, query_labels, db_codes, db_labels, ranking):
    data = _Data(query_codes, query_labels, db_codes, db_labels, ranking)
    hist = np.empty((data.nq, 2, data.k + 2), np.int64)
    for sl, _, h in _scan(data, 0, want_hist=True):
        hist[sl] = h
    return hist, data.k


def precision_within_radius(query_codes, query_labels, db_codes, db_labels, radius=2,
                            ranking="hamming"):
    """Mean over queries of the precision among items within the radius (inclusive); empty → 0."""
    radius = _check_radius(radius)
    hist, k = _histograms(query_codes, query_labels, db_codes, db_labels, ranking)
    return _radius_metrics(hist, k, radius)[0]


def pr_curve_by_radius(query_codes, query_labels, db_codes, db_labels, ranking="hamming"):
    """{radius: [0..K], precision: [...], recall: [...]}, means over all queries."""
    hist, k = _histograms(query_codes, query_labels, db_codes, db_labels, ranking)
    return _radius_metrics(hist, k, 0)[1]


def precision_at_n(query_codes, query_labels, db_codes, db_labels, ns=DEFAULT_NS, ranking="hamming"):
    """{n: [...], precision: [...]}: mean fraction of relevant items among the top N."""
    data = _Data(query_codes, query_labels, db_codes, db_labels, ranking)
    ns = [data.depth("N", v) for v in ns]
    if not ns:
        raise ValueError("ns is empty: pass at least one N")
    hits = np.empty((data.nq, len(ns)))
    for sl, rel, _ in _scan(data, max(ns), want_hist=False):
        hits[sl] = _hits_at(rel, ns)
    return {"n": ns, "precision": (hits / np.asarray(ns, float)).mean(axis=0).tolist()}
