"""CPU layers checked against numpy, those the project's speed patch touches among them:
- Convolution (the layer a speed patch was tried on and dropped): forward, weight, bias and bottom
  gradients, for 1×1 and 3×3 kernels, groups, stride and padding, batches of several sizes;
- ReLU's backward pass and global average pooling (0005-cpu-relu-backward-and-global-average-
  pooling.patch): plain and leaky, in place and not; the global mean and its gradient.
Tolerance: float32 sums of at most a few thousand terms, rtol 1e-4 / atol 1e-4 of the values' scale;
ReLU's values are exact."""
import numpy as np
import pytest

caffe = pytest.importorskip("caffe")
caffe.set_mode_cpu()


def conv_net(path, n, c, hw, o, kernel, stride, pad, group):
    path.write_text("""force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: %d dim: %d dim: %d dim: %d } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "y"
        convolution_param { num_output: %d kernel_size: %d stride: %d pad: %d group: %d
                            weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "gaussian" std: 1 } } }
""" % (n, c, hw, hw, o, kernel, stride, pad, group))
    return caffe.Net(str(path), caffe.TRAIN)


def reference(x, w, b, stride, pad, group):
    """numpy convolution as Caffe defines it (cross-correlation, NCHW, grouped)."""
    n, c, h, _ = x.shape
    o, cg, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).astype(np.float64)
    out = (h + 2 * pad - k) // stride + 1
    # patches: n × c × out × out × k × k
    idx = np.arange(out) * stride
    patches = np.stack([np.stack([xp[:, :, idx + i][:, :, :, idx + j] for j in range(k)], -1) for i in range(k)], -2)
    y = np.empty((n, o, out, out))
    og = o // group
    for g in range(group):
        y[:, g * og:(g + 1) * og] = np.einsum("ncpqij,ocij->nopq", patches[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og])
    return y + b.reshape(1, -1, 1, 1), patches


