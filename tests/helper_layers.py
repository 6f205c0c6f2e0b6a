"""A Python layer for the foundation tests (not a DHN loss): Caffe's own examples/pycaffe
EuclideanLossLayer, plus a marker file written when backward runs, so a test can tell that
Caffe called it even from the `caffe` binary's process."""
import caffe
import numpy as np


class EuclideanLoss(caffe.Layer):
    def setup(self, bottom, top):
        self.marker = self.param_str or None

    def reshape(self, bottom, top):
        self.diff = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        if self.marker:
            with open(self.marker, "a") as fh:
                fh.write("backward\n")
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                bottom[i].diff[...] = sign * self.diff / bottom[i].num
