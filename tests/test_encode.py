"""dhn.encode on a tiny real pycaffe net (Input → InnerProduct → TanH ``code``) and a tiny LMDB
written by dhn.lmdb_io, against the same forward pass in numpy: centre crop with Caffe's
TEST-phase offsets, BGR mean, no scaling. Tolerance 1e-5: float32 sums of 3·8·8 products."""
import os

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")

import caffe  # noqa: E402

from dhn import encode, lmdb_io, metrics  # noqa: E402

CROP, K = 8, 5
MEAN = (104.0, 117.0, 123.0)
DEPLOY = """name: "tiny-deploy"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 dim: %d dim: %d } } }
layer { name: "fch" type: "InnerProduct" bottom: "data" top: "fch"
        inner_product_param { num_output: %d } }
layer { name: "code" type: "TanH" bottom: "fch" top: "code" }
""" % (CROP, CROP, K)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(deploy, caffemodel, W, b, raw LMDB, png LMDB, H×W×3 BGR images)."""
    root = tmp_path_factory.mktemp("encode")
    deploy = str(root / "deploy.prototxt")
    with open(deploy, "w") as fh:
        fh.write(DEPLOY)
    rng = np.random.default_rng(0)
    net = caffe.Net(deploy, caffe.TEST)
    W = rng.normal(0, 0.01, size=(K, 3 * CROP * CROP)).astype(np.float32)
    b = rng.normal(0, 0.1, size=K).astype(np.float32)
    net.params["fch"][0].data[...] = W
    net.params["fch"][1].data[...] = b
    weights = str(root / "tiny.caffemodel")
    net.save(weights)
    # 7 images of 11×12: odd margins, so the crop offsets (1, 2) are tested; batches of 3 → 3+3+1
    images = rng.integers(0, 256, size=(7, 11, 12, 3)).astype(np.uint8)
    dbs = {}
    for encoding in (None, "png"):
        path = str(root / ("images_%s" % (encoding or "raw")))
        with lmdb_io.Writer(path) as w:
            for img in images:
                w.put(lmdb_io.image_datum(img, encoding=encoding))
        dbs[encoding or "raw"] = path
    return deploy, weights, W, b, dbs, images


def numpy_codes(images, W, b, scale=1.0):
    h_off, w_off = 1, 2     # Caffe's TEST crop of 11×12 to 8×8: (11 - 8) // 2, (12 - 8) // 2
    x = images[:, h_off:h_off + CROP, w_off:w_off + CROP, :].transpose(0, 3, 1, 2).astype(np.float32)
    x = (x - np.array(MEAN, np.float32)[:, None, None]) * scale
    return np.tanh(x.reshape(len(images), -1) @ W.T + b)


def test_preprocessing_is_caffes_data_layer(tiny, tmp_path):
    # Caffe's own Data layer, TEST phase, with the same crop and mean, on the same LMDB
    deploy, weights, W, b, dbs, images = tiny
    proto = tmp_path / "data.prototxt"
    proto.write_text('layer { name: "d" type: "Data" top: "data" top: "label" data_param { source: "%s" '
                     'backend: LMDB batch_size: 7 } transform_param { crop_size: %d mean_value: %g '
                     'mean_value: %g mean_value: %g } }' % ((dbs["raw"], CROP) + MEAN))
    net = caffe.Net(str(proto), caffe.TEST)
    net.forward()
    caffe_batch = net.blobs["data"].data.copy()   # copy while the net (owner of the memory) lives
    ours = np.stack([encode.centre_crop(lmdb_io.datum_array(d), CROP) for d in lmdb_io.read(dbs["raw"])])
    ours = ours.astype(np.float32) - np.array(MEAN, np.float32)[:, None, None]
    assert np.array_equal(caffe_batch, ours)


@pytest.mark.parametrize("db", ["raw", "png"])
def test_codes_match_numpy_forward(tiny, db):
    deploy, weights, W, b, dbs, images = tiny
    z = encode.encode(deploy, weights, dbs[db], CROP, MEAN, batch_size=3, progress=False)
    assert z.dtype == np.float32 and z.shape == (7, K)
    assert np.allclose(z, numpy_codes(images, W, b), rtol=0, atol=1e-5)


def test_batch_size_does_not_matter_and_scale_applies(tiny):
    deploy, weights, W, b, dbs, images = tiny
    a = encode.encode(deploy, weights, dbs["raw"], CROP, MEAN, batch_size=64, progress=False)
    c = encode.encode(deploy, weights, dbs["raw"], CROP, MEAN, batch_size=1, progress=False)
    assert np.allclose(a, c, rtol=0, atol=1e-6)
    s = encode.encode(deploy, weights, dbs["raw"], CROP, MEAN, batch_size=4, scale=1 / 128, progress=False)
    assert np.allclose(s, numpy_codes(images, W, b, scale=1 / 128), rtol=0, atol=1e-5)


def test_save_codes_and_cli(tiny, tmp_path):
    deploy, weights, W, b, dbs, images = tiny
    prefix = str(tmp_path / "codes" / "query")
    encode.main(["--deploy", deploy, "--weights", weights, "--images", dbs["png"], "--crop", str(CROP),
                 "--mean", "104,117,123", "--batch", "2", "--out", prefix])
    z = np.load(prefix + ".npy")
    assert z.dtype == np.float32 and np.allclose(z, numpy_codes(images, W, b), rtol=0, atol=1e-5)
    bits = np.load(prefix + ".bits.npy")
    assert np.array_equal(bits, np.packbits(z >= 0, axis=1))
    assert np.array_equal(bits, metrics.pack_codes(metrics.binarize(z)))
    assert sorted(os.listdir(tmp_path / "codes")) == ["query.bits.npy", "query.npy"]   # no temp files


def test_errors(tiny, tmp_path, capsys):
    deploy, weights, W, b, dbs, images = tiny
    with pytest.raises(ValueError, match=r"takes input 4×3×8×8 but crop=6"):
        encode.encode(deploy, weights, dbs["raw"], 6, MEAN, progress=False)
    with pytest.raises(ValueError, match=r"no such LMDB"):
        encode.encode(deploy, weights, str(tmp_path / "nothing"), CROP, MEAN, progress=False)
    with pytest.raises(ValueError, match=r"weights .* does not exist"):
        encode.encode(deploy, str(tmp_path / "none.caffemodel"), dbs["raw"], CROP, MEAN, progress=False)
    nocode = str(tmp_path / "nocode.prototxt")
    with open(nocode, "w") as fh:
        fh.write(DEPLOY.replace('name: "code" type: "TanH" bottom: "fch" top: "code"',
                                'name: "codes" type: "TanH" bottom: "fch" top: "codes"'))
    with pytest.raises(ValueError, match=r"code blob 'code'"):
        encode.encode(nocode, weights, dbs["raw"], CROP, MEAN, progress=False)
    with pytest.raises(ValueError, match=r"smaller than crop=16"):
        encode.centre_crop(np.zeros((3, 11, 12), np.uint8), 16)
    assert encode.main(["--deploy", deploy, "--weights", weights, "--images", str(tmp_path / "x"),
                        "--crop", str(CROP), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such LMDB" in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "o.npy")


def test_weights_of_another_net_are_refused_before_caffe_loads_them(tiny, tmp_path):
    """Caffe aborts the process on blobs of the wrong shape: encode refuses them first, and a
    file that is no Caffe model, with one line each."""
    deploy, weights, W, b, dbs, images = tiny
    other = str(tmp_path / "other.prototxt")
    with open(other, "w") as fh:
        fh.write(DEPLOY.replace("num_output: %d" % K, "num_output: %d" % (K + 1)))
    with pytest.raises(ValueError) as info:
        encode.encode(other, weights, dbs["raw"], CROP, MEAN, progress=False)
    assert str(info.value) == ("%s does not fit %s (layer fch holds 5×192, 5 where the net needs 6×192, 6): give the "
                               "caffemodel trained for that net" % (weights, other))
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=r"junk.caffemodel: not a Caffe model"):
        encode.encode(deploy, str(junk), dbs["raw"], CROP, MEAN, progress=False)
    # blobs in Caffe's legacy 4-axis form (num, channels, height, width) fit as Caffe fits them
    from caffe.proto import caffe_pb2
    model = caffe_pb2.NetParameter()
    model.ParseFromString(open(weights, "rb").read())
    for layer in model.layer:
        for blob in layer.blobs:
            dims = list(blob.shape.dim)
            blob.ClearField("shape")
            blob.num, blob.channels, blob.height, blob.width = [1] * (4 - len(dims)) + dims
    legacy = tmp_path / "legacy.caffemodel"
    legacy.write_bytes(model.SerializeToString())
    z = encode.encode(deploy, str(legacy), dbs["raw"], CROP, MEAN, progress=False)
    assert np.allclose(z, numpy_codes(images, W, b), rtol=0, atol=1e-5)
