"""Retrieval evaluation: dhn.metrics.map_at_r against the usual approach in public hashing code.

The baseline is DeepHash-pytorch's CalcTopMap as written (one query at a time: relevance by a
label dot product, Hamming distances 0.5·(K - B·q) through a matrix product of ±1 codes, a full
argsort of the database, AP over the hits in the top R), with one change: argsort(kind="stable"),
so that both rank ties in database order and must give identical MAP.

Two scales, synthetic clustered codes (a class centre per label with 25% of its bits flipped,
so MAP is in the paper's range and ties at equal distance are many):
- CIFAR-10 protocol: 1,000 × 54,000 codes of 48 bits, single label (10), R = the whole database.
- NUS-WIDE scale: 2,100 × 193,734 codes of 64 bits, multi-label (21), R = 5,000. The baseline
  needs ~minutes here on 2 cores, so it runs on the first 100 queries and its time is scaled
  ×21 (per-query cost does not depend on the query); MAP identity is checked on those 100.
Ours is timed with its default threads (metrics.WORKERS) and with one thread.
"""
import numpy as np

from dhn import metrics
from dhn.bench import Figure, best_time

BASELINE = "baseline: matmul Hamming + stable argsort per query (DeepHash-pytorch CalcTopMap)"
SCALES = {
    # name: queries, database, bits, labels, multi-label, R, baseline queries timed
    "cifar": (1000, 54000, 48, 10, False, None, 1000),
    "nus": (2100, 193734, 64, 21, True, 5000, 100),
}
FLIP = 0.25


def synthetic(n_query, n_db, bits, n_labels, multi, seed=0):
    """±1 int8 codes and 0/1 labels: codes near their first label's centre."""
    rng = np.random.default_rng(seed)
    centres = rng.choice(np.array([-1, 1], np.int8), size=(n_labels, bits))

    def part(n):
        primary = rng.integers(0, n_labels, n)
        labels = np.zeros((n, n_labels), np.uint8)
        labels[np.arange(n), primary] = 1
        if multi:   # a few more concepts per image, as in NUS-WIDE
            labels |= (rng.random((n, n_labels)) < 0.08).astype(np.uint8)
        flips = np.where(rng.random((n, bits)) < FLIP, -1, 1).astype(np.int8)
        return centres[primary] * flips, labels

    return part(n_query) + part(n_db)


def baseline_aps(qB, rB, queryL, retrievalL, topk, kind="stable"):
    """CalcTopMap (DeepHash-pytorch), per-query APs; a query without hits scores 0.
    kind=None is the code exactly as published: numpy's default (unstable) argsort."""
    num_query = queryL.shape[0]
    aps = np.zeros(num_query)
    for it in range(num_query):
        gnd = (np.dot(queryL[it, :], retrievalL.transpose()) > 0).astype(np.float32)
        hamm = 0.5 * (rB.shape[1] - np.dot(qB[it, :], rB.transpose()))
        ind = np.argsort(hamm, kind=kind)
        gnd = gnd[ind]
        tgnd = gnd[0:topk]
        tsum = np.sum(tgnd).astype(int)
        if tsum == 0:
            continue
        count = np.linspace(1, tsum, tsum)
        tindex = np.asarray(np.where(tgnd == 1)) + 1.0
        aps[it] = np.mean(count / tindex)
    return aps


def scale(name):
    nq, nd, bits, n_labels, multi, R, n_base = SCALES[name]
    qc, ql, dc, dl = synthetic(nq, nd, bits, n_labels, multi)
    topk = nd if R is None else R

    ap = metrics.average_precisions(qc, ql, dc, dl, R=R)
    ours = best_time(lambda: metrics.map_at_r(qc, ql, dc, dl, R=R), repeat=3)
    workers = metrics.WORKERS
    try:
        metrics.WORKERS = 1
        ours_1 = best_time(lambda: metrics.map_at_r(qc, ql, dc, dl, R=R), repeat=2)
    finally:
        metrics.WORKERS = workers

    # the public code's inputs: float ±1 codes and float labels, as a PyTorch model hands them over
    qB, rB = qc[:n_base].astype(np.float32), dc.astype(np.float32)
    qL, rL = ql[:n_base].astype(np.float32), dl.astype(np.float32)
    base_ap = baseline_aps(qB, rB, qL, rL, topk)
    base = best_time(lambda: baseline_aps(qB, rB, qL, rL, topk), repeat=1 if n_base < nq else 2)
    base_total = base * nq / n_base
    diff = float(np.abs(base_ap - ap[:n_base]).max())
    if diff > 1e-9:
        raise RuntimeError("%s: MAP differs from the baseline's (max |ΔAP| = %.3g)" % (name, diff))

    # for scale: the published code as is (default quicksort): fast, but ties in arbitrary order
    quick = best_time(lambda: baseline_aps(qB, rB, qL, rL, topk, kind=None), repeat=1) * nq / n_base
    quick_diff = float(np.abs(baseline_aps(qB, rB, qL, rL, topk, kind=None) - ap[:n_base]).max())

    sub = "" if n_base == nq else " (%d of %d queries timed, ×%g)" % (n_base, nq, nq / n_base)
    what = "%d×%d, %d bits, R=%s" % (nq, nd, bits, "all" if R is None else R)
    return [
        Figure("metrics.%s_map" % name, float(ap.mean()), "MAP", None, what),
        Figure("metrics.%s_map_max_abs_diff" % name, diff, "AP", None,
               "ours vs baseline, per query, on %d queries" % n_base),
        Figure("metrics.%s_ours_s" % name, ours, "s", ours / base_total, BASELINE + sub),
        Figure("metrics.%s_ours_1thread_s" % name, ours_1, "s", ours_1 / base_total, BASELINE + sub),
        Figure("metrics.%s_baseline_s" % name, base_total, "s", None, BASELINE + sub),
        Figure("metrics.%s_speedup" % name, base_total / ours, "x", None,
               "baseline time / ours (%d threads); 1 thread: %.1fx" % (workers, base_total / ours_1)),
        Figure("metrics.%s_unstable_baseline_s" % name, quick, "s", quick / base_total,
               "published code with its default unstable argsort (ties arbitrary): max |ΔAP| vs ours "
               "%.2g" % quick_diff),
    ]


def run():
    return scale("cifar") + scale("nus")
