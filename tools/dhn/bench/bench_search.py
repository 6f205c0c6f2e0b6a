"""The search index (dhn.hamming_index.HammingIndex) against FAISS, at 200,000 and 2,000,000 codes × 64 bits.

Codes: database and 1,000 query codes near 100 random centres (each bit flipped with probability
0.03, RandomState(0): ≈ 2 bits from its centre, ≈ 4 from a neighbour, so radius-2 balls hold part
of a query's class and the top 100 holds many ties). Figures per size, best of repeated runs:
- exact top 100, one query (1 thread each) and 1,000 queries (2 threads each; FAISS also with
  1 thread: its OpenMP threads lose most on a busy machine): our C kernel (what dhn.search scans
  with) vs FAISS IndexBinaryFlat; and the share of queries where FAISS gave the same rows in the
  same order (ties in database order) as ours;
- every item within radius 2 (200 queries): FAISS IndexBinaryHash (what dhn.search looks up with)
  vs the hand-written bucket lookup it replaced (kept below as the reference: Python dict of
  identical codes, probed at each of the 2,081 codes within 2 bits); its recall of the scan's top
  100 and the ball size;
- IndexBinaryIVF (dhn.search --nprobe): time per query over the 1,000 at the smallest nprobe
  (powers of two) whose recall@100 reaches IVF_RECALL, vs the exact scan's time per query. Recall
  counts the returned items within the exact 100th distance (ties at that distance are
  interchangeable: which of them an exact scan keeps is its tie rule, not quality);
- bytes per code held by each index: our packed words; FAISS indexes as faiss.serialize_index_binary
  writes them (their data: codes, ids, bucket keys, centroids); the bucket dict as sys.getsizeof
  counts its dict, keys and arrays.
"""
import itertools
import sys
import time

import faiss
import numpy as np

from dhn.bench import Figure, best_time
from dhn.hamming_index import HammingIndex, ivf_lists

SIZES, BITS, NQ, TOP, RADIUS = (200_000, 2_000_000), 64, 1_000, 100, 2
FLIP = 0.03         # probability of each bit differing from its centre
IVF_RECALL = 0.99   # IVF figures at the smallest nprobe reaching this recall@100


def codes(n, rng, centres):
    flips = np.where(rng.random_sample((n, BITS)) < FLIP, -1, 1)
    return (centres[rng.randint(0, len(centres), n)] * flips).astype(np.int8)


