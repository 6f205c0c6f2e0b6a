"""CIFAR-10 from the common image-folder layout (train/<class>/*, test/<class>/*), as a folder,
a .tar or a .tar.gz: the documented record order, pixels and labels read back through Caffe's
Data layer, checksums in the manifest, one-line errors that leave nothing behind, and the same
LMDB bytes whatever the number of encoding workers."""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

import datagen
from dhn import convert
from dhn.datasets import DatasetError

COUNTS = (3, 2)                      # train, test images a class (the real set: 5,000 and 1,000)
N_TRAIN = 10 * COUNTS[0]
SPLIT = {"train": np.arange(0, 12), "query": np.arange(N_TRAIN, N_TRAIN + 6), "database": np.arange(12, 30)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cifar_folder") / "src")
    images, labels = datagen.write_cifar_image_folder(root, COUNTS, fmt="png")
    return {"root": root, "bgr": images, "labels": labels}


def convert_folder(source, out, **kw):
    kw.setdefault("split_indices", SPLIT)
    return convert.convert_cifar10(source, out, size=kw.pop("size", 32), folder_counts=kw.pop("counts", COUNTS),
                                   progress=False, **kw)


def test_record_order_is_train_then_test_class_by_class_files_by_name(folder):
    from dhn.datasets import load_cifar10
    data = load_cifar10(folder["root"], per_class=COUNTS)
    want = [c for c in range(10) for _ in range(COUNTS[0])] + [c for c in range(10) for _ in range(COUNTS[1])]
    assert data.labels.tolist() == want
    np.testing.assert_array_equal(data.images, folder["bgr"])
    path = os.path.join(folder["root"], "test", "airplane", "0001.png")
    assert data.file_sha256[N_TRAIN + 1] == hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("form", ["folder", "tar", "tar.gz", "wrapped tar.gz"])
def test_folder_and_tarballs_convert_pixel_and_label_exact(folder, tmp_path, form):
    src = folder["root"]
    if form != "folder":
        ext = "tar" if form == "tar" else "tar.gz"
        src = datagen.tar_folder(str(tmp_path / ("cifar." + ext)), folder["root"],
                                 arcname="cifar10" if form.startswith("wrapped") else "")
    dirs = convert_folder(src, str(tmp_path / "lmdb"))
    for name, idx in SPLIT.items():
        records = np.loadtxt(os.path.join(dirs[name], "records.txt"), dtype=np.int64, ndmin=1)
        assert sorted(records) == list(idx)
        images, cls, vectors = datagen.read_with_caffe(dirs[name], len(records))
        np.testing.assert_array_equal(images, folder["bgr"][records].transpose(0, 3, 1, 2).astype(np.float32))
        np.testing.assert_array_equal(cls, folder["labels"][records])
        np.testing.assert_array_equal(vectors, np.eye(10)[folder["labels"][records]])
        manifest = json.load(open(os.path.join(dirs[name], "manifest.json")))
        (source, info), = manifest["sources"].items()
        assert "image folder" in info["layout"]
        if form != "folder":
            assert info["sha256"] == hashlib.sha256(open(src, "rb").read()).hexdigest()
        digest = hashlib.sha256()
        for i in records:   # the per-file checksums, in record order
            split, k = ("train", i) if i < N_TRAIN else ("test", i - N_TRAIN)
            cls_name = datagen.CIFAR_NAMES[folder["labels"][i]].decode()
            path = os.path.join(folder["root"], split, cls_name, "%04d.png" % (k % COUNTS[split == "test"]))
            digest.update(("%d %s\n" % (i, hashlib.sha256(open(path, "rb").read()).hexdigest())).encode())
        assert manifest["images_sha256"] == digest.hexdigest()


def test_jpeg_folder_is_read_as_decoded(tmp_path):
    images, labels = datagen.write_cifar_image_folder(str(tmp_path / "src"), COUNTS, fmt="jpg", seed=2)
    dirs = convert_folder(str(tmp_path / "src"), str(tmp_path / "lmdb"), split_indices={"query": np.arange(30)})
    got, cls, _ = datagen.read_with_caffe(dirs["query"], 30)
    np.testing.assert_array_equal(got, images[:30].transpose(0, 3, 1, 2).astype(np.float32))
    np.testing.assert_array_equal(cls, labels[:30])


def test_any_number_of_workers_writes_the_same_bytes(folder, tmp_path):
    outs = {}
    for workers in (1, 2, 3):
        out = str(tmp_path / ("w%d" % workers))
        convert_folder(folder["root"], out, size=64, workers=workers)
        outs[workers] = out
    for split in SPLIT:
        for db in ("images", "labels"):
            blobs = {w: open(os.path.join(o, split, db, "data.mdb"), "rb").read() for w, o in outs.items()}
            assert blobs[1] == blobs[2] == blobs[3], (split, db)
    assert json.load(open(os.path.join(outs[3], "train", "manifest.json")))["workers"] == 3


def broken(folder, tmp_path, edit):
    src = str(tmp_path / "src")
    shutil.copytree(folder["root"], src)
    edit(src)
    return src


def one_line_error(src, out, match):
    with pytest.raises(DatasetError, match=match) as info:
        convert_folder(src, out)
    assert "\n" not in str(info.value)
    assert not os.path.exists(out) or os.listdir(out) == []


@pytest.mark.parametrize("edit,match", [
    (lambda s: shutil.rmtree(os.path.join(s, "test", "ship")), r"missing class folder test/ship"),
    (lambda s: os.rename(os.path.join(s, "train", "cat"), os.path.join(s, "train", "kitten")),
     r"unknown class folder train/kitten: class folders must be the official names"),
    (lambda s: os.remove(os.path.join(s, "train", "dog", "0001.png")),
     r"train/dog holds 2 images, CIFAR-10 has 3 there"),
    (lambda s: open(os.path.join(s, "train", "frog", "0002.png"), "wb").write(b"not an image"),
     r"train/frog/0002\.png does not decode as an image: replace the file"),
    (lambda s: datagen.cv2.imwrite(os.path.join(s, "test", "truck", "0000.png"), np.zeros((32, 31, 3), np.uint8)),
     r"test/truck/0000\.png is 32×31, CIFAR-10 images are 32×32"),
])
def test_bad_folder_is_one_line_and_leaves_nothing(folder, tmp_path, edit, match):
    one_line_error(broken(folder, tmp_path, edit), str(tmp_path / "lmdb"), match)


def test_bad_image_in_a_tarball_names_the_member(folder, tmp_path):
    src = broken(folder, tmp_path, lambda s: open(os.path.join(s, "test", "bird", "0001.png"), "wb").write(b"x"))
    tarball = datagen.tar_folder(str(tmp_path / "c.tar.gz"), src)
    one_line_error(tarball, str(tmp_path / "lmdb"), r"c\.tar\.gz: test/bird/0001\.png does not decode")


def test_real_split_needs_5000_and_1000_a_class(folder, tmp_path):
    out = str(tmp_path / "lmdb")
    with pytest.raises(DatasetError, match=r"train/airplane holds 3 images, CIFAR-10 has 5000 there"):
        convert.convert_cifar10(folder["root"], out, progress=False)
    assert not os.path.exists(out)
