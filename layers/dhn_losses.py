"""The DHN loss math, as plain numpy: value and hand-derived gradient, in one place.

The Caffe Python layers in ``dhn_layers.py`` and the tests both call these functions.
Everything is computed in float64 and returned as float64; the layers cast to Caffe's
float32 on the way out.

Conventions follow the authors' Caffe code (docs/FIDELITY.md):
- θ_ij = α ⟨z_i, z_j⟩ with α = 1;
- the pairwise losses average over all B×B ordered pairs, i = j included
  (``include_diagonal=False`` averages over the B(B−1) pairs with i ≠ j instead);
- the quantization loss averages ``log cosh(|z| − 1)`` over the B·K entries, and its
  gradient is the exact gradient of that mean (the authors' code divided by B only).
"""
import numpy as np

LOG2 = np.log(2.0)


def similarity(labels_a, labels_b=None):
    """s_ij = 1 when images i and j share at least one label, else 0 (float64, N_a×N_b).

    ``labels`` is either N class indices (shape (N,) or (N, 1)) or an N×C multi-hot
    matrix. Two single-label images are similar iff their classes are equal, which is the
    multi-hot rule applied to one-hot vectors.
    """
    a = as_label_matrix(labels_a)
    b = a if labels_b is None else as_label_matrix(labels_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError("label matrices have %d and %d columns" % (a.shape[1], b.shape[1]))
    return (a @ b.T > 0).astype(np.float64)


def as_label_matrix(labels):
    """N class indices -> one-hot N×(max+1); N×C multi-hot -> itself (as float64)."""
    labels = np.asarray(labels)
    if labels.ndim > 2:
        labels = labels.reshape(labels.shape[0], -1)
    if labels.ndim == 1 or labels.shape[1] == 1:
        idx = labels.reshape(-1)
        if not np.all(np.isfinite(idx)) or np.any(idx < 0) or np.any(idx != np.round(idx)):
            raise ValueError("class-index labels must be non-negative integers")
        idx = idx.astype(np.int64)
        onehot = np.zeros((idx.size, int(idx.max(initial=0)) + 1))
        onehot[np.arange(idx.size), idx] = 1.0
        return onehot
    return labels.astype(np.float64)


def softplus(x):
    """log(1 + exp(x)), exact and overflow-free for any x (no switch that changes the value)."""
    return np.logaddexp(0.0, x)


def sigmoid(x):
    """σ(x) without overflow for large |x|."""
    out = np.empty_like(x, dtype=np.float64)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def log_cosh(x):
    """log cosh(x) = |x| + log1p(exp(−2|x|)) − log 2, stable for large |x|."""
    ax = np.abs(x)
    return ax + np.log1p(np.exp(-2.0 * ax)) - LOG2


def _pair_weights(s, include_diagonal, similar_weight):
    """Per-pair weights w_ij and the number of pairs the mean divides by."""
    mask = np.ones_like(s)
    if not include_diagonal:
        np.fill_diagonal(mask, 0.0)
    n_pairs = mask.sum()
    if n_pairs == 0:
        raise ValueError("a pairwise loss needs at least 2 samples without the diagonal")
    if similar_weight == "balanced":
        # The TF port's option: similar pairs weighted by (#pairs / #similar pairs).
        n_sim = (s * mask).sum()
        similar_weight = n_pairs / n_sim if n_sim > 0 else 1.0
    w = mask * np.where(s > 0, float(similar_weight), 1.0)
    return w, n_pairs


def pairwise_cross_entropy(z, s, alpha=1.0, include_diagonal=True, similar_weight=1.0):
    """DHN's pairwise cross-entropy loss and its gradient with respect to z.

    L = (1/P) Σ_ij w_ij [log(1 + exp θ_ij) − s_ij θ_ij],   θ = α z zᵀ,
    P = number of pairs averaged over. With G_ij = ∂L/∂θ_ij = w_ij (σ(θ_ij) − s_ij) / P,
    ∂L/∂z = α (G + Gᵀ) z.
    Returns (loss: float, dz: float64 array like z).
    """
    z = np.asarray(z, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    w, n_pairs = _pair_weights(s, include_diagonal, similar_weight)
    theta = alpha * (z @ z.T)
    loss = float((w * (softplus(theta) - s * theta)).sum() / n_pairs)
    g = w * (sigmoid(theta) - s) / n_pairs
    dz = alpha * ((g + g.T) @ z)
    return loss, dz


def pairwise_squared(z, s, include_diagonal=True, similar_weight=1.0):
    """DHN-E's pairwise squared loss: L = (1/P) Σ_ij w_ij (⟨z_i, z_j⟩/K − ŝ_ij)², ŝ = 2s − 1.

    With G_ij = 2 w_ij (⟨z_i, z_j⟩/K − ŝ_ij) / (K P), ∂L/∂z = (G + Gᵀ) z.
    """
    z = np.asarray(z, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    k = z.shape[1]
    w, n_pairs = _pair_weights(s, include_diagonal, similar_weight)
    r = (z @ z.T) / k - (2.0 * s - 1.0)
    loss = float((w * r * r).sum() / n_pairs)
    g = 2.0 * w * r / (k * n_pairs)
    dz = (g + g.T) @ z
    return loss, dz


def quantization(z):
    """DHN's quantization loss, the smooth relaxation of || |z| − 1 ||_1:

    L = (1/(B·K)) Σ_ik log cosh(|z_ik| − 1),
    ∂L/∂z_ik = tanh(|z_ik| − 1) · sign(z_ik) / (B·K)   (0 at z = 0, where the kink is).
    """
    z = np.asarray(z, dtype=np.float64)
    d = np.abs(z) - 1.0
    loss = float(log_cosh(d).mean())
    dz = np.tanh(d) * np.sign(z) / z.size
    return loss, dz
