"""`make weights MODEL=squeezenet`: the Deep Compression release decoded into a caffemodel.

Tiny compressed nets written here in the release's layout (dhn.deepcompression) decode to the
weights they were made from, through pycaffe as the real one is; short, long and mis-checked
files are refused with one line and leave nothing. The real release (../shared/data, served
over HTTP on 127.0.0.1 as a mirror, through make) decodes to the pinned caffemodel: skipped,
with that reason, where ../shared/data is absent (a user's clone has none)."""
import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from dhn import deepcompression, weights
from dhn.atomic import write_atomic
from dhn.datasets import file_digest

ROOT = os.environ["DHN_ROOT"]
SHARED = os.environ.get("DHN_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
RELEASE = os.path.join(SHARED, "squeezenet_v1.0_dc", "source")
DECODED = os.path.join(SHARED, "squeezenet_v1.0_dc", "squeezenet_v1.0_dc.caffemodel")
needs_release = pytest.mark.skipif(not os.path.isfile(os.path.join(RELEASE, "compressed_SqueezeNet.net")),
                                   reason="no real data: ../shared/data/squeezenet_v1.0_dc/source is absent")

TINY_DEPLOY = """name: "tiny"
input: "data"
input_dim: 1
input_dim: 2
input_dim: 6
input_dim: 6
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1" convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2" convolution_param { num_output: 3 kernel_size: 1 } }
"""
TINY_LAYERS = [("c1", (4, 2, 3, 3), 4), ("c2", (3, 4, 1, 1), 3)]


def encode(layers, seed=0):
    """The release's layout, written the encoder's way: a 256-entry codebook per layer, sparse
    weights from it, gaps over 15 bridged by stored zeros (codebook[0] = 0). Returns (bytes,
    [(layer, weights, biases)])."""
    rng = np.random.RandomState(seed)
    counts, body, truth = [], b"", []
    for layer, shape, n_bias in layers:
        codebook = np.concatenate([[0.0], rng.uniform(-1, 1, 255)]).astype("<f4")
        size = int(np.prod(shape))
        w = np.zeros(size, np.float32)
        nz = rng.rand(size) < 0.3
        nz[-1] = True
        w[nz] = codebook[rng.randint(1, 256, nz.sum())]
        bias = rng.uniform(-1, 1, n_bias).astype("<f4")
        codes, gaps, last = [], [], -1
        for p in np.flatnonzero(w):
            while p - last - 1 > 15:            # a gap 4 bits cannot say: a stored zero 16 on
                codes.append(0)
                gaps.append(15)
                last += 16
            codes.append(int(np.flatnonzero(codebook == w[p])[0]))
            gaps.append(p - last - 1)
            last = p
        if len(gaps) % 2:
            gaps.append(0)
        packed = bytes(lo | hi << 4 for lo, hi in zip(gaps[0::2], gaps[1::2]))
        counts.append(len(codes))
        body += codebook.tobytes() + bias.tobytes() + bytes(codes) + packed
        truth.append((layer, w.reshape(shape), bias.astype(np.float32)))
    return np.array(counts, "<u4").tobytes() + body, truth


def test_the_layout_byte_by_byte():
    """One 2×2 layer, two stored weights: count 2, codebook, bias, codes 5 and 7, and one gap
    byte 0x20 — low nibble first: gaps 0 then 2, so positions 0 and 3 (high nibble first would
    put them at 2 and 3)."""
    codebook = np.arange(256, dtype="<f4") / 100
    data = (np.array([2], "<u4").tobytes() + codebook.tobytes() + np.array([0.5], "<f4").tobytes()
            + bytes([5, 7]) + bytes([0x20]))
    [(layer, w, b)] = deepcompression.decode(data, [("x", (1, 1, 2, 2), 1)])
    assert layer == "x" and b.tolist() == [0.5]
    np.testing.assert_array_equal(w.ravel(), np.array([0.05, 0, 0, 0.07], np.float32))


def test_a_tiny_net_decodes_to_the_weights_it_was_made_from():
    data, truth = encode(TINY_LAYERS)
    got = deepcompression.decode(data, TINY_LAYERS)
    for (name, w, b), (tname, tw, tb) in zip(got, truth):
        assert name == tname and w.shape == tw.shape
        np.testing.assert_array_equal(w, tw)
        np.testing.assert_array_equal(b, tb)


def test_long_gaps_are_bridged_by_stored_zeros():
    """A weight 40 places after the previous one: two stored zeros (gap 15 each) then gap 7."""
    w = np.zeros(48, np.float32)
    w[[0, 41]] = [1, 2]
    layers = [("x", (1, 1, 48, 1), 1)]
    codebook = np.concatenate([[0.0, 1.0, 2.0], np.zeros(253)]).astype("<f4")
    gaps = [0, 15, 15, 8]      # positions 0, 16, 32, 41
    data = (np.array([4], "<u4").tobytes() + codebook.tobytes() + np.zeros(1, "<f4").tobytes()
            + bytes([1, 0, 0, 2]) + bytes([gaps[0] | gaps[1] << 4, gaps[2] | gaps[3] << 4]))
    [(_, got, _)] = deepcompression.decode(data, layers)
    np.testing.assert_array_equal(got.ravel(), w)


def test_pycaffe_writes_the_decoded_weights(tmp_path):
    import caffe
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(TINY_DEPLOY)
    data, truth = encode(TINY_LAYERS, seed=1)
    (tmp_path / "tiny.net").write_bytes(data)
    out = str(tmp_path / "tiny.caffemodel")
    deepcompression.write_caffemodel(str(deploy), str(tmp_path / "tiny.net"), out)
    net = caffe.Net(str(deploy), out, caffe.TEST)
    for name, w, b in truth:
        np.testing.assert_array_equal(net.params[name][0].data, w)
        np.testing.assert_array_equal(net.params[name][1].data, b)


@pytest.mark.parametrize("change, message", [
    (lambda d: d[:-1], "ends inside layer c2 .* a truncated file"),
    (lambda d: d[:6], "shorter than its header of 2 counts"),
    (lambda d: d + b"\0", "1 bytes after the last layer c2"),
])
def test_a_short_or_long_file_is_one_line_and_leaves_nothing(tmp_path, change, message):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(TINY_DEPLOY)
    data, _ = encode(TINY_LAYERS)
    bad = tmp_path / "tiny.net"
    bad.write_bytes(change(data))
    with pytest.raises(deepcompression.DecodeError, match=message) as e:
        deepcompression.decode(bad.read_bytes(), TINY_LAYERS, name=str(bad))
    assert "\n" not in str(e.value) and str(bad) in str(e.value)
    # as make weights decodes it: the one line again, no caffemodel, no temporary
    out = tmp_path / "w" / "tiny.caffemodel"
    out.parent.mkdir()
    with pytest.raises(weights.WeightsError, match=message) as e:
        write_atomic(str(out), lambda tmp: weights._decode_checked(str(deploy), str(bad), tmp), tmp=str(out) + ".part")
    assert "\n" not in str(e.value)
    assert os.listdir(out.parent) == []


def test_gaps_past_the_layer_are_refused():
    codebook = np.zeros(256, "<f4")
    data = (np.array([1], "<u4").tobytes() + codebook.tobytes() + np.zeros(1, "<f4").tobytes()
            + bytes([3]) + bytes([0x04]))            # gap 4: position 4 of a 4-weight layer
    with pytest.raises(deepcompression.DecodeError, match="reach weight 4 of 4"):
        deepcompression.decode(data, [("x", (1, 1, 2, 2), 1)])


def release_copy(folder, damage=None):
    """The release's two file names in ``folder``, real bytes where ../shared has them, else stand-ins
    (enough for the checksum tests)."""
    os.makedirs(folder, exist_ok=True)
    for src in (weights.SQUEEZENET_NET, weights.SQUEEZENET_DEPLOY):
        path = os.path.join(RELEASE, src.name)
        data = open(path, "rb").read() if os.path.isfile(path) else b"not the release"
        if damage and src.name == damage:
            data = data[:-1]
        with open(os.path.join(folder, src.name), "wb") as fh:
            fh.write(data)
    return folder


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def test_a_wrong_checksum_is_one_line_and_leaves_nothing(tmp_path):
    mirror = release_copy(str(tmp_path / "mirror"), damage="compressed_SqueezeNet.net")
    out = tmp_path / "weights" / "squeezenet_v1.0_dc" / "squeezenet_v1.0_dc.caffemodel"
    with pytest.raises(weights.WeightsError, match="compressed_SqueezeNet.net: downloaded file's sha1 does not "
                                                   "match d366493d585f65f4badc23b1ae943e9275db1cf4; nothing kept"):
        weights.fetch_squeezenet(str(out), mirror, quiet=True)
    assert not (tmp_path / "weights" / "squeezenet_v1.0_dc").exists()


def test_offline_says_where_to_put_the_files(tmp_path):
    out = tmp_path / "sq" / "squeezenet_v1.0_dc.caffemodel"
    r = subprocess.run([sys.executable, "-m", "dhn.weights", "--model", "squeezenet", "--mirror", str(tmp_path / "nothing"),
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert ("put it at %s (sha1 d366493d585f65f4badc23b1ae943e9275db1cf4), or pass --mirror DIR (make: MIRROR=DIR), "
            "a folder that holds compressed_SqueezeNet.net" % (tmp_path / "sq" / "source" / "compressed_SqueezeNet.net")
            in r.stderr), r.stderr
    assert not (tmp_path / "sq").exists()


def test_an_existing_caffemodel_with_a_wrong_checksum_is_refused(tmp_path):
    folder = tmp_path / "squeezenet_v1.0_dc"
    folder.mkdir()
    (folder / "squeezenet_v1.0_dc.caffemodel").write_bytes(b"half a model")
    (folder / "deploy.prototxt").write_bytes(b"x")
    with pytest.raises(weights.WeightsError, match="delete it and run `make weights MODEL=squeezenet` again"):
        weights.fetch_squeezenet(str(folder / "squeezenet_v1.0_dc.caffemodel"), str(tmp_path / "nothing"), quiet=True)


@pytest.fixture
def http_mirror():
    """../shared's copy of the release served on 127.0.0.1, as GitHub would serve it."""
    handler = functools.partial(QuietHandler, directory=RELEASE)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d/" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@needs_release
def test_make_weights_squeezenet_decodes_the_release_to_the_pinned_caffemodel(http_mirror, tmp_path):
    out = tmp_path / "weights" / "squeezenet_v1.0_dc" / "squeezenet_v1.0_dc.caffemodel"
    r = subprocess.run(["make", "-s", "weights", "MODEL=squeezenet", "MIRROR=" + http_mirror, "OUT=" + str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(out)
    assert file_digest(str(out), "sha256") == weights.SQUEEZENET_CAFFEMODEL_SHA256
    assert out.read_bytes() == open(DECODED, "rb").read()
    folder = out.parent
    assert files_under(str(folder)) == ["deploy.prototxt", "source/SqueezeNet_deploy.prototxt",
                                        "source/compressed_SqueezeNet.net", "squeezenet_v1.0_dc.caffemodel"]
    assert hashlib.sha256((folder / "deploy.prototxt").read_bytes()).hexdigest() == weights.SQUEEZENET_DEPLOY.digest
    # checked, not fetched again: a mirror with nothing works now
    before = out.stat().st_mtime_ns
    assert weights.fetch_squeezenet(str(out), str(tmp_path / "nothing"), quiet=True) == str(out)
    assert out.stat().st_mtime_ns == before


@needs_release
def test_the_release_files_match_the_pins():
    assert file_digest(os.path.join(RELEASE, "compressed_SqueezeNet.net"), "sha1") == weights.SQUEEZENET_NET.digest
    assert file_digest(os.path.join(RELEASE, "SqueezeNet_deploy.prototxt"), "sha256") == weights.SQUEEZENET_DEPLOY.digest
    deploy = os.path.join(SHARED, "squeezenet_v1.0_dc", "deploy.prototxt")
    assert file_digest(deploy, "sha256") == weights.SQUEEZENET_DEPLOY.digest


@needs_release
def test_a_caffemodel_decoded_from_a_local_folder_with_its_source_kept(tmp_path):
    """A user who copied the release elsewhere: --mirror DIR. The release's files are kept in
    source/: with the caffemodel gone, it is decoded again from them, nothing fetched."""
    out = tmp_path / "sq" / "squeezenet_v1.0_dc.caffemodel"
    weights.fetch_squeezenet(str(out), release_copy(str(tmp_path / "copy")), quiet=True)
    shutil.rmtree(tmp_path / "copy")
    out.unlink()
    assert weights.fetch_squeezenet(str(out), str(tmp_path / "copy"), quiet=True) == str(out)
    assert file_digest(str(out), "sha256") == weights.SQUEEZENET_CAFFEMODEL_SHA256
