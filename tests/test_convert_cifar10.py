"""CIFAR-10 to LMDB on tiny pickled batches: read back through Caffe's Data layer, pixel- and
label-exact; re-runs are no-ops; interrupted runs leave nothing that looks finished."""
import json
import os

import numpy as np
import pytest

import datagen
from dhn import convert, lmdb_io, split_folder
from dhn.datasets import DatasetError, download_cifar10

# 24 records: train / query / database by record index (the real split needs 60,000).
SPLIT = {"train": np.arange(0, 10), "query": np.arange(10, 14), "database": np.arange(14, 24)}


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    folder, rgb, labels = datagen.write_cifar_folder(str(root))
    tarball = str(root / "cifar-10-python.tar.gz")
    md5 = datagen.write_cifar_tarball(tarball, folder)
    return {"folder": folder, "tarball": tarball, "md5": md5, "bgr": rgb[..., ::-1], "labels": labels}


def check_split_exact(split_dir, cifar, size, tol=0):
    records = np.loadtxt(os.path.join(split_dir, "records.txt"), dtype=np.int64, ndmin=1)
    n = len(records)
    images, cls, vectors = datagen.read_with_caffe(split_dir, n)
    want = np.stack([datagen.expected_chw(np.ascontiguousarray(cifar["bgr"][i]), size) for i in records])
    assert images.shape == (n, 3, size, size)
    if tol:  # lossy JPEG: Caffe decodes exactly what Python's OpenCV decodes; near the source
        decoded = np.stack([lmdb_io.datum_array(d) for d in lmdb_io.read(os.path.join(split_dir, "images"))])
        np.testing.assert_array_equal(images, decoded.astype(np.float32))
        assert np.abs(images - want).mean() < tol
    else:
        np.testing.assert_array_equal(images, want.astype(np.float32))
    np.testing.assert_array_equal(cls, cifar["labels"][records])
    np.testing.assert_array_equal(vectors, np.eye(10)[cifar["labels"][records]])
    np.testing.assert_array_equal(split_folder.read_split_labels(split_dir), np.eye(10)[cifar["labels"][records]])
    return records


def test_tarball_to_lmdb_is_pixel_and_label_exact(cifar, tmp_path):
    out = str(tmp_path / "lmdb")
    dirs = convert.convert_cifar10(cifar["tarball"], out, split_indices=SPLIT, expected_md5=cifar["md5"],
                                   progress=False)
    assert sorted(dirs) == ["database", "query", "train"]
    assert sorted(os.listdir(out)) == ["database", "query", "train"]
    for name, idx in SPLIT.items():
        records = check_split_exact(dirs[name], cifar, 256)
        assert sorted(records) == list(idx)
        manifest = json.load(open(os.path.join(dirs[name], "manifest.json")))
        assert manifest["complete"] is True and manifest["count"] == len(idx)
        assert manifest["num_labels"] == 10 and manifest["image_size"] == [256, 256]
        assert manifest["encoding"] == "png"
        assert manifest["sources"]["cifar-10-python.tar.gz"]["md5"] == cifar["md5"]
    train = np.loadtxt(os.path.join(dirs["train"], "records.txt"), dtype=np.int64)
    assert list(train) == list(np.random.RandomState(0).permutation(SPLIT["train"]))  # shuffled, seeded
    assert list(train) != sorted(train)


@pytest.mark.parametrize("encoding,size,tol", [("raw", 32, 0), ("raw", 40, 0), ("jpg", 64, 20.0)])
def test_folder_source_encodings_and_sizes(cifar, tmp_path, encoding, size, tol):
    out = str(tmp_path / "lmdb")
    dirs = convert.convert_cifar10(cifar["folder"], out, split_indices={"query": np.arange(24)},
                                   size=size, encoding=encoding, progress=False)
    check_split_exact(dirs["query"], cifar, size, tol)
    manifest = json.load(open(os.path.join(dirs["query"], "manifest.json")))
    assert set(manifest["sources"]) == set(datagen.BATCHES) | {"batches.meta"}


