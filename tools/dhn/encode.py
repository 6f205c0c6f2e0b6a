"""Encode images with a trained net: real-valued codes z (the ``code`` blob, tanh outputs) and
their sign bits, saved as <prefix>.npy (float32 N×K) and <prefix>.bits.npy (packed, z ≥ 0 → 1).

    python -m dhn.encode --deploy D.prototxt --weights W.caffemodel --images LMDB \\
        --crop 227 --mean 104,117,123 --out runs/NAME/codes/query [--batch 64] [--gpu 0]

The deploy net has an ``Input`` layer whose top is ``data`` (batch×3×crop×crop) and the codes
are the blob ``code`` (N×K). Images come from an LMDB written by dhn.lmdb_io (Datum C×H×W uint8
BGR, raw or encoded) and are prepared exactly as Caffe's DataTransformer does in the TEST
phase: centre crop at h_off = (H - crop) // 2, w_off = (W - crop) // 2, then (x - mean[c]) ·
scale per BGR channel (scale 1, i.e. none, unless given), float32.
"""
import argparse
import os
import sys

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")   # before Caffe loads: keep its net dump quiet

from dhn import lmdb_io, metrics, runlock  # noqa: E402
from dhn.atomic import write_atomic  # noqa: E402


def centre_crop(chw, crop):
    """C×crop×crop centre of a C×H×W image, with Caffe's TEST-phase offsets."""
    c, h, w = chw.shape
    if h < crop or w < crop:
        raise ValueError("image is %d×%d, smaller than crop=%d: convert the data at the net's "
                         "input size (e.g. 256×256 for AlexNet's 227 crop)" % (h, w, crop))
    h_off, w_off = (h - crop) // 2, (w - crop) // 2
    return chw[:, h_off:h_off + crop, w_off:w_off + crop]


def _shape(blob):
    return tuple(blob.shape.dim) if blob.HasField("shape") else (blob.num, blob.channels, blob.height, blob.width)


def _fits(blob, want):
    """Caffe's Blob::ShapeEquals: a legacy blob (num, channels, height, width) fits a net shape
    that, padded with leading 1s to four axes, equals it."""
    if blob.HasField("shape"):
        return tuple(blob.shape.dim) == want
    return len(want) <= 4 and (1,) * (4 - len(want)) + want == _shape(blob)


def weights_mismatch(net, caffemodel):
    """None when every parameter layer of ``net`` finds blobs of its shapes in the caffemodel
    (by layer name), else what differs, as a phrase. Checked before Caffe loads the weights:
    on a mismatch Caffe aborts the process (a CHECK) instead of raising, and it silently keeps
    random weights for a layer the file lacks. ValueError if the file is no Caffe model."""
    from caffe.proto import caffe_pb2
    from google.protobuf.message import DecodeError
    saved = caffe_pb2.NetParameter()
    try:
        with open(caffemodel, "rb") as fh:
            saved.ParseFromString(fh.read())
    except DecodeError:
        raise ValueError("%s: not a Caffe model (no NetParameter): give the .caffemodel file" % caffemodel) from None
    blobs = {layer.name: layer.blobs for layer in list(saved.layer) + list(saved.layers) if layer.blobs}  # layers: V1
    for name, params in net.params.items():
        want = [tuple(p.data.shape) for p in params]
        if name not in blobs:
            return "it has no weights for layer %s" % name
        have = blobs[name]
        if len(have) != len(want) or not all(_fits(b, w) for b, w in zip(have, want)):
            return "layer %s holds %s where the net needs %s" % (
                name, ", ".join("×".join(map(str, _shape(b))) for b in have), ", ".join("×".join(map(str, w)) for w in want))
    return None


