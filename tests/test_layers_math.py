"""The loss math of layers/dhn_losses.py: values worked by hand, gradients against central
finite differences (float64), stability at extreme θ, and an independent re-derivation.

Tolerances: finite differences with step 1e-6 in float64 agree with the analytic gradient to
rtol 1e-5 / atol 1e-8 (the truncation error is O(h²) ≈ 1e-12 relative, round-off ≈ 1e-10/h).
"""
import numpy as np
import pytest

import dhn_losses as L

RTOL, ATOL = 1e-5, 1e-8


def numeric_grad(f, z, h=1e-6):
    g = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        g[idx] = (f(zp) - f(zm)) / (2 * h)
    return g


def random_case(rng, b, k, c, multilabel):
    z = np.tanh(rng.normal(scale=1.5, size=(b, k)))
    if multilabel:
        labels = (rng.random((b, c)) < 0.3).astype(np.float64)
    else:
        labels = rng.integers(0, c, size=b)
    return z, labels


# --- similarity -------------------------------------------------------------------------

def test_similarity_single_label_is_class_equality():
    s = L.similarity(np.array([0, 2, 0, 1]))
    expected = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]], float)
    np.testing.assert_array_equal(s, expected)


def test_similarity_multilabel_shares_any_label():
    labels = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 0], [0, 0, 0]])
    s = L.similarity(labels)
    # rows 0 and 1 share label 2; row 2 shares nothing with 0/1; row 3 has no label at all,
    # so it is similar to nothing, itself included.
    expected = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], float)
    np.testing.assert_array_equal(s, expected)


def test_similarity_one_hot_equals_class_indices():
    idx = np.array([3, 1, 3, 0, 2])
    np.testing.assert_array_equal(L.similarity(idx), L.similarity(np.eye(4)[idx]))


# --- hand-worked values ------------------------------------------------------------------

def test_pairwise_cross_entropy_by_hand():
    # z_1 = (1, 0), z_2 = (0, 1), same class. θ = [[1, 0], [0, 1]], s = all ones.
    # pairs (1,1),(2,2): log(1+e) − 1 = 0.31326...; pairs (1,2),(2,1): log 2 − 0 = 0.69315...
    # mean over the 4 ordered pairs = (2·0.313262 + 2·0.693147) / 4 = 0.503204...
    z = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss, _ = L.pairwise_cross_entropy(z, np.ones((2, 2)))
    assert loss == pytest.approx((2 * (np.log1p(np.e) - 1) + 2 * np.log(2)) / 4, rel=1e-12)
    assert loss == pytest.approx(0.5032045, abs=1e-7)
    # without the diagonal only the two off-diagonal pairs remain: log 2.
    loss, _ = L.pairwise_cross_entropy(z, np.ones((2, 2)), include_diagonal=False)
    assert loss == pytest.approx(np.log(2), rel=1e-12)


def test_quantization_by_hand():
    # |z| − 1 for z = (1, −1, 0): (0, 0, −1). log cosh: 0, 0, log cosh 1 = 0.433781...
    # mean over B·K = 3 entries: 0.144594...
    loss, dz = L.quantization(np.array([[1.0, -1.0, 0.0]]))
    assert loss == pytest.approx(np.log(np.cosh(1.0)) / 3, rel=1e-12)
    assert loss == pytest.approx(0.1445937, abs=1e-7)
    np.testing.assert_array_equal(dz, 0.0)  # zero at |z| = 1, and by convention at the kink z = 0


def test_pairwise_squared_by_hand():
    # z_1 = (1, 1), z_2 = (1, −1), K = 2, dissimilar (ŝ = −1 off the diagonal, +1 on it).
    # ⟨z_i, z_j⟩/K: diagonal 1, off-diagonal 0. Residuals: 0 on the diagonal, 0 − (−1) = 1 off it.
    # mean over 4 pairs of r² = 2/4 = 0.5.
    z = np.array([[1.0, 1.0], [1.0, -1.0]])
    loss, _ = L.pairwise_squared(z, np.eye(2))
    assert loss == pytest.approx(0.5, rel=1e-12)


# --- gradients against finite differences ----------------------------------------------

CASES = [(2, 1, 2, False), (5, 3, 4, False), (8, 12, 5, True), (16, 48, 21, True)]


