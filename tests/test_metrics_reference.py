"""A brute-force reference for dhn.metrics, written for clarity (loops, one stable argsort per
query), checked here against hand-worked examples; test_metrics_map.py and
test_metrics_radius.py check the fast module against it on random data."""
import numpy as np

from dhn import metrics


def ref_ranking(query_code, db_codes, ranking):
    """Database indices best first; ties keep database order (stable sort)."""
    if ranking == "hamming":
        dist = np.array([np.sum(query_code != code) for code in db_codes])
        return np.argsort(dist, kind="stable")
    scores = np.array([np.dot(np.asarray(code, np.float64), np.asarray(query_code, np.float64))
                       for code in db_codes])
    return np.argsort(-scores, kind="stable")


def ref_relevant(query_label, db_labels):
    return np.array([np.dot(query_label, lab) > 0 for lab in db_labels])


def ref_ap(query_code, query_label, db_codes, db_labels, R, ranking="hamming"):
    rel = ref_relevant(query_label, db_labels)[ref_ranking(query_code, db_codes, ranking)]
    hits, total = 0, 0.0
    for k in range(R):
        if rel[k]:
            hits += 1
            total += hits / (k + 1)
    return total / hits if hits else 0.0


def ref_aps(qc, ql, dc, dl, R=None, ranking="hamming"):
    R = len(dc) if R is None else R
    return np.array([ref_ap(qc[i], ql[i], dc, dl, R, ranking) for i in range(len(qc))])


def ref_radius_of(query_code, db_codes, ranking):
    """Per database item, the smallest r whose ball holds it (Hamming distance for ±1 codes)."""
    k = len(query_code)
    if ranking == "hamming":
        return np.array([np.sum(query_code != code) for code in db_codes])
    return np.array([int(np.clip(np.ceil((k - np.dot(np.asarray(code, np.float64), query_code)) / 2), 0, k + 1))
                     for code in db_codes])


def ref_ball(qc, ql, dc, dl, r, ranking="hamming"):
    """Per query (precision, recall) within radius r: empty ball → precision 0, no relevant → recall 0."""
    precision, recall = [], []
    for i in range(len(qc)):
        inside = ref_radius_of(qc[i], dc, ranking) <= r
        rel = ref_relevant(ql[i], dl)
        precision.append(np.sum(inside & rel) / np.sum(inside) if np.sum(inside) else 0.0)
        recall.append(np.sum(inside & rel) / np.sum(rel) if np.sum(rel) else 0.0)
    return np.array(precision), np.array(recall)


def ref_precision_at(qc, ql, dc, dl, n, ranking="hamming"):
    return np.mean([np.sum(ref_relevant(ql[i], dl)[ref_ranking(qc[i], dc, ranking)[:n]]) / n
                    for i in range(len(qc))])


# ------------------------------------------------------------------ a hand-worked example
# K = 4 bits, one query q = (+,+,+,+), six database items. Item j's code has d_j bits set to -1:
#   index j :  0  1  2  3  4  5
#   d_j     :  1  0  1  2  0  3
#   label   :  A  A  B  A  B  A      (query label A; relevant = shares a label = label A)
#   relevant:  1  1  0  1  0  1
# Ranking by (distance, index) — ties in database order: 1(d0) 4(d0) 0(d1) 2(d1) 3(d2) 5(d3)
# relevance in ranked order:                              1     0     1     0     1     1
# R = 6: hits at ranks 1,3,5,6 → P@k = 1/1, 2/3, 3/5, 4/6 → AP = (1 + 2/3 + 3/5 + 2/3)/4 = 44/60
# R = 4: hits at ranks 1,3    → AP = (1 + 2/3)/2 = 5/6 (denominator: relevant within the top R)
# R = 2: hit at rank 1 only   → AP = 1
# If ties were broken the other way (4 before 1), R=2 would give AP = (1/2)/1 = 1/2: the tie
# rule matters, which is why it is fixed.
# Precision within radius 2: ball = {1,4,0,2,3} (d ≤ 2), relevant 1,0,3 → 3/5.
# Radius 0: ball = {1,4} → 1/2. Recall at radius 1: relevant in ball {1,0} = 2 of 4 → 1/2.
# precision@3 = 2/3.
HAND_DIST = [1, 0, 1, 2, 0, 3]


def hand_example():
    q = np.ones((1, 4), np.int8)
    db = np.ones((6, 4), np.int8)
    for j, dj in enumerate(HAND_DIST):
        db[j, :dj] = -1
    A, B = [1, 0], [0, 1]
    db_labels = np.array([A, A, B, A, B, A])
    return q, np.array([A]), db, db_labels


def test_reference_matches_hand_example():
    q, ql, db, dl = hand_example()
    assert list(ref_ranking(q[0], db, "hamming")) == [1, 4, 0, 2, 3, 5]
    assert np.isclose(ref_ap(q[0], ql[0], db, dl, 6), 44 / 60, rtol=0, atol=1e-15)
    assert np.isclose(ref_ap(q[0], ql[0], db, dl, 4), 5 / 6, rtol=0, atol=1e-15)
    assert ref_ap(q[0], ql[0], db, dl, 2) == 1.0
    p, r = ref_ball(q, ql, db, dl, 2)
    assert np.isclose(p[0], 3 / 5, rtol=0, atol=1e-15)
    p, r = ref_ball(q, ql, db, dl, 1)
    assert np.isclose(r[0], 1 / 2, rtol=0, atol=1e-15)


def test_fast_module_matches_hand_example():
    q, ql, db, dl = hand_example()
    # exact fractions: tolerance 1e-15 is float rounding only
    assert np.isclose(metrics.map_at_r(q, ql, db, dl), 44 / 60, rtol=0, atol=1e-15)
    assert np.isclose(metrics.map_at_r(q, ql, db, dl, R=4), 5 / 6, rtol=0, atol=1e-15)
    assert metrics.map_at_r(q, ql, db, dl, R=2) == 1.0
    assert np.isclose(metrics.precision_within_radius(q, ql, db, dl, radius=2), 3 / 5, rtol=0, atol=1e-15)
    assert metrics.precision_within_radius(q, ql, db, dl, radius=0) == 0.5
    pr = metrics.pr_curve_by_radius(q, ql, db, dl)
    assert pr["radius"] == [0, 1, 2, 3, 4]
    assert np.allclose(pr["precision"], [1 / 2, 2 / 4, 3 / 5, 4 / 6, 4 / 6], rtol=0, atol=1e-15)
    assert np.allclose(pr["recall"], [1 / 4, 2 / 4, 3 / 4, 1, 1], rtol=0, atol=1e-15)
    assert np.isclose(metrics.precision_at_n(q, ql, db, dl, ns=[3])["precision"][0], 2 / 3, rtol=0, atol=1e-15)


def test_hand_example_on_inner_product_of_pm1_codes_is_the_same():
    # <b_i, b_j> = K - 2 d_H for ±1 codes: the DHN-B path must give the Hamming numbers exactly
    q, ql, db, dl = hand_example()
    a = metrics.evaluate(q, ql, db, dl, ns=[3])
    b = metrics.evaluate(q.astype(np.float32), ql, db.astype(np.float32), dl, ns=[3], ranking="inner_product")
    for key in ("map", "precision_radius", "pr_curve", "precision_at_n", "ap"):
        assert a[key] == b[key], key
