"""The search index (dhn.search.HammingIndex) at 200,000 codes × 64 bits.

Codes: 200,000 database and 1,000 query codes near 100 random centres (each bit flipped with
probability 0.03, RandomState(0): ≈ 2 bits from its centre, ≈ 4 from a neighbour, so radius-2
balls hold part of a query's class; at 0.15 they were empty and the lookup found nothing).
Figures, best of repeated runs on this machine:
- one query, top 100, linear scan (the C kernel: one popcount pass, no sort) vs the brute-force
  numpy scan (XOR + popcount of the packed words, then a stable argsort of the distances);
- 1,000 queries at once, the same two ways;
- hash-table lookup within radius 2 (buckets of identical codes; 2,081 probes a query at 64 bits):
  time per query and its recall of the scan's top 100 (the share of those found within radius 2).
"""
import time

import numpy as np

from dhn import metrics
from dhn.bench import Figure, best_time
from dhn.search import HammingIndex

N, BITS, NQ, TOP = 200_000, 64, 1_000, 100
FLIP = 0.03     # probability of each bit differing from its centre


def codes(n, rng, centres):
    flips = np.where(rng.random_sample((n, BITS)) < FLIP, -1, 1)
    return (centres[rng.randint(0, len(centres), n)] * flips).astype(np.int8)


def numpy_scan(index, q):
    """The brute-force way: all distances, then a stable sort per query."""
    nb = BITS // 8
    d = metrics.hamming_distances(index.pack(q).view(np.uint8)[:, :nb], index.words.view(np.uint8)[:, :nb])
    return np.argsort(d, axis=1, kind="stable")[:, :TOP]


def run():
    rng = np.random.RandomState(0)
    centres = rng.choice([-1, 1], (100, BITS))
    db, queries = codes(N, rng, centres), codes(NQ, rng, centres)
    index = HammingIndex(db)
    one = queries[:1]
    t_one = best_time(lambda: index.scan(one, TOP, workers=1), repeat=20)
    t_one_np = best_time(lambda: numpy_scan(index, one), repeat=10)
    t_all = best_time(lambda: index.scan(queries, TOP), repeat=3)
    t_all_np = best_time(lambda: numpy_scan(index, queries), repeat=1)
    idx, _ = index.scan(queries, TOP)
    assert np.array_equal(idx[:50], numpy_scan(index, queries[:50]))       # the same ranking
    t0 = time.perf_counter()
    index.buckets()
    t_build = time.perf_counter() - t0
    sample = queries[:200]
    t0 = time.perf_counter()
    found = index.lookup(sample, radius=2)
    t_lookup = (time.perf_counter() - t0) / len(sample)
    recall = np.mean([len(np.intersect1d(f[0], top)) / TOP for f, top in zip(found, idx[:200])])
    ball = np.mean([len(f[0]) for f in found])
    return [
        Figure("search.scan_1q_200k_64b_ms", t_one * 1e3, "ms", t_one / t_one_np, "numpy brute-force scan of one query"),
        Figure("search.scan_1000q_200k_64b_s", t_all, "s", t_all / t_all_np, "numpy brute-force scan of the 1,000"),
        Figure("search.scan_queries_per_s", NQ / t_all, "q/s", None, "1,000 queries, top %d, 2 threads" % TOP),
        Figure("search.numpy_scan_1q_ms", t_one_np * 1e3, "ms", None, "XOR+popcount, stable argsort"),
        Figure("search.lookup_r2_per_query_ms", t_lookup * 1e3, "ms", t_lookup / t_one, "one-query scan (kernel)"),
        Figure("search.lookup_r2_recall_at_100", recall, "share", None, "of the scan's top 100, 200 queries"),
        Figure("search.lookup_r2_ball_size", ball, "items", None, "mean items within radius 2"),
        Figure("search.bucket_build_s", t_build, "s", None, "%d codes, %d buckets" % (N, len(index.buckets()))),
    ]