CASES = {   # n, c, hw, o, kernel, stride, pad, group
    "1x1, two products of 32 (13x13, as conv_final)": (64, 6, 13, 10, 1, 1, 0, 1),
    "1x1, an uneven split (3 products)": (101, 4, 13, 5, 1, 1, 0, 1),
    "3x3 pad 1, groups of 2": (40, 4, 13, 6, 3, 1, 1, 2),
    "3x3 stride 2": (9, 3, 11, 4, 3, 2, 0, 1),
    "one image per product (65x65 output)": (3, 2, 65, 3, 1, 1, 0, 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_convolution_matches_numpy(tmp_path, case):
    n, c, hw, o, k, s, p, g = CASES[case]
    net = conv_net(tmp_path / "net.prototxt", n, c, hw, o, k, s, p, g)
    rng = np.random.RandomState(0)
    x = rng.randn(n, c, hw, hw).astype(np.float32)
    w, b = net.params["conv"][0].data.copy(), net.params["conv"][1].data.copy()
    net.blobs["x"].data[...] = x
    y = net.forward()["y"].copy()
    want, patches = reference(x, w, b, s, p, g)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())

    dy = rng.randn(*y.shape).astype(np.float32)
    for param in net.params["conv"]:
        param.diff[...] = 0
    net.blobs["y"].diff[...] = dy
    net.backward()
    og, cg = o // g, c // g
    dw = np.concatenate([np.einsum("nopq,ncpqij->ocij", dy[:, i * og:(i + 1) * og], patches[:, i * cg:(i + 1) * cg])
                         for i in range(g)])
    np.testing.assert_allclose(net.params["conv"][0].diff, dw, rtol=1e-4, atol=1e-4 * np.abs(dw).max())
    np.testing.assert_allclose(net.params["conv"][1].diff, dy.sum((0, 2, 3)), rtol=1e-4, atol=1e-3)
    dpatches = np.concatenate([np.einsum("nopq,ocij->ncpqij", dy[:, i * og:(i + 1) * og], w[i * og:(i + 1) * og])
                               for i in range(g)], axis=1)
    dxp = np.zeros((n, c, hw + 2 * p, hw + 2 * p))
    idx = np.arange(y.shape[2]) * s
    for i in range(k):
        for j in range(k):
            dxp[:, :, (idx + i)[:, None], (idx + j)[None, :]] += dpatches[..., i, j]
    dx = dxp[:, :, p:p + hw, p:p + hw]
    np.testing.assert_allclose(net.blobs["x"].diff, dx, rtol=1e-4, atol=1e-4 * np.abs(dx).max())


def small_net(path, text):
    path.write_text("force_backward: true\n" + text)
    return caffe.Net(str(path), caffe.TRAIN)


@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("in_place", [True, False])
def test_relu_backward_is_exact(tmp_path, slope, in_place):
    top = "x" if in_place else "y"
    net = small_net(tmp_path / "relu.prototxt", """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 3 dim: 5 dim: 7 dim: 9 } } }
layer { name: "relu" type: "ReLU" bottom: "x" top: "%s" relu_param { negative_slope: %g } }
""" % (top, slope))
    rng = np.random.RandomState(2)
    x = rng.randn(3, 5, 7, 9).astype(np.float32)
    x[0, 0, 0, :3] = 0                                   # the kink: Caffe's gradient there is the slope's
    net.blobs["x"].data[...] = x
    y = net.forward()[top].copy()
    np.testing.assert_array_equal(y, np.where(x > 0, x, np.float32(slope) * x))
    dy = rng.randn(*x.shape).astype(np.float32)
    net.blobs[top].diff[...] = dy
    net.backward()
    np.testing.assert_array_equal(net.blobs["x"].diff, np.where(x > 0, dy, np.float32(slope) * dy))


@pytest.mark.parametrize("pool", ["AVE", "MAX"])
def test_global_pooling_mean_and_gradient(tmp_path, pool):
    net = small_net(tmp_path / "pool.prototxt", """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 6 dim: 15 dim: 15 } } }
layer { name: "pool" type: "Pooling" bottom: "x" top: "p" pooling_param { pool: %s global_pooling: true } }
""" % pool)
    rng = np.random.RandomState(3)
    x = rng.randn(4, 6, 15, 15).astype(np.float32)
    net.blobs["x"].data[...] = x
    p = net.forward()["p"]
    assert p.shape == (4, 6, 1, 1)
    want = x.mean((2, 3)) if pool == "AVE" else x.max((2, 3))
    np.testing.assert_allclose(p[:, :, 0, 0], want, rtol=1e-5, atol=1e-6)
    dp = rng.randn(4, 6, 1, 1).astype(np.float32)
    net.blobs["p"].diff[...] = dp
    net.backward()
    if pool == "AVE":
        want = np.broadcast_to(dp / 225, x.shape)
    else:
        want = np.where(x == x.max((2, 3), keepdims=True), dp, 0)
    np.testing.assert_allclose(net.blobs["x"].diff, want, rtol=1e-6, atol=1e-9)


def test_windowed_average_pooling_keeps_its_padding_rule(tmp_path):
    """Not global: Caffe's own loops, whose divisor counts the padding inside the image + pad."""
    net = small_net(tmp_path / "pool.prototxt", """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "pool" type: "Pooling" bottom: "x" top: "p"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
""")
    net.blobs["x"].data[...] = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    p = net.forward()["p"][0, 0]
    x = np.arange(16.0).reshape(4, 4)
    assert p.shape == (3, 3)                  # ceil((4 + 2 - 3) / 2) + 1
    want = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            h0, w0 = 2 * i - 1, 2 * j - 1
            h1, w1 = min(h0 + 3, 5), min(w0 + 3, 5)          # the window may reach into the padding
            want[i, j] = x[max(h0, 0):min(h1, 4), max(w0, 0):min(w1, 4)].sum() / ((h1 - h0) * (w1 - w0))
    np.testing.assert_allclose(p, want, rtol=1e-6)