def test_rerun_is_a_noop_and_a_changed_request_rebuilds(cifar, tmp_path, capsys):
    out = str(tmp_path / "lmdb")
    kw = dict(split_indices=SPLIT, expected_md5=cifar["md5"], size=32, progress=False)
    convert.convert_cifar10(cifar["tarball"], out, **kw)
    stamp = {s: os.stat(os.path.join(out, s, "images", "data.mdb")).st_mtime_ns for s in SPLIT}
    capsys.readouterr()
    convert.convert_cifar10(cifar["tarball"], out, **kw)
    assert capsys.readouterr().err.count("up to date") == 3
    assert stamp == {s: os.stat(os.path.join(out, s, "images", "data.mdb")).st_mtime_ns for s in SPLIT}
    convert.convert_cifar10(cifar["tarball"], out, **dict(kw, encoding="raw"))
    assert json.load(open(os.path.join(out, "train", "manifest.json")))["encoding"] == "raw"
    assert sorted(os.listdir(out)) == ["database", "query", "train"]


def test_interrupted_run_leaves_nothing_that_looks_finished_and_resumes(tmp_path):
    out = str(tmp_path / "lmdb")
    labels = np.eye(3, dtype=np.uint8)[np.arange(12) % 3]
    images = np.random.RandomState(1).randint(0, 256, (12, 8, 8, 3)).astype(np.uint8)
    split = {"train": np.arange(4), "query": np.arange(4, 8), "database": np.arange(8, 12)}
    calls = []

    def flaky(i):
        calls.append(i)
        if i == 9:
            raise KeyboardInterrupt
        return images[i], None

    with pytest.raises(KeyboardInterrupt):
        convert.build_splits(out, "toy", split, labels, flaky, size=8, progress=False)
    assert sorted(os.listdir(out)) == ["query", "train"]      # finished splits only, no tmp
    calls.clear()
    convert.build_splits(out, "toy", split, labels, lambda i: (images[i], None), size=8, progress=False)
    assert sorted(os.listdir(out)) == ["database", "query", "train"]
    assert split_folder.read_split_labels(os.path.join(out, "database")).tolist() == labels[8:].tolist()


def test_stale_tmp_of_a_dead_run_is_removed(cifar, tmp_path):
    out = tmp_path / "lmdb"
    (out / "train.tmp-999999999").mkdir(parents=True)
    convert.convert_cifar10(cifar["folder"], str(out), split_indices={"train": [0, 1]}, size=32, progress=False)
    assert sorted(os.listdir(out)) == ["train"]


def test_download_from_url_checks_md5(cifar, tmp_path):
    url = "file://" + cifar["tarball"]
    dl = str(tmp_path / "download")
    path = download_cifar10(dl, url=url, md5=cifar["md5"])
    assert os.listdir(dl) == ["cifar-10-python.tar.gz"] and path == os.path.join(dl, "cifar-10-python.tar.gz")
    with pytest.raises(DatasetError, match="md5 .* expected 0+"):
        download_cifar10(str(tmp_path / "other"), url=url, md5="0" * 32)
    assert os.listdir(str(tmp_path / "other")) == []          # no partial file left
    dirs = convert.convert_cifar10(None, str(tmp_path / "lmdb"), download=True, download_dir=str(tmp_path / "d2"),
                                   url=url, expected_md5=cifar["md5"], split_indices={"query": [3]}, size=32,
                                   progress=False)
    assert split_folder.read_split_labels(dirs["query"]).argmax(1).tolist() == [cifar["labels"][3]]


def test_default_split_needs_the_official_60000(cifar, tmp_path):
    out = tmp_path / "lmdb"
    with pytest.raises(DatasetError, match="class 0 has 3 images, the split needs 6000"):
        convert.convert_cifar10(cifar["folder"], str(out), progress=False)
    assert not out.exists()


def test_cli_without_data_says_where_to_put_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(convert, "dataset_dir", lambda name: str(tmp_path / name))
    assert convert.main(["cifar10", "--out", str(tmp_path / "lmdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ")
    assert "cifar10/download" in err and "--download" in err and "--source" in err
