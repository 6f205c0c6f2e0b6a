"""MAP@R of dhn.metrics against the brute-force reference (test_metrics_reference.py): random
codes and labels, single- and multi-label, many ties, R below the database size, queries with
no relevant item. Tolerance 1e-12: both sum the same float64 terms, in different orders."""
import numpy as np
import pytest

from dhn import metrics
from test_metrics_reference import ref_aps


@pytest.fixture(autouse=True, params=["kernel", "numpy"])
def ap_path(request, monkeypatch):
    """Every test here runs with the C kernel enabled and disabled. dhn.metrics routes to the
    kernel only Hamming AP@R with R ≥ N/2 (shorter R takes the numpy candidate path either way):
    test_kernel_on_every_branch below calls the kernel directly for the other cases."""
    if request.param == "kernel" and not metrics.hamming_ap.available():
        pytest.skip("no C compiler: the hamming_ap kernel is not built")
    monkeypatch.setattr(metrics, "USE_KERNEL", request.param == "kernel")
    return request.param

TOL = 1e-12


def clustered_codes(rng, labels, k, flip):
    """±1 codes near one random centre per class (more realistic MAP than uniform codes);
    small k gives many ties at equal Hamming distance."""
    centres = rng.choice([-1, 1], size=(labels.shape[1], k))
    first = np.argmax(labels, axis=1)            # an item without labels uses centre 0
    codes = centres[first] * np.where(rng.random((len(labels), k)) < flip, -1, 1)
    return codes.astype(np.int8)


def one_hot(rng, n, c):
    return np.eye(c, dtype=np.uint8)[rng.integers(0, c, n)]


def multi_hot(rng, n, c, p=0.25):
    return (rng.random((n, c)) < p).astype(np.uint8)   # some rows all zero: relevant to nothing


CASES = {
    # name: (n_query, n_db, bits, classes, multi_label, flip)
    "single_label_8bit_ties": (23, 700, 8, 10, False, 0.3),
    "multi_label_12bit": (19, 650, 12, 6, True, 0.2),
    "single_label_70bit_two_words": (9, 300, 70, 4, False, 0.25),
}


def make(name, seed=0):
    nq, nd, k, c, multi, flip = CASES[name]
    rng = np.random.default_rng(seed)
    lab = multi_hot if multi else one_hot
    ql, dl = lab(rng, nq, c), lab(rng, nd, c)
    return clustered_codes(rng, ql, k, flip), ql, clustered_codes(rng, dl, k, flip), dl


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("R", [None, 1, 37, 299])
def test_hamming_map_matches_reference(name, R):
    qc, ql, dc, dl = make(name)
    ours = metrics.average_precisions(qc, ql, dc, dl, R=R)
    assert np.allclose(ours, ref_aps(qc, ql, dc, dl, R), rtol=0, atol=TOL)
    assert np.isclose(metrics.map_at_r(qc, ql, dc, dl, R=R), ours.mean(), rtol=0, atol=TOL)


def test_sampled_threshold_path_matches_reference():
    # R = 300 of 1,000 is in the sampled-threshold branch (stride 2); many ties at 10 bits
    rng = np.random.default_rng(1)
    ql, dl = one_hot(rng, 12, 5), one_hot(rng, 1000, 5)
    qc, dc = clustered_codes(rng, ql, 10, 0.3), clustered_codes(rng, dl, 10, 0.3)
    assert np.allclose(metrics.average_precisions(qc, ql, dc, dl, R=300),
                       ref_aps(qc, ql, dc, dl, 300), rtol=0, atol=TOL)


def test_threshold_underestimate_is_corrected(monkeypatch):
    # the sampled threshold is only an estimate: rows it leaves short must be ranked exactly
    qc, ql, dc, dl = make("single_label_8bit_ties")
    monkeypatch.setattr(metrics, "_threshold", lambda qw, db, L: np.zeros(len(qw), np.uint8))
    assert np.allclose(metrics.average_precisions(qc, ql, dc, dl, R=50),
                       ref_aps(qc, ql, dc, dl, 50), rtol=0, atol=TOL)


@pytest.mark.parametrize("R", [None, 40])
def test_chunks_and_threads_give_the_same_result(monkeypatch, R):
    qc, ql, dc, dl = make("multi_label_12bit")
    monkeypatch.setattr(metrics, "WORKERS", 1)
    whole = metrics.evaluate(qc, ql, dc, dl, R=R, ns=[5, 40])
    monkeypatch.setattr(metrics, "QUERY_CHUNK", 4)
    monkeypatch.setattr(metrics, "WORKERS", 3)
    assert metrics.evaluate(qc, ql, dc, dl, R=R, ns=[5, 40]) == whole


def test_more_than_64_labels():
    # labels past 64 classes take several words: relevance must see a shared label in any of them
    rng = np.random.default_rng(8)
    ql, dl = multi_hot(rng, 8, 70, p=0.03), multi_hot(rng, 200, 70, p=0.03)
    qc, dc = clustered_codes(rng, ql, 9, 0.3), clustered_codes(rng, dl, 9, 0.3)
    assert np.allclose(metrics.average_precisions(qc, ql, dc, dl, R=50),
                       ref_aps(qc, ql, dc, dl, 50), rtol=0, atol=TOL)


