"""Precision within a Hamming radius, the PR curve by radius and precision@N of dhn.metrics
against the brute-force reference, plus evaluate() agreeing with the single-metric functions.
Tolerance 1e-12: same float64 ratios, averaged in a different order."""
import numpy as np
import pytest

from dhn import metrics
from test_metrics_map import ap_path, clustered_codes  # noqa: F401  (both AP paths here too)
from test_metrics_map import make, multi_hot, quantized_real_codes
from test_metrics_reference import ref_aps, ref_ball, ref_precision_at

TOL = 1e-12


@pytest.mark.parametrize("name", ["single_label_8bit_ties", "multi_label_12bit"])
def test_precision_within_radius_and_pr_curve_match_reference(name):
    qc, ql, dc, dl = make(name)
    k = qc.shape[1]
    pr = metrics.pr_curve_by_radius(qc, ql, dc, dl)
    assert pr["radius"] == list(range(k + 1))
    for r in range(k + 1):
        p, rec = ref_ball(qc, ql, dc, dl, r)
        assert np.isclose(pr["precision"][r], p.mean(), rtol=0, atol=TOL)
        assert np.isclose(pr["recall"][r], rec.mean(), rtol=0, atol=TOL)
    p2, _ = ref_ball(qc, ql, dc, dl, 2)
    assert np.isclose(metrics.precision_within_radius(qc, ql, dc, dl), p2.mean(), rtol=0, atol=TOL)


def test_empty_ball_scores_zero_and_stays_in_the_mean():
    # query 0 has an empty radius-2 ball (every item at distance ≥ 3); query 1 sees 1 of 2 relevant
    q = np.array([[1, 1, 1, 1], [-1, -1, -1, -1]], np.int8)
    db = np.array([[-1, -1, -1, 1], [-1, -1, -1, -1]], np.int8)   # distances: q0 → 3, 4; q1 → 1, 0
    ql = np.array([[1, 0], [1, 0]])
    dl = np.array([[1, 0], [0, 1]])
    # q0: empty ball → 0. q1: ball {0, 1}, relevant {0} → 1/2. Mean over both queries = 1/4.
    assert metrics.precision_within_radius(q, ql, db, dl, radius=2) == 0.25


def test_precision_at_n_matches_reference():
    qc, ql, dc, dl = make("multi_label_12bit")
    ns = [1, 2, 10, 99, len(dc)]
    out = metrics.precision_at_n(qc, ql, dc, dl, ns=ns)
    assert out["n"] == ns
    for n, p in zip(ns, out["precision"]):
        assert np.isclose(p, ref_precision_at(qc, ql, dc, dl, n), rtol=0, atol=TOL)


def test_evaluate_agrees_with_the_single_metrics():
    qc, ql, dc, dl = make("single_label_8bit_ties")
    out = metrics.evaluate(qc, ql, dc, dl, R=100, ns=[10, 200], radius=1)
    assert out["R"] == 100 and out["n_query"] == len(qc) and out["n_database"] == len(dc)
    assert out["bits"] == 8 and out["ranking"] == "hamming" and out["radius"] == 1
    assert np.allclose(out["ap"], ref_aps(qc, ql, dc, dl, 100), rtol=0, atol=TOL)
    assert np.isclose(out["map"], np.mean(out["ap"]), rtol=0, atol=TOL)
    assert out["precision_radius"] == metrics.precision_within_radius(qc, ql, dc, dl, radius=1)
    assert out["pr_curve"] == metrics.pr_curve_by_radius(qc, ql, dc, dl)
    assert out["precision_at_n"] == metrics.precision_at_n(qc, ql, dc, dl, ns=[10, 200])


def test_inner_product_radius_metrics_match_reference():
    # DHN-B: ball of radius r = {j : <q, z_j> ≥ K - 2r}; quantized codes make scores exact
    rng = np.random.default_rng(6)
    ql, dl = multi_hot(rng, 9, 4), multi_hot(rng, 300, 4)
    qc, dc = quantized_real_codes(rng, 9, 6), quantized_real_codes(rng, 300, 6)
    out = metrics.evaluate(qc, ql, dc, dl, ranking="inner_product", ns=[7, 50])
    for r in range(7):
        p, rec = ref_ball(qc, ql, dc, dl, r, ranking="inner_product")
        assert np.isclose(out["pr_curve"]["precision"][r], p.mean(), rtol=0, atol=TOL)
        assert np.isclose(out["pr_curve"]["recall"][r], rec.mean(), rtol=0, atol=TOL)
    for n, p in zip([7, 50], out["precision_at_n"]["precision"]):
        assert np.isclose(p, ref_precision_at(qc, ql, dc, dl, n, ranking="inner_product"), rtol=0, atol=TOL)


def test_evaluate_on_pm1_codes_is_the_same_for_both_rankings():
    rng = np.random.default_rng(7)
    ql, dl = multi_hot(rng, 10, 5), multi_hot(rng, 250, 5)
    qc, dc = clustered_codes(rng, ql, 10, 0.3), clustered_codes(rng, dl, 10, 0.3)
    a = metrics.evaluate(qc, ql, dc, dl, R=60, ns=[5, 30])
    b = metrics.evaluate(qc.astype(np.float32), ql, dc.astype(np.float32), dl, R=60, ns=[5, 30],
                         ranking="inner_product")
    a.pop("ranking"), b.pop("ranking")
    # equal up to summation order (the Hamming APs may come from the C kernel)
    np.testing.assert_allclose(a.pop("ap"), b.pop("ap"), rtol=0, atol=1e-12)
    assert a.pop("map") == pytest.approx(b.pop("map"), abs=1e-12)
    assert a == b
