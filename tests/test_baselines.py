"""dhn.baselines.linear_probe: the supervised linear reference of the real-data tables.
Tolerances: accuracies on separable synthetic data, stated per assertion."""
import numpy as np

from dhn import baselines


def clusters(n, c, d, seed, spread=0.5):
    rng = np.random.RandomState(seed)
    centres = rng.standard_normal((c, d)) * 3
    y = rng.randint(c, size=n)
    return centres[y] + spread * rng.standard_normal((n, d)) + 5.0, np.eye(c)[y]   # offset: standardisation matters


def test_softmax_probe_separates_clusters_and_is_deterministic():
    x, y = clusters(600, 5, 20, seed=0)
    post = baselines.linear_probe(x[:400], y[:400], epochs=30)
    p = post(x[400:])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)       # softmax posteriors
    assert (p.argmax(axis=1) == y[400:].argmax(axis=1)).mean() > 0.95
    np.testing.assert_array_equal(p, baselines.linear_probe(x[:400], y[:400], epochs=30)(x[400:]))


def test_multilabel_probe_uses_one_sigmoid_per_label():
    rng = np.random.RandomState(1)
    x = rng.standard_normal((500, 10))
    y = (x[:, :3] > 0).astype(float)              # three independent labels, rows with 0..3 of them
    p = baselines.linear_probe(x[:400], y[:400], epochs=30)(x[400:])
    assert not np.allclose(p.sum(axis=1), 1.0)    # not a softmax
    assert ((p > 0.5) == (y[400:] > 0)).mean() > 0.9
