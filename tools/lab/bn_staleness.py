"""What cost MAP in whole-net fine-tuning's first iterations (docs/lab/2026-12-07-stored-mode-and-whole-net.md):
the head's BatchNorm statistics going stale, not the steps.

    . tools/env.sh && python tools/lab/bn_staleness.py recal RUN MODEL N   # MODEL relative to RUN
    . tools/env.sh && python tools/lab/bn_staleness.py blobs RUN MODEL_A MODEL_B
    . tools/env.sh && python tools/lab/bn_staleness.py start RUN

recal: the queries-against-themselves MAP of RUN's net with MODEL as stored, and with its head
BatchNorm's statistics recomputed over the first N training images (centre crop), plus how far the
statistics had moved. blobs: per blob of RUN's deploy net, the relative change between two models'
TEST outputs on 16 query images. start: RUN's init.caffemodel recalibrated as dhn.train does it
(dhn.recalibrate over all training images) and scored the same way. Real CIFAR-10 (make data)."""
import os
import sys

import numpy as np

from dhn import encode, evaluate, recalibrate, split_folder

LMDB = "data/cifar10/lmdb"
CROP, MEAN = 227, (104, 117, 123)


def query_map(net):
    z = np.concatenate([b.copy() for b in encode.forward_batches(net, LMDB + "/query/images", CROP, MEAN,
                                                                 batch_size=50, progress=False)])
    labels = split_folder.read_split_labels(LMDB + "/query")
    return evaluate.evaluate_codes(z, labels, z, labels, R=None)["map"]


def recal(run, model, n):
    import caffe
    net = caffe.Net(os.path.join(run, "deploy.prototxt"), os.path.join(run, model), caffe.TEST)
    m, v = recalibrate.statistics(net, LMDB + "/train", CROP, MEAN, progress=False, limit=n)
    bn = net.params[recalibrate.HEAD_BN]
    s = bn[2].data[0]
    om, ov = bn[0].data / s, bn[1].data / s
    shift = np.abs(m - om) / np.sqrt(ov + 1e-5)
    print("n %d  mean shift / old sd: median %.2f  90%% %.2f ; var ratio new/old median %.2f"
          % (n, np.median(shift), np.quantile(shift, .9), np.median(v / ov)))
    print("old query-vs-query MAP %.4f" % query_map(net))
    bn[0].data[...] = m
    bn[1].data[...] = v
    bn[2].data[...] = 1
    print("recalibrated query-vs-query MAP %.4f" % query_map(net))


def blobs(run, a, b):
    import caffe
    deploy = os.path.join(run, "deploy.prototxt")
    nets = [caffe.Net(deploy, os.path.join(run, w), caffe.TEST) for w in (a, b)]
    for net in nets:
        next(encode.forward_batches(net, LMDB + "/query/images", CROP, MEAN, batch_size=16, progress=False))
    for name in nets[0].blobs:
        x, y = nets[0].blobs[name].data, nets[1].blobs[name].data
        print("%-22s rel %.2e  max %.3e" % (name, np.linalg.norm(x - y) / (np.linalg.norm(x) + 1e-12), np.abs(x - y).max()))


def start(run):
    import caffe
    out = os.path.join(run, "init.bn.caffemodel")
    _, change = recalibrate.recalibrate(os.path.join(run, "deploy.prototxt"), os.path.join(run, "init.caffemodel"),
                                        LMDB + "/train", CROP, MEAN, out, progress=False)
    net = caffe.Net(os.path.join(run, "deploy.prototxt"), out, caffe.TEST)
    print("start, recalibrated over train: query-vs-query MAP %.4f (change %s)" % (query_map(net), change))


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    {"recal": lambda: recal(args[0], args[1], int(args[2])), "blobs": lambda: blobs(*args),
     "start": lambda: start(args[0])}[what]()
