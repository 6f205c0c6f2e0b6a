"""The DHN Python layers inside real Caffe nets (float32): values equal the numpy math,
backward with a loss_weight other than 1 matches central finite differences computed through
Caffe's own forward, propagate_down is honoured, and bad use fails at set-up with a clear error.

Tolerances: Caffe computes in float32. Finite differences with step 1e-2 on the loss
(≈ 1e-1 in magnitude, float32 round-off ≈ 1e-8) leave ≈ 1e-5 absolute noise per entry;
we require atol 2e-4 plus rtol 1e-2 on gradients of magnitude up to ≈ 1e-2.
"""
import os
import tempfile

import caffe
import numpy as np
import pytest

import dhn_losses


@pytest.fixture(autouse=True)
def caffe_mode():
    """DHN_CAFFE_MODE=gpu runs every check here with Caffe in GPU mode (tools/gpu/check.sh does)."""
    if os.environ.get("DHN_CAFFE_MODE") == "gpu":
        caffe.set_device(0)
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    yield
    caffe.set_mode_cpu()


def make_net(layer, n, k, c=None, param_str="", loss_weight=1.0, propagate_down=None, labels_shape=None,
             force_backward=False):
    """Input codes (and labels) → one DHN Python layer, as a real Caffe net."""
    # The codes pass through an identity Scale layer with a learnable factor, so that they need
    # backward as in a real net (force_backward would override propagate_down: false).
    lines = ['name: "t"' + (" force_backward: true" if force_backward else ""),
             'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: %d dim: %d } } }' % (n, k),
             'layer { name: "z" type: "Scale" bottom: "x" top: "z" '
             'scale_param { axis: 0 num_axes: 0 filler { type: "constant" value: 1 } } }']
    bottoms = ['bottom: "z"']
    if c is not None:
        dims = " ".join("dim: %d" % d for d in (labels_shape or (n, c)))
        lines.append('layer { name: "y" type: "Input" top: "y" input_param { shape { %s } } }' % dims)
        bottoms.append('bottom: "y"')
    if propagate_down is None and c is not None:
        propagate_down = [True, False]   # as the generated nets: no gradient to the labels
    pd = "".join(" propagate_down: %s" % str(p).lower() for p in propagate_down or [])
    lines.append('layer { name: "loss" type: "Python" %s top: "loss" loss_weight: %g%s '
                 'python_param { module: "dhn_layers" layer: "%s" param_str: "%s" } }'
                 % (" ".join(bottoms), loss_weight, pd, layer, param_str.replace('"', '\\"')))
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as fh:
        fh.write("\n".join(lines))
    try:
        return caffe.Net(fh.name, caffe.TRAIN)
    finally:
        os.unlink(fh.name)


def forward_loss(net, z):
    net.blobs["x"].data[...] = z
    return net.forward()["loss"].item()


def caffe_fd_grad(net, z, h=1e-2):
    g = np.zeros_like(z, dtype=np.float64)
    for idx in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        g[idx] = (forward_loss(net, zp) - forward_loss(net, zm)) / (2 * h)
    return g


LAYERS = [
    ("PairwiseCrossEntropyLoss", lambda z, s: dhn_losses.pairwise_cross_entropy(z, s)),
    ("PairwiseSquaredLoss", lambda z, s: dhn_losses.pairwise_squared(z, s)),
    ("QuantizationLoss", lambda z, s: dhn_losses.quantization(z)),
]


@pytest.mark.parametrize("layer,math", LAYERS)
@pytest.mark.parametrize("multilabel", [False, True])
def test_value_and_backward_match_math_and_finite_differences(layer, math, multilabel):
    n, k, c = 6, 5, 4
    rng = np.random.default_rng(42)
    z = np.tanh(rng.normal(scale=1.2, size=(n, k))).astype(np.float32)
    z[np.abs(z) < 0.05] = 0.3               # away from the quantization kink at 0
    labels = (rng.random((n, c)) < 0.4) if multilabel else np.eye(c)[rng.integers(0, c, n)]
    labels = labels.astype(np.float32)
    weight = 0.7                             # a loss_weight other than 1
    quant = layer == "QuantizationLoss"
    net = make_net(layer, n, k, None if quant else c, loss_weight=weight)
    if not quant:
        net.blobs["y"].data[...] = labels
    loss = forward_loss(net, z)
    expected, dz = math(z.astype(np.float64), dhn_losses.similarity(labels))
    assert loss == pytest.approx(expected, rel=1e-5)
    net.backward()
    np.testing.assert_allclose(net.blobs["z"].diff, weight * dz, rtol=1e-5, atol=1e-9)
    # Caffe's total objective is weight · loss: its finite differences are the blob's diff.
    fd = weight * caffe_fd_grad(net, z)
    forward_loss(net, z)
    net.backward()
    np.testing.assert_allclose(net.blobs["z"].diff, fd, rtol=1e-2, atol=2e-4)


