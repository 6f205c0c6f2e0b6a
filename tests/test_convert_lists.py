"""NUS-WIDE-21 / MIRFlickr-25K style conversion: image folders + list files `path l_1 ... l_C`,
read back through Caffe's Data layer pixel- and label-exact."""
import json
import os
import subprocess

import numpy as np
import pytest

import datagen
from dhn import convert, split_folder
from dhn.datasets import write_split_files


def check_exact(split_dir, images, labels, size):
    records = np.loadtxt(os.path.join(split_dir, "records.txt"), dtype=np.int64, ndmin=1)
    n = len(records)
    got, cls, vectors = datagen.read_with_caffe(split_dir, n)
    want = np.stack([datagen.expected_chw(images[i], size) for i in records]).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(cls, np.zeros(n))                 # multi-label: Datum.label 0
    np.testing.assert_array_equal(vectors, labels[records])
    np.testing.assert_array_equal(split_folder.read_split_labels(split_dir), labels[records])
    return records


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_nuswide_like_list_mixed_sizes(tmp_path, fmt):
    labels = datagen.random_multihot(12, 21, seed=3)
    list_file, root, images = datagen.write_image_list(str(tmp_path), labels, fmt=fmt,
                                                       sizes=((30, 40), (50, 20), (48, 48)))
    split = {"train": [0, 2, 4, 6, 8], "query": [1, 3], "database": [5, 7, 9, 10, 11]}
    dirs = convert.convert_list(list_file, root, str(tmp_path / "lmdb"), split, num_labels=21, size=48,
                                dataset="nuswide21", progress=False)
    for name, idx in split.items():
        records = check_exact(dirs[name], images, labels, 48)
        assert sorted(records) == idx
        m = json.load(open(os.path.join(dirs[name], "manifest.json")))
        assert m["num_labels"] == 21 and m["count"] == len(idx) and m["complete"]
        assert m["label_counts"] == labels[idx].sum(0).tolist()
        assert len(m["sources"]["list"]["sha256"]) == 64 and len(m["images_sha256"]) == 64
    assert list(np.loadtxt(os.path.join(dirs["train"], "records.txt"), dtype=int)) == \
        list(np.random.RandomState(0).permutation(split["train"]))


def test_demo_call_small_pngs_without_resize(tmp_path):
    labels = np.eye(4, dtype=np.uint8)[np.arange(8) % 4]
    list_file, root, images = datagen.write_image_list(str(tmp_path), labels, sizes=((32, 32),))
    dirs = convert.convert_list(list_file, root, str(tmp_path / "out"),
                                {"train": np.arange(4), "query": np.arange(4, 6), "database": np.arange(6, 8),
                                 "val": np.array([])}, num_labels=4, size=32, encoding="raw", seed=5,
                                progress=False)
    assert sorted(os.listdir(tmp_path / "out")) == ["database", "query", "train", "val"]
    check_exact(dirs["train"], images, labels, 32)
    assert split_folder.read_split_labels(dirs["val"]).shape == (0, 4)


def test_split_from_committed_style_rule_and_cli(tmp_path, capsys):
    labels = datagen.random_multihot(30, 38, seed=1)
    list_file, root, images = datagen.write_image_list(str(tmp_path), labels)
    spec = {"rule": "random", "seed": 0, "query": 5, "train": 10}
    dirs = convert.convert_list(list_file, root, str(tmp_path / "a"), num_labels=38, size=32, split_spec=spec,
                                progress=False)
    counts = {k: json.load(open(os.path.join(d, "manifest.json")))["count"] for k, d in dirs.items()}
    assert counts == {"train": 10, "query": 5, "database": 15}
    # The same split through the CLI with <split>.txt files gives the same records.
    split_dir = str(tmp_path / "splits")
    write_split_files({k: np.loadtxt(os.path.join(d, "records.txt"), dtype=int) for k, d in dirs.items()}, split_dir)
    rc = convert.main(["flickr25k", "--images", root, "--list", list_file, "--out", str(tmp_path / "b"),
                       "--splits", split_dir, "--size", "32"])
    assert rc == 0
    for k in dirs:
        a = np.loadtxt(os.path.join(dirs[k], "records.txt"), dtype=int)
        b = np.loadtxt(str(tmp_path / "b" / k / "records.txt"), dtype=int)
        assert list(a) == list(b)
    check_exact(str(tmp_path / "b" / "query"), images, labels, 32)
    assert "img/s" in capsys.readouterr().err   # the throughput line


def test_unlabeled_rules_drop_and_keep(tmp_path):
    labels = datagen.random_multihot(10, 5, seed=2)
    labels[[3, 7]] = 0
    list_file, root, images = datagen.write_image_list(str(tmp_path), labels)
    split = {"train": [0, 1, 2, 3], "database": [4, 5, 6, 7, 8, 9]}
    dirs = convert.convert_list(list_file, root, str(tmp_path / "drop"), split, num_labels=5, size=32,
                                unlabeled="drop", progress=False)
    assert sorted(np.loadtxt(os.path.join(dirs["train"], "records.txt"), dtype=int)) == [0, 1, 2]
    assert json.load(open(os.path.join(dirs["database"], "manifest.json")))["options"]["dropped_unlabeled"] == 2
    dirs = convert.convert_list(list_file, root, str(tmp_path / "keep"), split, num_labels=5, size=32,
                                unlabeled="keep", progress=False)
    m = json.load(open(os.path.join(dirs["database"], "manifest.json")))
    assert m["count"] == 6 and m["unlabeled"] == 1
    check_exact(dirs["database"], images, labels, 32)


@pytest.mark.parametrize("dataset, num_labels", [("nuswide21", 21), ("flickr25k", 38)])
def test_make_data_converts_a_list_through_make(tmp_path, dataset, num_labels):
    """`make data DATASET=<d> IMAGES=... LIST=... SPLITS=... OUT=...`, run as a user runs it: the
    image folder and list reach dhn.convert, the images are stored pixel- and label-exact; an image
    with no label is left out with UNLABELED=drop."""
    labels = datagen.random_multihot(12, num_labels, seed=num_labels)
    labels[5] = 0
    list_file, root, images = datagen.write_image_list(str(tmp_path / "src"), labels, sizes=((30, 40), (48, 48)))
    split = {"train": [0, 2, 4, 6], "query": [1, 3], "database": [5, 7, 8, 9, 10, 11]}
    write_split_files(split, str(tmp_path / "splits"))
    out = tmp_path / "lmdb"
    cmd = ["make", "-s", "data", "DATASET=" + dataset, "IMAGES=" + root, "LIST=" + list_file,
           "SPLITS=" + str(tmp_path / "splits"), "OUT=" + str(out), "UNLABELED=drop", "WORKERS=1"]
    r = subprocess.run(cmd, cwd=os.environ["DHN_ROOT"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["database", "query", "train"]
    for name, idx in split.items():
        records = check_exact(str(out / name), images, labels, 256)
        assert sorted(records) == [i for i in idx if i != 5]
        m = json.load(open(out / name / "manifest.json"))
        assert m["num_labels"] == num_labels and m["options"]["dropped_unlabeled"] == 1
