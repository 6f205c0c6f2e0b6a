"""DHN's losses as Caffe Python layers (``type: "Python"``), with hand-written backward.

Used from a prototxt as

    layer { name: "pair_loss" type: "Python" bottom: "code" bottom: "label" top: "pair_loss"
            python_param { module: "dhn_layers" layer: "PairwiseCrossEntropyLoss"
                           param_str: "{'alpha': 1.0}" }
            loss_weight: 1 }

A Python layer is not a Caffe LossLayer, so ``loss_weight`` must be given in the prototxt
(Caffe's default for Python tops is 0). λ of the paper is the quantization layer's
``loss_weight``. The math lives in ``dhn_losses``; these classes only check their inputs,
move blobs in and out and scale by the loss weight Caffe puts in ``top[0].diff``.
"""
import ast
import sys

import caffe
import numpy as np

import dhn_losses


def fail(exc):
    """Print the one-line reason, then raise. Under the `caffe` binary a Python exception ends
    in std::terminate and its message is lost; printed first, it reaches the log."""
    print("dhn_layers: %s: %s" % (type(exc).__name__, exc), file=sys.stderr, flush=True)
    raise exc


def parse_params(layer_name, param_str, defaults):
    """param_str is a Python dict literal; unknown keys and ill-typed values are errors."""
    params = dict(defaults)
    if param_str.strip():
        try:
            given = ast.literal_eval(param_str)
        except (ValueError, SyntaxError) as e:
            fail(ValueError("%s: param_str %r is not a dict literal (%s)" % (layer_name, param_str, e)))
        if not isinstance(given, dict):
            fail(ValueError("%s: param_str must be a dict literal, got %r" % (layer_name, param_str)))
        for key, value in given.items():
            if key not in defaults:
                fail(ValueError("%s: unknown parameter %r (known: %s)"
                                 % (layer_name, key, ", ".join(sorted(defaults)))))
            expected = type(defaults[key])
            if key == "similar_weight" and value == "balanced":
                pass
            elif expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = float(value)
            elif not isinstance(value, expected):
                fail(ValueError("%s: parameter %r must be %s, got %r"
                                 % (layer_name, key, expected.__name__, value)))
            params[key] = value
    return params


def codes_of(blob, layer_name):
    """The N×K codes of a bottom blob, as float64; non-finite input is an error."""
    z = blob.data.reshape(blob.num, -1).astype(np.float64)
    if not np.all(np.isfinite(z)):
        fail(FloatingPointError("%s: non-finite values in the codes bottom (the loss diverged? "
                                 "lower the learning rate)" % layer_name))
    return z


class _LossLayer(caffe.Layer):
    """Common checks: bottom count, a scalar top, a zero gradient to the labels."""
    n_bottoms = 2
    defaults = {}

    def setup(self, bottom, top):
        name = type(self).__name__
        if len(bottom) != self.n_bottoms:
            fail(ValueError("%s needs %d bottom(s) (codes%s), got %d"
                             % (name, self.n_bottoms, ", labels" if self.n_bottoms == 2 else "",
                                len(bottom))))
        if len(top) != 1:
            fail(ValueError("%s has exactly one top (the loss), got %d" % (name, len(top))))
        self.params = parse_params(name, self.param_str, self.defaults)

    def reshape(self, bottom, top):
        if self.n_bottoms == 2 and bottom[0].num != bottom[1].num:
            fail(ValueError("%s: codes have %d rows but labels have %d"
                             % (type(self).__name__, bottom[0].num, bottom[1].num)))
        top[0].reshape(1)

    def forward(self, bottom, top):
        z = codes_of(bottom[0], type(self).__name__)
        loss, self.dz = self.value_and_grad(z, bottom)
        top[0].data[...] = loss

    def backward(self, top, propagate_down, bottom):
        if self.n_bottoms == 2 and propagate_down[1]:
            # Caffe's LossLayer declines a gradient to its labels under force_backward
            # (AllowForceBackward(1) is false); a Python layer cannot declare that, and it is not
            # told whether the request comes from force_backward or from an explicit
            # propagate_down: true (Caffe ORs the two). The labels get a zero gradient, as
            # Caffe's loss layers leave theirs.
            bottom[1].diff[...] = 0
        if propagate_down[0]:
            scale = float(top[0].diff.flat[0])   # the loss weight
            bottom[0].diff[...] = (scale * self.dz).reshape(bottom[0].diff.shape)


class PairwiseCrossEntropyLoss(_LossLayer):
    """DHN's pairwise cross-entropy loss; bottoms: codes (N×K), labels (N or N×C)."""
    defaults = {"alpha": 1.0, "include_diagonal": True, "similar_weight": 1.0}

    def value_and_grad(self, z, bottom):
        s = dhn_losses.similarity(bottom[1].data)
        return dhn_losses.pairwise_cross_entropy(z, s, **self.params)


class PairwiseSquaredLoss(_LossLayer):
    """DHN-E's pairwise squared loss; bottoms: codes (N×K), labels (N or N×C)."""
    defaults = {"include_diagonal": True, "similar_weight": 1.0}

    def value_and_grad(self, z, bottom):
        s = dhn_losses.similarity(bottom[1].data)
        return dhn_losses.pairwise_squared(z, s, **self.params)


class QuantizationLoss(_LossLayer):
    """DHN's quantization loss, mean of log cosh(|z| − 1); one bottom: the codes."""
    n_bottoms = 1

    def value_and_grad(self, z, bottom):
        return dhn_losses.quantization(z)