def test_class_index_labels_from_a_data_layer_shape():
    # A Data layer's label top is N (class indices): the layer accepts it as such.
    n, k = 4, 3
    net = make_net("PairwiseCrossEntropyLoss", n, k, 1, labels_shape=(n,))
    net.blobs["y"].data[...] = [0, 1, 0, 2]
    z = np.full((n, k), 0.5, np.float32)
    s = dhn_losses.similarity(np.array([0, 1, 0, 2]))
    assert forward_loss(net, z) == pytest.approx(dhn_losses.pairwise_cross_entropy(z, s)[0], rel=1e-6)


def test_param_str_is_used():
    n, k, c = 5, 4, 3
    rng = np.random.default_rng(1)
    z = rng.uniform(-1, 1, (n, k)).astype(np.float32)
    labels = np.eye(c)[rng.integers(0, c, n)].astype(np.float32)
    s = dhn_losses.similarity(labels)
    params = {"alpha": 0.5, "include_diagonal": False, "similar_weight": 2.0}
    net = make_net("PairwiseCrossEntropyLoss", n, k, c, param_str=repr(params))
    net.blobs["y"].data[...] = labels
    assert forward_loss(net, z) == pytest.approx(dhn_losses.pairwise_cross_entropy(z, s, **params)[0], rel=1e-5)


def test_propagate_down_false_leaves_codes_diff_alone():
    n, k, c = 4, 3, 2
    net = make_net("PairwiseCrossEntropyLoss", n, k, c, propagate_down=[False, False])
    net.blobs["y"].data[...] = np.eye(c)[[0, 1, 0, 1]]
    net.blobs["z"].diff[...] = 123.0
    forward_loss(net, np.full((n, k), 0.2, np.float32))
    net.backward()
    np.testing.assert_array_equal(net.blobs["z"].diff, 123.0)


@pytest.mark.parametrize("layer", ["PairwiseCrossEntropyLoss", "PairwiseSquaredLoss"])
def test_force_backward_gives_the_labels_a_zero_gradient(layer):
    # Caffe's LossLayer declines the labels' gradient under force_backward; the Python layers
    # cannot declare that, so they write zeros there (and the codes get their gradient)
    n, k, c = 4, 3, 2
    net = make_net(layer, n, k, c, propagate_down=[], force_backward=True)
    labels = np.eye(c)[[0, 1, 0, 1]]
    z = np.random.default_rng(5).normal(size=(n, k)).astype(np.float32)
    net.blobs["y"].data[...] = labels
    net.blobs["y"].diff[...] = 7.0
    forward_loss(net, z)
    net.backward()
    np.testing.assert_array_equal(net.blobs["y"].diff, 0.0)
    math = dict(LAYERS)[layer]
    np.testing.assert_allclose(net.blobs["z"].diff, math(z.astype(np.float64), dhn_losses.similarity(labels))[1],
                               rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kwargs,message", [
    (dict(layer="QuantizationLoss", n=4, k=3, c=2), "needs 1 bottom"),
    (dict(layer="PairwiseCrossEntropyLoss", n=4, k=3), "needs 2 bottom"),
    (dict(layer="PairwiseCrossEntropyLoss", n=4, k=3, c=2, labels_shape=(5, 2)), "codes have 4 rows but labels have 5"),
    (dict(layer="PairwiseCrossEntropyLoss", n=4, k=3, c=2, param_str="{'beta': 1}"), "unknown parameter 'beta'"),
    (dict(layer="PairwiseCrossEntropyLoss", n=4, k=3, c=2, param_str="{'alpha': 'x'}"), "must be float"),
    (dict(layer="PairwiseSquaredLoss", n=4, k=3, c=2, param_str="alpha=1"), "not a dict literal"),
])
def test_bad_use_fails_at_setup(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_net(**kwargs)


def test_non_finite_codes_are_an_error():
    net = make_net("QuantizationLoss", 2, 2)
    net.blobs["x"].data[...] = [[0.1, np.nan], [0.2, 0.3]]
    with pytest.raises(FloatingPointError, match="non-finite"):
        net.forward()
