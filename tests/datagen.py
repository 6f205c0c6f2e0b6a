"""Tiny inputs in the real formats, and a read-back through Caffe's own Data layer.

- CIFAR-10 python batches: pickled dicts {b'data': uint8 N×3072 (R, G, B planes of 32×32),
  b'labels': list, b'batch_label', b'filenames'} named data_batch_1..5 / test_batch, plus
  batches.meta {b'label_names'}, in a cifar-10-batches-py/ folder or a .tar.gz of it.
- Image folders (PNG / JPEG, assorted sizes) with a list file ``path l_1 ... l_C``.
"""
import hashlib
import os
import pickle
import tarfile
import tempfile

import cv2
import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")  # keep Caffe's log out of the test output

CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
BATCHES = ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]


def write_cifar_folder(root, per_batch=4, seed=0, labels=None):
    """Write root/cifar-10-batches-py/; returns (folder, N×32×32×3 RGB images, N labels) in
    record order (data_batch_1..5, test_batch). labels: optional N = 6*per_batch classes."""
    rng = np.random.RandomState(seed)
    n = 6 * per_batch
    images = rng.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8)
    labels = np.arange(n) % 10 if labels is None else np.asarray(labels)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    for b, name in enumerate(BATCHES):
        sl = slice(b * per_batch, (b + 1) * per_batch)
        rows = images[sl].transpose(0, 3, 1, 2).reshape(-1, 3072)   # R plane, G plane, B plane
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels[sl]],
                 b"data": rows, b"filenames": [b"img%d.png" % i for i in range(sl.start, sl.stop)]}
        with open(os.path.join(folder, name), "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    with open(os.path.join(folder, "batches.meta"), "wb") as fh:
        pickle.dump({b"label_names": CIFAR_NAMES, b"num_cases_per_batch": per_batch, b"num_vis": 3072}, fh, protocol=2)
    return folder, images, labels


def write_cifar_tarball(path, folder):
    """Tar+gzip a cifar-10-batches-py folder like the official tarball; returns its md5."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    with open(path, "rb") as fh:
        return hashlib.md5(fh.read()).hexdigest()


def write_image_list(root, labels, fmt="png", sizes=((32, 32),), seed=0, subdir="imgs"):
    """Images root/<subdir>/img<i>.<fmt> (H×W cycling through sizes) and root/list.txt with the
    given N×C 0/1 labels. Returns (list_file, image_root, list of BGR images as written)."""
    rng = np.random.RandomState(seed)
    labels = np.asarray(labels)
    os.makedirs(os.path.join(root, subdir), exist_ok=True)
    images, lines = [], []
    for i, row in enumerate(labels):
        h, w = sizes[i % len(sizes)]
        img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        rel = "%s/img%d.%s" % (subdir, i, fmt)
        assert cv2.imwrite(os.path.join(root, rel), img)
        images.append(cv2.imread(os.path.join(root, rel), cv2.IMREAD_COLOR))  # as decoded (JPEG is lossy)
        lines.append("%s %s\n" % (rel, " ".join(str(int(v)) for v in row)))
    list_file = os.path.join(root, "list.txt")
    with open(list_file, "w") as fh:
        fh.writelines(lines)
    return list_file, root, images


def random_multihot(n, c, seed=0):
    rng = np.random.RandomState(seed)
    labels = (rng.rand(n, c) < 0.3).astype(np.uint8)
    labels[np.arange(n), rng.randint(0, c, n)] = 1   # at least one label each
    return labels


def expected_chw(bgr, size):
    """What the converter should store: the image resized like Caffe (INTER_LINEAR), C×H×W."""
    if bgr.shape[:2] != (size, size):
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_LINEAR)
    return bgr.transpose(2, 0, 1)


def read_with_caffe(split_dir, n):
    """Forward a net of two stock Data layers (LMDB, batch n) over split_dir/images and
    split_dir/labels; returns (images N×3×H×W float, class labels N, label vectors N×C)."""
    import caffe
    caffe.set_mode_cpu()
    proto = """
layer { name: "data" type: "Data" top: "data" top: "cls"
  data_param { source: "%s/images" backend: LMDB batch_size: %d } }
layer { name: "labels" type: "Data" top: "labels"
  data_param { source: "%s/labels" backend: LMDB batch_size: %d } }
""" % (split_dir, n, split_dir, n)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as fh:
        fh.write(proto)
    try:
        net = caffe.Net(fh.name, caffe.TEST)
        net.forward()
        out = (net.blobs["data"].data.copy(), net.blobs["cls"].data.copy(),
               net.blobs["labels"].data.reshape(n, -1).copy())
        del net
    finally:
        os.remove(fh.name)
    return out


def write_cifar_image_folder(root, per_class=(3, 2), fmt="png", seed=0, size=32):
    """root/train/<class>/NNNN.<fmt> and root/test/<class>/NNNN.<fmt>, the common image-folder
    layout of CIFAR-10. Returns (BGR images as decoded, class indices) in the documented record
    order: train class by class in label order, files by name; then test likewise."""
    rng = np.random.RandomState(seed)
    images, labels = [], []
    for split, count in zip(("train", "test"), per_class):
        for c, name in enumerate(CIFAR_NAMES):
            folder = os.path.join(root, split, name.decode())
            os.makedirs(folder, exist_ok=True)
            for k in range(count):
                img = rng.randint(0, 256, (size, size, 3)).astype(np.uint8)
                path = os.path.join(folder, "%04d.%s" % (k, fmt))
                assert cv2.imwrite(path, img)
                images.append(cv2.imread(path, cv2.IMREAD_COLOR))
                labels.append(c)
    return np.stack(images), np.asarray(labels)


def tar_folder(path, folder, arcname=""):
    """A .tar or .tar.gz (by path's ending) of folder's contents under arcname."""
    mode = "w:gz" if path.endswith(".gz") else "w"
    with tarfile.open(path, mode) as tar:
        for name in sorted(os.listdir(folder)):
            tar.add(os.path.join(folder, name), arcname=os.path.join(arcname, name) if arcname else name)
    return path


# A small deploy net with its own names, input blob and 28×28 input, plus a head (cls, prob)
# that a cut after `feat` must drop: the "another backbone" of the tests.
SMALL_DEPLOY = """name: "smallnet"
layer { name: "img" type: "Input" top: "img" input_param { shape { dim: 1 dim: 3 dim: 28 dim: 28 } } }
layer { name: "c1" type: "Convolution" bottom: "img" top: "c1"
        convolution_param { num_output: 16 kernel_size: 5 stride: 2 weight_filler { type: "xavier" } } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "feat" type: "InnerProduct" bottom: "c1" top: "feat"
        inner_product_param { num_output: 64 weight_filler { type: "xavier" } } }
layer { name: "feat_relu" type: "ReLU" bottom: "feat" top: "feat" }
layer { name: "cls" type: "InnerProduct" bottom: "feat" top: "cls" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "cls" top: "prob" }
"""


def small_backbone(root):
    """(deploy prototxt, caffemodel) of SMALL_DEPLOY saved from its random init under root/smallnet/."""
    import caffe
    deploy = os.path.join(root, "smallnet", "deploy.prototxt")
    os.makedirs(os.path.dirname(deploy), exist_ok=True)
    with open(deploy, "w") as fh:
        fh.write(SMALL_DEPLOY)
    caffe.set_mode_cpu()
    model = os.path.join(root, "smallnet.caffemodel")
    caffe.Net(deploy, caffe.TEST).save(model)
    return deploy, model


def converted_demo(root, n, seed, order_seed, n_train, n_query):
    """n demo images (synthetic) converted to root/lmdb: a seeded permutation cut into
    n_train train, n_query query, the rest database. Returns (lmdb folder, list file)."""
    from dhn import convert, synthetic
    list_file = synthetic.write_dataset(root, n, seed=seed)
    order = np.random.default_rng(order_seed).permutation(n)
    split = {"train": order[:n_train], "query": order[n_train:n_train + n_query],
             "database": order[n_train + n_query:]}
    data = os.path.join(root, "lmdb")
    convert.convert_list(list_file, root, data, split, num_labels=len(synthetic.CONCEPTS), size=synthetic.SIZE,
                         progress=False)
    return data, list_file
