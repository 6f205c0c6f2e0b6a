"""The head's BatchNorm statistics recomputed after whole-net fine-tuning from a fitted head.

Whole-net fine-tuning that starts from a fitted head keeps that head's BatchNorm statistics in
training (netgen.train_net, norm_stats "global"): the batch statistics of random crops from a net
in motion are not what the TEST phase sees. But the layers below the BatchNorm move, and with
them its input: a net without normalisation of its own (SqueezeNet) amplifies small weight
changes into large shifts of the BatchNorm's input, so the stored statistics go stale and cost
more MAP than training wins (docs/lab/2026-12-07-stored-mode-and-whole-net.md).
So a run recomputes them once, after training, over its training split in the TEST phase's
transform (centre crop, the one encoding uses), and that net is the run's final model
(run_folder.final_model, run_folder.recalibrated_model). Caffe's BatchNorm stores sums with a
scale factor: mean in blob 0, the unbiased variance (×m/(m−1), as its own moving average does)
in blob 1, factor 1 in blob 2.
"""
import os

import numpy as np

from . import encode
from .atomic import write_atomic

HEAD_BN = "fch_bn"     # netgen.hash_head's BatchNorm before fch


def _blocks(net, split_dir, crop, mean, scale, bottom, progress):
    """The BatchNorm input ``bottom`` of every record of a split in the TEST phase's transform:
    forwarded from its images (centre crop), or, for a stored split (dhn.stored), from its
    stored outputs (the first view of each record, the centre crop, as encoding reads them)."""
    from . import blobs, split_folder
    if not os.path.isfile(os.path.join(split_dir, split_folder.BLOBS)):
        yield from encode.forward_batches(net, os.path.join(split_dir, "images"), crop, mean, out_blob=bottom,
                                          scale=scale, progress=progress)
        return
    stored, manifest = split_folder.read_blobs(split_dir)
    yield from blobs.forward_first_views(net, stored, manifest, bottom)


def statistics(net, split_dir, crop, mean, scale=1.0, bn=HEAD_BN, progress=True, limit=None):
    """(mean, unbiased variance) per channel of ``bn``'s input over every record of the split in
    split_dir (TEST phase, centre crop; _blocks; ``limit``: its first records only), over records
    and spatial positions as Caffe's BatchNorm averages."""
    bottom = net.bottom_names[bn][0]
    count, total, squares, images = 0, 0.0, 0.0, 0
    for block in _blocks(net, split_dir, crop, mean, scale, bottom, progress):
        if limit is not None:
            block = block[:limit - images]
            images += len(block)
        x = block.astype(np.float64)
        x = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 0, 2).reshape(x.shape[1], -1)   # C × (N·H·W)
        count += x.shape[1]
        total = total + x.sum(1)
        squares = squares + (x * x).sum(1)
        if limit is not None and images >= limit:
            break
    if count < 2:
        raise ValueError("%s: BatchNorm statistics need at least 2 values a channel, got %d" % (split_dir, count))
    m = total / count
    var = np.maximum(squares / count - m * m, 0.0) * count / (count - 1)
    return m, var


def recalibrate(deploy_prototxt, caffemodel, split_dir, crop, mean, out_path, scale=1.0, gpu=None, progress=True):
    """Write out_path (whole or not at all): caffemodel with the head BatchNorm's statistics
    recomputed over the split in split_dir (statistics). Returns (out_path, {shift, var_ratio}): how far the
    stored statistics were from the recomputed ones (median |Δmean| / stored s.d., median
    recomputed / stored variance), for the log."""
    net = encode._load_net(deploy_prototxt, caffemodel, crop, "code", gpu)
    if HEAD_BN not in net.params:
        raise ValueError("%s has no %s layer: only a head with a BatchNorm (feature_norm) is recalibrated"
                         % (deploy_prototxt, HEAD_BN))
    m, var = statistics(net, split_dir, crop, mean, scale, progress=progress)
    blobs = net.params[HEAD_BN]
    factor = float(blobs[2].data.reshape(-1)[0])
    old_m, old_var = (blobs[0].data / factor, blobs[1].data / factor) if factor else (m, var)
    change = dict(shift=float(np.median(np.abs(m - old_m) / np.sqrt(old_var + 1e-5))),
                  var_ratio=float(np.median(var / np.maximum(old_var, 1e-12))))
    blobs[0].data[...] = m
    blobs[1].data[...] = var
    blobs[2].data[...] = 1.0
    write_atomic(out_path, lambda tmp: net.save(tmp))
    return out_path, change

