"""Decode a Deep Compression release (Han et al.: pruned, weight-shared, ``compressed_*.net``)
into ordinary weights and a Caffe model.

The layout, as docs/USAGE.md "Downloads" reads it from songhan/SqueezeNet-Deep-Compression's file:
uint32 non-zero counts, one per convolution in net order; then per convolution a float32
codebook of 256 entries (8-bit codes), the float32 biases, one code byte per stored weight and
the index gaps, two 4-bit gaps a byte, low nibble first. The i-th stored weight sits at
(running sum of gap + 1) − 1 in the flattened weight blob; every other weight is zero. A
stored weight may be codebook[0] = 0 itself: 4 bits cannot say a gap over 15, so the encoder
pads with zeros. Little-endian throughout (the release was written on x86).
"""
import numpy as np

CODEBOOK = 256          # 8-bit convolution codes (4-bit fully connected ones have 16; none in SqueezeNet)


class DecodeError(ValueError):
    """One line: the file, what does not fit, what to do."""


def decode(data, layers, name="compressed net"):
    """[(layer, weights float32 array of its shape, biases float32)] from the bytes of a compressed
    net. ``layers``: [(layer name, weight shape, number of biases)] of its convolutions in net
    order. The file must end exactly where the last layer does: a short or long file, or gaps
    that run past a layer's weights, is a DecodeError naming ``name``."""
    fix = "fetch it again (make weights MODEL=squeezenet)"
    n = len(layers)
    if len(data) < 4 * n:
        raise DecodeError("%s: %d bytes, shorter than its header of %d counts: a truncated file; %s"
                          % (name, len(data), n, fix))
    counts = np.frombuffer(data, "<u4", n)
    off = 4 * n
    out = []
    for (layer, shape, n_bias), k in zip(layers, counts.tolist()):
        size = int(np.prod(shape))
        need = 4 * CODEBOOK + 4 * n_bias + k + (k + 1) // 2
        if off + need > len(data):
            raise DecodeError("%s: ends inside layer %s (%d bytes, %d more needed): a truncated file; %s"
                              % (name, layer, len(data), off + need - len(data), fix))
        codebook = np.frombuffer(data, "<f4", CODEBOOK, off)
        off += 4 * CODEBOOK
        bias = np.frombuffer(data, "<f4", n_bias, off).astype(np.float32)
        off += 4 * n_bias
        codes = np.frombuffer(data, np.uint8, k, off)
        off += k
        packed = np.frombuffer(data, np.uint8, (k + 1) // 2, off)
        off += (k + 1) // 2
        gaps = np.empty(2 * len(packed), np.int64)
        gaps[0::2] = packed & 0x0F
        gaps[1::2] = packed >> 4
        pos = np.cumsum(gaps[:k] + 1) - 1
        if k and pos[-1] >= size:
            raise DecodeError("%s: layer %s's index gaps reach weight %d of %d: not the net its prototxt "
                              "describes, or a damaged file; %s" % (name, layer, pos[-1], size, fix))
        weights = np.zeros(size, np.float32)
        weights[pos] = codebook[codes]
        out.append((layer, weights.reshape(shape), bias))
    if off != len(data):
        raise DecodeError("%s: %d bytes after the last layer %s (%d bytes read of %d): not the net its "
                          "prototxt describes, or a damaged file; %s"
                          % (name, len(data) - off, layers[-1][0] if layers else "-", off, len(data), fix))
    return out


def convolutions(net):
    """[(layer, weight shape, number of biases)] of a caffe.Net's convolutions, in net order; a
    DecodeError if it has other learnable layers (their 4-bit format is not decoded here)."""
    layers = []
    types = dict(zip(net._layer_names, (layer.type for layer in net.layers)))
    for layer, blobs in net.params.items():
        if types[layer] != "Convolution" or len(blobs) != 2:
            raise DecodeError("layer %s (%s, %d blobs): only convolutions with a bias are decoded"
                              % (layer, types[layer], len(blobs)))
        layers.append((layer, tuple(blobs[0].data.shape), blobs[1].data.size))
    return layers


def write_caffemodel(deploy, compressed, out):
    """Decode ``compressed`` (a path) for the net of ``deploy`` and write its caffemodel to ``out``
    with pycaffe (caffe.Net from the deploy prototxt, every learnable blob set, net.save), so the
    file is what Caffe itself writes for these weights. Returns the decoded layers."""
    import caffe
    net = caffe.Net(deploy, caffe.TEST)
    with open(compressed, "rb") as fh:
        data = fh.read()
    decoded = decode(data, convolutions(net), name=compressed)
    for layer, weights, bias in decoded:
        net.params[layer][0].data[...] = weights
        net.params[layer][1].data[...] = bias
    net.save(out)
    return decoded
