"""A frozen Caffe net's TEST-phase forward pass run by OpenCV's DNN module instead of Caffe.

Storing a backbone's outputs (dhn.stored) only forwards a pretrained net that never trains, and
on a CPU OpenCV's DNN module runs SqueezeNet's many small convolutions at a multiple of Caffe's
rate (docs/BENCHMARKS.md). It reads the same deploy prototxt and caffemodel; its outputs equal
Caffe's to float32 rounding (tests/test_cv_net.py states and checks the tolerance), far below
the float16 the stored outputs are kept in. Training, encoding through a trained net and every
GPU run stay with Caffe.

OpenCVNet offers the part of pycaffe's Net that encode.forward_batches uses: ``inputs``,
``blobs[input].data`` / ``.reshape`` and ``forward(blobs=[name])``.
"""
import numpy as np

ENGINES = ("caffe", "opencv")
# OpenCV's own threads split each layer; small batches keep its working set in cache, and it ran
# SqueezeNet faster at 2-8 images a batch than at Caffe's 64 (docs/BENCHMARKS.md).
BATCH = 8


class _InputBlob:
    def __init__(self, shape):
        self.data = np.zeros(shape, np.float32)

    def reshape(self, *shape):
        self.data = np.zeros(shape, np.float32)


class OpenCVNet:
    def __init__(self, prototxt, caffemodel, out_blob):
        import cv2
        from caffe.proto import caffe_pb2
        from google.protobuf import text_format
        proto = caffe_pb2.NetParameter()
        with open(prototxt) as fh:
            text_format.Merge(fh.read(), proto)
        inputs = [layer for layer in proto.layer if layer.type == "Input"]
        if len(inputs) != 1 or not inputs[0].input_param.shape:
            raise ValueError("%s: OpenCV's forward pass needs one Input layer with a shape" % prototxt)
        self.inputs = [inputs[0].top[0]]
        self.blobs = {self.inputs[0]: _InputBlob(tuple(inputs[0].input_param.shape[0].dim))}
        self.net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        # The net's one output, after its in-place layers (OpenCV renames in-place tops and fuses
        # ReLUs into convolutions, so the blob's own name could mean the value before them).
        ends = list(self.net.getUnconnectedOutLayersNames())
        if len(ends) != 1 or proto.layer[-1].top[0] != out_blob:
            raise ValueError("%s: OpenCV's forward pass needs the net to end in %s alone (it ends in %s)"
                             % (prototxt, out_blob, ", ".join(ends)))
        self.out_layer, self.out_blob = ends[0], out_blob

    def forward(self, blobs):
        if list(blobs) != [self.out_blob]:
            raise ValueError("OpenCVNet gives %s only, not %s" % (self.out_blob, ", ".join(blobs)))
        self.net.setInput(self.blobs[self.inputs[0]].data)
        return {self.out_blob: self.net.forward(self.out_layer)}


def net_batch(engine, gpu, batch):
    """The batch a forward pass of ``engine`` runs at: BATCH for OpenCV on a CPU, else ``batch``."""
    return BATCH if engine == "opencv" and gpu is None else batch


def forward_net(prototxt, caffemodel, crop, out_blob, gpu, engine="caffe"):
    """The net encode.forward_batches drives: pycaffe's (encode._load_net), or OpenCVNet for
    engine "opencv" on the CPU (a GPU run stays with Caffe)."""
    from dhn import encode
    if engine not in ENGINES:
        raise ValueError("engine %r: one of %s" % (engine, ", ".join(ENGINES)))
    if engine == "caffe" or gpu is not None:
        return encode._load_net(prototxt, caffemodel, crop, out_blob, gpu)
    encode.load_net(prototxt, caffemodel)      # Caffe's check that the weights fit, with its clear error
    return OpenCVNet(prototxt, caffemodel, out_blob)