def test_ties_are_broken_by_database_order():
    # two items at distance 0, only the second relevant: with R = 1 the first (index 0) is retrieved
    q = np.ones((1, 4), np.int8)
    db = np.ones((2, 4), np.int8)
    ql, dl = np.array([[1, 0]]), np.array([[0, 1], [1, 0]])
    assert metrics.map_at_r(q, ql, db, dl, R=1) == 0.0
    assert metrics.map_at_r(q, ql, db[::-1], dl[::-1], R=1) == 1.0


def test_queries_without_relevant_items_count_as_zero():
    qc, ql, dc, dl = make("multi_label_12bit", seed=3)
    ql = ql.copy()
    ql[:3] = 0   # no label: nothing is relevant to these three queries
    ap = metrics.average_precisions(qc, ql, dc, dl, R=20)
    assert (ap[:3] == 0).all()
    assert np.isclose(metrics.map_at_r(qc, ql, dc, dl, R=20), ap.sum() / len(ql), rtol=0, atol=TOL)
    assert np.allclose(ap, ref_aps(qc, ql, dc, dl, 20), rtol=0, atol=TOL)


def quantized_real_codes(rng, n, k):
    # multiples of 1/4: float64 inner products are exact, so ties are exact and order-free
    return (rng.integers(-4, 5, size=(n, k)) / 4).astype(np.float32)


@pytest.mark.parametrize("R", [None, 30])
def test_inner_product_map_matches_reference(R):
    rng = np.random.default_rng(4)
    ql, dl = multi_hot(rng, 15, 5), multi_hot(rng, 400, 5)
    qc, dc = quantized_real_codes(rng, 15, 6), quantized_real_codes(rng, 400, 6)
    ours = metrics.average_precisions(qc, ql, dc, dl, R=R, ranking="inner_product")
    assert np.allclose(ours, ref_aps(qc, ql, dc, dl, R, ranking="inner_product"), rtol=0, atol=TOL)


def test_inner_product_on_pm1_codes_equals_hamming():
    qc, ql, dc, dl = make("single_label_8bit_ties")
    for R in (None, 25):
        a = metrics.average_precisions(qc, ql, dc, dl, R=R)
        b = metrics.average_precisions(qc.astype(np.float32), ql, dc.astype(np.float32), dl, R=R,
                                       ranking="inner_product")
        # equal up to summation order (the Hamming APs may come from the C kernel)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_hamming_distances_and_packing():
    rng = np.random.default_rng(5)
    a, b = rng.choice([-1, 1], size=(7, 70)), rng.choice([-1, 1], size=(11, 70))
    d = metrics.hamming_distances(metrics.pack_codes(a), metrics.pack_codes(b))
    assert np.array_equal(d, (a[:, None, :] != b[None, :, :]).sum(axis=2))
    # real codes pack by sign, 0 counting as +1
    assert np.array_equal(metrics.pack_codes(np.array([[0.3, -0.1, 0.0, -2.0]])), [[0b10100000]])
    assert np.array_equal(metrics.binarize([[0.3, -0.1, 0.0]]), [[1, -1, 1]])


KERNEL_CASES = {
    # name: (n_query, n_db, bits, classes, multi_label, flip) — one per branch of hamming_ap.c
    "one_word_codes_one_word_labels_ties": (13, 400, 6, 5, False, 0.3),     # the unrolled fast path
    "two_word_codes": (9, 300, 70, 4, False, 0.25),                        # general path: codes
    "two_word_labels": (11, 350, 10, 70, True, 0.3),                       # general path: labels > 64
    "two_word_codes_and_labels": (7, 250, 100, 130, True, 0.2),
}


@pytest.mark.parametrize("name", sorted(KERNEL_CASES))
@pytest.mark.parametrize("R_of", [lambda n: n, lambda n: n // 2, lambda n: 37, lambda n: 1])
def test_kernel_on_every_branch(ap_path, name, R_of):
    """The C kernel itself, against the brute-force reference and the numpy path, on each of its
    branches (one/two-word codes and labels, ties) and for R = N, N/2 and R ≪ N."""
    if ap_path != "kernel":
        pytest.skip("runs once, in the kernel pass")
    nq, nd, k, c, multi, flip = KERNEL_CASES[name]
    rng = np.random.default_rng(11)
    lab = (lambda r, n, cc: multi_hot(r, n, cc, p=0.05)) if multi else one_hot
    ql, dl = lab(rng, nq, c), lab(rng, nd, c)
    qc, dc = clustered_codes(rng, ql, k, flip), clustered_codes(rng, dl, k, flip)
    R = R_of(nd)
    kernel = metrics.hamming_ap.average_precisions(qc, ql, dc, dl, R, workers=2)
    assert np.allclose(kernel, ref_aps(qc, ql, dc, dl, R), rtol=0, atol=TOL)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(metrics, "USE_KERNEL", False)
        assert np.allclose(kernel, metrics.average_precisions(qc, ql, dc, dl, R=R), rtol=0, atol=TOL)