@pytest.mark.parametrize("b,k,c,multilabel", CASES)
@pytest.mark.parametrize("alpha,diag,sw", [(1.0, True, 1.0), (0.5, False, 3.0), (1.0, True, "balanced")])
def test_pairwise_cross_entropy_gradient(b, k, c, multilabel, alpha, diag, sw):
    rng = np.random.default_rng(b * 100 + k)
    z, labels = random_case(rng, b, k, c, multilabel)
    s = L.similarity(labels)
    kw = dict(alpha=alpha, include_diagonal=diag, similar_weight=sw)
    _, dz = L.pairwise_cross_entropy(z, s, **kw)
    num = numeric_grad(lambda x: L.pairwise_cross_entropy(x, s, **kw)[0], z)
    np.testing.assert_allclose(dz, num, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("b,k,c,multilabel", CASES)
@pytest.mark.parametrize("diag", [True, False])
def test_pairwise_squared_gradient(b, k, c, multilabel, diag):
    rng = np.random.default_rng(b * 7 + k)
    z, labels = random_case(rng, b, k, c, multilabel)
    s = L.similarity(labels)
    _, dz = L.pairwise_squared(z, s, include_diagonal=diag)
    num = numeric_grad(lambda x: L.pairwise_squared(x, s, include_diagonal=diag)[0], z)
    np.testing.assert_allclose(dz, num, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("b,k", [(1, 1), (4, 6), (16, 48)])
def test_quantization_gradient(b, k):
    rng = np.random.default_rng(b + k)
    z = rng.uniform(-3, 3, size=(b, k))
    z[np.abs(z) < 1e-3] = 0.5                     # keep away from the kink at z = 0
    _, dz = L.quantization(z)
    num = numeric_grad(lambda x: L.quantization(x)[0], z)
    np.testing.assert_allclose(dz, num, rtol=RTOL, atol=ATOL)


def test_gradients_with_saturated_codes():
    # tanh outputs near ±1, as after training: |z| = 1 − 1e-7.
    rng = np.random.default_rng(0)
    z = np.sign(rng.normal(size=(6, 8))) * (1 - 1e-7)
    s = L.similarity(rng.integers(0, 3, size=6))
    _, dz = L.pairwise_cross_entropy(z, s)
    num = numeric_grad(lambda x: L.pairwise_cross_entropy(x, s)[0], z)
    np.testing.assert_allclose(dz, num, rtol=RTOL, atol=ATOL)
    _, dq = L.quantization(z)
    np.testing.assert_allclose(dq, numeric_grad(lambda x: L.quantization(x)[0], z), rtol=1e-4, atol=1e-10)


# --- stability ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_cross_entropy_is_finite_and_exact_at_extreme_theta(dtype):
    # θ = ±1e3 on and off the diagonal. Exact values: softplus(1e3) − s·1e3 = 1e3 (1 − s),
    # softplus(−1e3) − s·(−1e3) = 1e3 s (to 1e-430, i.e. exactly in float64).
    a = np.sqrt(1e3)
    z = np.array([[a, 0.0], [-a, 0.0]], dtype=dtype)   # θ = [[1e3, −1e3], [−1e3, 1e3]]
    s = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss, dz = L.pairwise_cross_entropy(z, s)
    assert np.isfinite(loss) and np.all(np.isfinite(dz))
    assert loss == pytest.approx(0.0, abs=1e-3)         # every pair is right with certainty
    s_wrong = 1 - s
    loss, dz = L.pairwise_cross_entropy(z, s_wrong)
    assert loss == pytest.approx(1e3, rel=1e-4)         # every pair wrong by θ = 1e3
    assert np.all(np.isfinite(dz))


def test_softplus_has_no_switch():
    # The value is continuous across any threshold an implementation might switch at (15, 30).
    x = np.array([14.999999, 15.0, 15.000001, 29.999999, 30.0, 30.000001])
    np.testing.assert_allclose(np.diff(L.softplus(x)), np.diff(x), rtol=1e-6)


def test_log_cosh_large_argument():
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    out = L.log_cosh(x)
    assert np.all(np.isfinite(out))
    big = np.abs(x) >= 50                    # log cosh x → |x| − log 2 (error e^−100 here)
    np.testing.assert_allclose(out[big], np.abs(x[big]) - np.log(2), rtol=1e-12)
    assert out[2] == 0.0


# --- independent re-derivation -------------------------------------------------------

def test_pairwise_loss_is_mean_binary_cross_entropy():
    # For α = 1: log(1 + e^θ) − sθ = −[s log σ(θ) + (1 − s) log(1 − σ(θ))], the cross-entropy of
    # σ(θ) against s, so the loss is the mean BCE over pairs, and ∂/∂θ = σ(θ) − s.
    rng = np.random.default_rng(3)
    z, labels = random_case(rng, 10, 16, 4, True)
    s = L.similarity(labels)
    theta = z @ z.T
    p = 1 / (1 + np.exp(-theta))
    bce = -(s * np.log(p) + (1 - s) * np.log(1 - p))
    loss, dz = L.pairwise_cross_entropy(z, s)
    assert loss == pytest.approx(bce.mean(), rel=1e-12)
    # chain rule written out per element: ∂L/∂z_i = Σ_j (g_ij + g_ji) z_j with g = (p − s)/B².
    g = (p - s) / s.size
    manual = np.stack([sum((g[i, j] + g[j, i]) * z[j] for j in range(10)) for i in range(10)])
    np.testing.assert_allclose(dz, manual, rtol=1e-12)


def test_bad_labels():
    with pytest.raises(ValueError, match="non-negative integers"):
        L.similarity(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="at least 2 samples"):
        L.pairwise_cross_entropy(np.ones((1, 3)), np.ones((1, 1)), include_diagonal=False)
