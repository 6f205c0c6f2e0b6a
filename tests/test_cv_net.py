"""OpenCV's DNN module as the storing pass's forward (dhn.cv_net): its outputs against pycaffe's
TEST-phase forward of the same net and weights. Tolerance: max |OpenCV − Caffe| ≤ 1e-4 of the
largest |Caffe| output (float32 sums in another order; float16 storage rounds at 5e-4 relative,
so the stored values cannot tell the two engines apart). The real SqueezeNet check skips where
../shared/data is absent."""
import os

import numpy as np
import pytest

import caffe
from dhn import blobs, cv_net, features, netgen, stored
import datagen

REL_TOL = 1e-4
SQUEEZENET = os.path.join(os.environ.get("DHN_SHARED_DATA") or os.path.join(os.environ["DHN_ROOT"], "..", "shared",
                                                                              "data"), "squeezenet_v1.0_dc")


def lower_net(tmp_path, spec, cut, batch, **transform):
    bb = netgen.foreign_backbone(spec, **transform)
    lower, _, blob = stored.split_backbone(bb, cut)
    path, out = blobs.write_backbone_net(lower, str(tmp_path), batch)
    assert out == blob
    return path, blob


def both(path, model, blob, x):
    caffe.set_mode_cpu()
    ref = caffe.Net(path, caffe.TEST, weights=model)
    ref.blobs[ref.inputs[0]].data[...] = x
    want = ref.forward(blobs=[blob])[blob].copy()
    net = cv_net.forward_net(path, model, x.shape[-1], blob, None, "opencv")
    assert isinstance(net, cv_net.OpenCVNet)
    net.blobs[net.inputs[0]].data[...] = x
    return net.forward(blobs=[blob])[blob], want


def test_small_backbone_through_its_inplace_relu(tmp_path):
    deploy, model = datagen.small_backbone(str(tmp_path))
    path, blob = lower_net(tmp_path, deploy + ":feat", "c1", 5)     # c1 and its in-place ReLU r1
    x = np.random.RandomState(0).uniform(-1, 1, (5, 3, 28, 28)).astype(np.float32)
    got, want = both(path, model, blob, x)
    assert (want >= 0).all() and (want == 0).any()                 # the ReLU's output, not the convolution's
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= REL_TOL * np.abs(want).max()


@pytest.mark.skipif(not os.path.isdir(SQUEEZENET), reason="no SqueezeNet: ../shared/data is absent")
def test_squeezenet_to_fire9_equals_caffe(tmp_path):
    spec = os.path.join(SQUEEZENET, "deploy.prototxt") + ":pool_final"
    path, blob = lower_net(tmp_path, spec, "fire9/concat", 4)
    x = np.random.RandomState(1).uniform(-120, 130, (4, 3, 227, 227)).astype(np.float32)
    got, want = both(path, os.path.join(SQUEEZENET, "squeezenet_v1.0_dc.caffemodel"), blob, x)
    assert got.shape == want.shape == (4, 512, 13, 13)
    assert np.abs(got - want).max() <= REL_TOL * np.abs(want).max()


def test_caffe_engine_and_gpu_runs_use_pycaffe_and_a_wrong_engine_is_refused(tmp_path):
    deploy, model = datagen.small_backbone(str(tmp_path))
    path, blob = lower_net(tmp_path, deploy + ":feat", "c1", 2)
    assert isinstance(cv_net.forward_net(path, model, 28, blob, None, "caffe"), caffe.Net)
    with pytest.raises(ValueError, match="engine 'torch': one of caffe, opencv"):
        cv_net.forward_net(path, model, 28, blob, None, "torch")


def test_a_net_that_does_not_end_in_the_blob_is_refused(tmp_path):
    deploy, model = datagen.small_backbone(str(tmp_path))
    path, _ = lower_net(tmp_path, deploy + ":feat", "c1", 2)
    with pytest.raises(ValueError, match="needs the net to end in feat alone"):
        cv_net.OpenCVNet(path, model, "feat")