def load_net(deploy_prototxt, caffemodel, fix="give the caffemodel trained for that net"):
    """A TEST-phase net with its trained weights, after weights_mismatch: a mismatch is a
    ValueError naming both files and ``fix``, never Caffe's abort."""
    import caffe
    for path, what in ((deploy_prototxt, "deploy prototxt"), (caffemodel, "weights")):
        if not os.path.isfile(path):
            raise ValueError("%s %s does not exist" % (what, path))
    net = caffe.Net(deploy_prototxt, caffe.TEST)
    bad = weights_mismatch(net, caffemodel)
    if bad:
        raise ValueError("%s does not fit %s (%s): %s" % (caffemodel, deploy_prototxt, bad, fix))
    net.copy_from(caffemodel)
    return net


def _load_net(deploy_prototxt, caffemodel, crop, code_blob, gpu):
    import caffe
    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_device(int(gpu))
        caffe.set_mode_gpu()
    net = load_net(deploy_prototxt, caffemodel)
    if len(net.inputs) != 1 or code_blob not in net.blobs:
        raise ValueError("%s must have one input blob and a code blob %r (its blobs: %s): "
                         "generate it with dhn.netgen.deploy_net"
                         % (deploy_prototxt, code_blob, ", ".join(net.blobs)))
    shape = net.blobs[net.inputs[0]].data.shape
    if crop is None:   # a net on stored outputs (dhn.blobs.encode_blobs): its input is what was stored
        return net
    if len(shape) != 4 or shape[1] != 3 or shape[2:] != (crop, crop):
        raise ValueError("%s takes input %s but crop=%d gives 3×%d×%d: use the net's crop"
                         % (deploy_prototxt, "×".join(map(str, shape)), crop, crop, crop))
    return net


VIEWS = (1, 2, 10)   # centre; centre and its mirror; the four corners and the centre, each mirrored too


def view_crops(chw, crop, views=1):
    """The ``views`` crops of one C×H×W image, in a fixed order: 1: the centre crop (Caffe's TEST
    phase); 2: it and its horizontal mirror; 10: the centre and the four corners, then the same
    five mirrored (Caffe's classic oversample)."""
    if views == 1:
        return [centre_crop(chw, crop)]
    c = centre_crop(chw, crop)
    if views == 2:
        return [c, c[:, :, ::-1]]
    if views != 10:
        raise ValueError("views must be one of %s, got %r" % (", ".join(map(str, VIEWS)), views))
    h, w = chw.shape[1:]
    five = [c] + [chw[:, y:y + crop, x:x + crop] for y in (0, h - crop) for x in (0, w - crop)]
    return five + [v[:, :, ::-1] for v in five]


