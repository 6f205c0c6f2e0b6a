"""One SGD step of Caffe's solver on fch, against an update computed by hand here — not through
dhn_losses — so a wrong constant anywhere in a loss's gradient (the authors' quantization
gradient was K× the loss's, docs/FIDELITY.md) fails this test, not only the
finite-difference ones. Tolerance: float32 forward/backward vs float64 here, rtol 1e-4."""

import caffe
import numpy as np
import pytest

B, D, K, C = 8, 5, 6, 3
LR, LAMBDA = 0.1, 2.0


def net_text(variant):
    quant = ('layer { name: "quant_loss" type: "Python" bottom: "code" top: "quant_loss" loss_weight: %r '
             'python_param { module: "dhn_layers" layer: "QuantizationLoss" } }' % (LAMBDA * K / B)) if variant == "dhn" else ""
    pair = "PairwiseSquaredLoss" if variant == "dhn-e" else "PairwiseCrossEntropyLoss"
    return """name: "step"
layer { name: "x" type: "Input" top: "x" top: "label" input_param { shape { dim: %d dim: %d } shape { dim: %d dim: %d } } }
layer { name: "fch" type: "InnerProduct" bottom: "x" top: "fch" param { lr_mult: 10 decay_mult: 1 } param { lr_mult: 20 decay_mult: 0 }
  inner_product_param { num_output: %d weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "code" type: "TanH" bottom: "fch" top: "code" }
layer { name: "pair_loss" type: "Python" bottom: "code" bottom: "label" top: "pair_loss" loss_weight: 1
  propagate_down: true propagate_down: false python_param { module: "dhn_layers" layer: "%s" } }
%s
""" % (B, D, B, C, K, pair, quant)


def hand_dz(z, s, variant):
    """dL/dz of the averaged losses, written out here from the definitions in docs/USAGE.md
    ("Conventions"), independently of layers/dhn_losses.py."""
    if variant == "dhn-e":
        r = z @ z.T / K - (2 * s - 1)
        g = 2 * r / (K * B * B)
    else:
        theta = z @ z.T
        g = (1 / (1 + np.exp(-theta)) - s) / (B * B)   # d/dθ [log(1 + e^θ) − sθ], mean over B² pairs
    dz = (g + g.T) @ z
    if variant == "dhn":   # λ·K/B × d/dz mean_{B·K} log cosh(|z| − 1)
        dz += (LAMBDA * K / B) * np.tanh(np.abs(z) - 1) * np.sign(z) / (B * K)
    return dz


@pytest.mark.parametrize("variant", ["dhn", "dhn-q", "dhn-e"])
def test_one_sgd_step_of_fch_equals_the_hand_computed_update(tmp_path, variant):
    caffe.set_mode_cpu()
    (tmp_path / "net.prototxt").write_text(net_text(variant))
    (tmp_path / "solver.prototxt").write_text(
        'net: "%s" base_lr: %r lr_policy: "fixed" momentum: 0 weight_decay: 0 max_iter: 1 '
        'snapshot_after_train: false random_seed: 3 solver_mode: CPU' % (tmp_path / "net.prototxt", LR))
    solver = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, D)).astype(np.float32)
    labels = np.eye(C, dtype=np.float32)[rng.integers(0, C, B)]
    net = solver.net
    net.blobs["x"].data[...] = x
    net.blobs["label"].data[...] = labels
    w0, b0 = net.params["fch"][0].data.astype(np.float64), net.params["fch"][1].data.astype(np.float64)
    z = np.tanh(x.astype(np.float64) @ w0.T + b0)
    s = (labels @ labels.T > 0).astype(np.float64)
    da = hand_dz(z, s, variant) * (1 - z * z)          # through tanh
    w1 = w0 - LR * 10 * (da.T @ x.astype(np.float64))  # lr_mult 10 on the weights
    b1 = b0 - LR * 20 * da.sum(0)                      # lr_mult 20 on the bias
    # Input blobs keep what we wrote, so step(1) trains on exactly x and labels
    solver.step(1)
    np.testing.assert_allclose(net.params["fch"][0].data, w1, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.params["fch"][1].data, b1, rtol=1e-4, atol=1e-6)
    assert not np.allclose(w1, w0, rtol=1e-3)          # the step is not negligible