class Buckets:
    """The radius lookup dhn.search had before FAISS: a dict from each packed code (an int) to
    its rows, probed at every code within the radius; the reference the FAISS lookup is timed against."""

    def __init__(self, words):
        table = {}
        for i, key in enumerate(words[:, 0].tolist()):   # 64 bits: one word, a plain int key
            table.setdefault(key, []).append(i)
        self.table = {k: np.asarray(v, np.int64) for k, v in table.items()}

    def nbytes(self):
        return sys.getsizeof(self.table) + sum(sys.getsizeof(k) + v.nbytes + sys.getsizeof(v) for k, v in self.table.items())

    def lookup(self, query_words, radius):
        # bit p of a code: byte p // 8 of the word (little-endian), bit 7 - p % 8 of it (np.packbits)
        masks = [[sum(1 << ((p // 8) * 8 + 7 - p % 8) for p in pos) for pos in itertools.combinations(range(64), r)]
                 for r in range(radius + 1)]
        out = []
        for q in query_words[:, 0].tolist():
            hits, dists = [], []
            for r, level in enumerate(masks):
                for m in level:
                    found = self.table.get(q ^ m)
                    if found is not None:
                        hits.append(found)
                        dists.append(np.full(len(found), r, np.int32))
            idx, dist = (np.concatenate(hits), np.concatenate(dists)) if hits else (np.zeros(0, np.int64), np.zeros(0, np.int32))
            order = np.lexsort((idx, dist))
            out.append((idx[order], dist[order]))
        return out


def tag(n):
    return "%dk" % (n // 1000) if n < 1_000_000 else "%gm" % (n / 1e6)


def nbytes(faiss_index):
    return faiss.serialize_index_binary(faiss_index).nbytes


def one_size(n):
    rng = np.random.RandomState(0)
    centres = rng.choice([-1, 1], (100, BITS))
    db, queries = codes(n, rng, centres), codes(NQ, rng, centres)
    index = HammingIndex(db)
    packed = index.pack(queries)
    flat = index.faiss("flat")
    s = "search.%s_%db" % (tag(n), BITS)
    figs = []

    # exact top 100
    faiss.omp_set_num_threads(1)
    t_one = best_time(lambda: index.scan(queries[:1], TOP, workers=1), repeat=20)
    f_one = best_time(lambda: flat.search(packed[:1], TOP), repeat=20)
    f_all_1t = best_time(lambda: flat.search(packed, TOP), repeat=3)
    faiss.omp_set_num_threads(2)
    t_all = best_time(lambda: index.scan(queries, TOP, workers=2), repeat=3)
    f_all = best_time(lambda: flat.search(packed, TOP), repeat=3)
    idx, dist = index.scan(queries, TOP)
    f_dist, f_idx = flat.search(packed, TOP)
    assert np.array_equal(dist, f_dist)          # the same top-100 distances: both are exact
    same = np.mean((idx == f_idx).all(axis=1))
    figs += [
        Figure(s + ".scan_1q_ms", t_one * 1e3, "ms", t_one / f_one, "FAISS IndexBinaryFlat, 1 thread each"),
        Figure(s + ".faiss_flat_1q_ms", f_one * 1e3, "ms", None, "IndexBinaryFlat top %d, 1 thread" % TOP),
        Figure(s + ".scan_1000q_s", t_all, "s", t_all / f_all, "FAISS IndexBinaryFlat, 2 threads each"),
        Figure(s + ".faiss_flat_1000q_s", f_all, "s", None, "IndexBinaryFlat top %d, 2 threads" % TOP),
        Figure(s + ".faiss_flat_1000q_1thread_s", f_all_1t, "s", f_all_1t / f_all, "FAISS with 2 threads (OpenMP)"),
        Figure(s + ".faiss_flat_same_rows", same, "share", None, "queries whose FAISS top %d = ours, ties in database order" % TOP),
    ]

    # every item within radius 2
    sample, sample_words = packed[:200], index._pack_words(queries[:200])
    t0 = time.perf_counter()
    hashed = index.faiss("hash")
    t_hash_build = time.perf_counter() - t0
    t_look = best_time(lambda: index.lookup(queries[:200], RADIUS), repeat=3) / len(sample)
    t0 = time.perf_counter()
    buckets = Buckets(index.words)
    t_bucket_build = time.perf_counter() - t0
    t_buck = best_time(lambda: buckets.lookup(sample_words, RADIUS), repeat=1) / len(sample)
    found = index.lookup(queries[:200], RADIUS)
    for (a, da), (b, dbk) in zip(found, buckets.lookup(sample_words[:20], RADIUS)):
        assert np.array_equal(a, b) and np.array_equal(da, dbk)      # the same balls, the same order
    recall = np.mean([len(np.intersect1d(f[0], top)) / TOP for f, top in zip(found, idx[:200])])
    figs += [
        Figure(s + ".lookup_r2_ms", t_look * 1e3, "ms", t_look / t_buck,
               "hand-written buckets (before FAISS), per query of 200"),
        Figure(s + ".buckets_r2_ms", t_buck * 1e3, "ms", None, "dict of identical codes, 2,081 probes a query"),
        Figure(s + ".lookup_r2_recall_at_100", recall, "share", None, "of the scan's top %d, 200 queries" % TOP),
        Figure(s + ".lookup_r2_ball_size", np.mean([len(f[0]) for f in found]), "items", None, "mean items within radius 2"),
        Figure(s + ".hash_build_s", t_hash_build, "s", t_hash_build / t_bucket_build,
               "bucket dict build (%d buckets)" % len(buckets.table)),
    ]

    # IVF
    t0 = time.perf_counter()
    ivf = index.faiss("ivf")
    t_ivf_build = time.perf_counter() - t0
    kth = dist[:, -1:]
    for nprobe in (2 ** i for i in range(12)):
        res = index.approximate(queries, TOP, nprobe)
        ivf_recall = np.mean([np.sum(d <= k) / TOP for (_, d), k in zip(res, kth)])
        if ivf_recall >= IVF_RECALL or nprobe >= ivf.nlist:
            break
    id_recall = np.mean([len(np.intersect1d(i, top)) / TOP for (i, _), top in zip(res, idx)])
    t_ivf = best_time(lambda: index.approximate(queries, TOP, nprobe), repeat=3) / NQ
    figs += [
        Figure(s + ".ivf_per_query_ms", t_ivf * 1e3, "ms", t_ivf / (t_all / NQ),
               "exact scan (kernel, 2 threads), per query of the 1,000"),
        Figure(s + ".ivf_recall_at_100", ivf_recall, "share", None,
               "items within the exact 100th distance, nprobe %d of %d lists" % (nprobe, ivf.nlist)),
        Figure(s + ".ivf_id_recall_at_100", id_recall, "share", None, "the same rows as the exact top %d (ties differ)" % TOP),
        Figure(s + ".ivf_nprobe", nprobe, "lists", None, "smallest power of two with recall >= %g" % IVF_RECALL),
        Figure(s + ".ivf_build_s", t_ivf_build, "s", None, "train (k-means, %d lists) + add" % ivf.nlist),
    ]

    # bytes per code
    ours = index.words.nbytes / n
    figs += [
        Figure(s + ".bytes_per_code_ours", ours, "B", None, "packed 64-bit words (the kernel's scan)"),
        Figure(s + ".bytes_per_code_faiss_flat", nbytes(flat) / n, "B", nbytes(flat) / n / ours, "ours"),
        Figure(s + ".bytes_per_code_faiss_hash", nbytes(hashed) / n, "B", nbytes(hashed) / buckets.nbytes(),
               "bucket dict (%.1f B/code)" % (buckets.nbytes() / n)),
        Figure(s + ".bytes_per_code_faiss_ivf", nbytes(ivf) / n, "B", nbytes(ivf) / n / ours, "ours"),
    ]
    assert ivf_lists(n) == ivf.nlist
    return figs


def run():
    figures = []
    for n in SIZES:
        figures += one_size(n)
    return figures