def forward_batches(net, images_lmdb, crop, mean_bgr, out_blob="code", batch_size=64, scale=1.0, views=1,
                    progress=True):
    """Forward every record of images_lmdb (in key order) through ``net`` and yield the ``out_blob``
    outputs batch by batch (float32 arrays, ``views`` rows per image, as view_crops orders them),
    so that a caller can stream them to disk."""
    from tqdm import tqdm
    mean = np.asarray(mean_bgr, np.float32).reshape(-1)
    if mean.size != 3:
        raise ValueError("mean_bgr must have 3 values (B, G, R), got %r" % (mean_bgr,))
    if batch_size < 1:
        raise ValueError("batch_size must be ≥ 1, got %r" % (batch_size,))
    if not os.path.isdir(images_lmdb):
        raise ValueError("%s: no such LMDB (convert the dataset first: make data DATASET=...)" % images_lmdb)
    n = lmdb_io.count(images_lmdb)
    item = (3, crop, crop)
    per_batch = max(1, batch_size // views) * views
    batch = np.empty((per_batch,) + item, np.float32)
    filled = 0

    def flush():
        data = net.blobs[net.inputs[0]]   # 'data', or a foreign backbone's own input name
        if data.data.shape[0] != filled:
            data.reshape(filled, *item)
        data.data[...] = batch[:filled]
        out = net.forward(blobs=[out_blob])[out_blob]
        return np.array(out, np.float32)

    name = os.path.join(*os.path.normpath(os.path.abspath(images_lmdb)).split(os.sep)[-2:])   # query/images
    any_record = False
    with tqdm(total=n, unit="img", desc="forward %s" % name,
              disable=not progress, file=sys.stderr) as bar:
        for i, datum in enumerate(lmdb_io.read(images_lmdb)):
            any_record = True
            try:
                img = lmdb_io.datum_array(datum)
            except ValueError:      # an encoded record that OpenCV cannot decode
                raise lmdb_io.damaged(images_lmdb, "record %d does not decode as an image" % i) from None
            if img.shape[0] != 3:
                raise ValueError("%s: images must have 3 (BGR) channels, got %d" % (images_lmdb, img.shape[0]))
            for view in view_crops(img, crop, views):
                batch[filled] = view
                batch[filled] -= mean[:, None, None]
                if scale != 1:
                    batch[filled] *= scale
                filled += 1
            if filled == per_batch:
                yield flush()
                bar.update(filled // views)
                filled = 0
        if filled:
            yield flush()
            bar.update(filled // views)
    if not any_record:
        raise ValueError("%s holds no images" % images_lmdb)


def encode(deploy_prototxt, caffemodel, images_lmdb, crop, mean_bgr, batch_size=64, code_blob="code",
           gpu=None, scale=1.0, progress=True):
    """float32 N×K codes of every image in images_lmdb, in key order (the LMDB's record order).
    A run on stored outputs (frozen features, the stored mode) encodes them with dhn.blobs.encode_blobs."""
    if not os.path.isdir(images_lmdb):
        raise ValueError("%s: no such LMDB (convert the dataset first: make data DATASET=...)" % images_lmdb)
    net = _load_net(deploy_prototxt, caffemodel, crop, code_blob, gpu)
    codes = [out.reshape(len(out), -1) for out in
             forward_batches(net, images_lmdb, crop, mean_bgr, code_blob, batch_size, scale, progress=progress)]
    return np.concatenate(codes)


def _save_npy(path, array):
    def save(tmp):
        with open(tmp, "wb") as fh:      # a file object: np.save would append .npy to a name
            np.save(fh, array)
    write_atomic(path, save)


def save_codes(out_prefix, z):
    """<prefix>.npy (float32 z) and <prefix>.bits.npy (sign bits packed by np.packbits, z ≥ 0 → 1),
    each written to a temporary file and renamed, so a reader never sees half a file."""
    z = np.asarray(z, np.float32)
    d = os.path.dirname(os.path.abspath(out_prefix))
    os.makedirs(d, exist_ok=True)
    _save_npy(out_prefix + ".npy", z)
    _save_npy(out_prefix + ".bits.npy", metrics.pack_codes(z))
    return out_prefix + ".npy", out_prefix + ".bits.npy"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deploy", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--images", required=True, help="image LMDB (dhn.lmdb_io)")
    ap.add_argument("--crop", type=int, required=True)
    ap.add_argument("--mean", default="104,117,123", help="B,G,R mean (default: %(default)s)")
    ap.add_argument("--scale", type=float, default=1.0, help="input scale after the mean (default 1)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--blob", default="code")
    ap.add_argument("--gpu", type=int, default=None)
    ap.add_argument("--out", required=True, help="output prefix: writes PREFIX.npy and PREFIX.bits.npy")
    args = ap.parse_args(argv)
    try:
        # PREFIX.npy.tmp is a fixed name: one writer of the output folder at a time
        with runlock.hold(os.path.dirname(os.path.abspath(args.out))):
            mean = [float(v) for v in args.mean.split(",")]
            z = encode(args.deploy, args.weights, args.images, args.crop, mean, batch_size=args.batch,
                       code_blob=args.blob, gpu=args.gpu, scale=args.scale)
            paths = save_codes(args.out, z)
    except runlock.Busy as e:
        print("dhn.encode: %s" % e, file=sys.stderr)
        raise SystemExit(2)
    except ValueError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("%d codes of %d bits -> %s, %s" % (z.shape[0], z.shape[1], *paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
