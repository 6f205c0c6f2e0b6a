"""Each bad input gives a one-line DatasetError naming the file (and line), and leaves no output."""
import os
import pickle

import lmdb
import pytest

import datagen
from dhn import convert, split_folder
from dhn.datasets import CIFAR10_MD5, DatasetError

SPLIT = {"train": [0, 1, 2], "query": [3], "database": [4, 5]}


def raises_one_line(match, fn, *args, **kw):
    with pytest.raises(DatasetError, match=match) as info:
        fn(*args, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def assert_no_output(out):
    assert not os.path.exists(out) or os.listdir(out) == [], os.listdir(out)


@pytest.fixture
def listed(tmp_path):
    labels = datagen.random_multihot(6, 21, seed=4)
    list_file, root, _ = datagen.write_image_list(str(tmp_path), labels, sizes=((20, 24),))
    return {"list": list_file, "root": root, "labels": labels, "out": str(tmp_path / "lmdb")}


def convert_listed(d, **kw):
    return convert.convert_list(d["list"], d["root"], d["out"], kw.pop("split", SPLIT), num_labels=21, size=32,
                                progress=False, **kw)


def rewrite_line(path, lineno, fn):
    lines = open(path).read().splitlines()
    lines[lineno - 1] = fn(lines[lineno - 1])
    open(path, "w").write("\n".join(lines) + "\n")


def test_missing_list_file(listed):
    os.remove(listed["list"])
    raises_one_line(r"list\.txt: missing list file", convert_listed, listed)
    assert_no_output(listed["out"])


def test_missing_image_folder(listed):
    listed["root"] = listed["root"] + "/nowhere"
    raises_one_line(r"nowhere: missing image folder", convert_listed, listed)
    assert_no_output(listed["out"])


def test_wrong_number_of_columns(listed):
    rewrite_line(listed["list"], 3, lambda s: s.rsplit(" ", 1)[0])
    raises_one_line(r"list\.txt:3: 21 columns, expected 22", convert_listed, listed)
    assert_no_output(listed["out"])


def test_label_not_0_or_1(listed):
    rewrite_line(listed["list"], 2, lambda s: s[:-1] + "2")
    raises_one_line(r"list\.txt:2: label '2' is not 0 or 1 \(column 22\)", convert_listed, listed)
    assert_no_output(listed["out"])


def test_image_that_does_not_exist(listed):
    os.remove(os.path.join(listed["root"], "imgs", "img4.png"))
    raises_one_line(r"list\.txt:5: image .*imgs/img4\.png does not exist", convert_listed, listed)
    assert_no_output(listed["out"])


def test_image_that_does_not_decode_removes_the_runs_finished_splits(listed):
    # img5 is in the database split, written last: train and query were already finished.
    open(os.path.join(listed["root"], "imgs", "img5.png"), "wb").write(b"not a png at all")
    raises_one_line(r"list\.txt:6: .*imgs/img5\.png does not decode", convert_listed, listed)
    assert_no_output(listed["out"])


def test_image_with_no_label(listed):
    rewrite_line(listed["list"], 4, lambda s: s.split()[0] + " 0" * 21)
    raises_one_line(r"list\.txt:4: imgs/img3\.png has no label .*--unlabeled drop", convert_listed, listed)
    assert_no_output(listed["out"])


def test_split_that_does_not_fit_or_overlaps(listed):
    raises_one_line(r"index 9 outside 0\.\.5", convert_listed, listed, split={"train": [0, 9]})
    raises_one_line(r"index 1 is in both train and query", convert_listed, listed,
                    split={"train": [0, 1], "query": [1]})
    assert_no_output(listed["out"])


def test_cifar_checksum_mismatch(tmp_path):
    folder, _, _ = datagen.write_cifar_folder(str(tmp_path))
    tarball = str(tmp_path / "cifar-10-python.tar.gz")
    md5 = datagen.write_cifar_tarball(tarball, folder)
    msg = raises_one_line(r"cifar-10-python\.tar\.gz: md5 %s, expected %s" % (md5, CIFAR10_MD5),
                          convert.convert_cifar10, tarball, str(tmp_path / "lmdb"), split_indices={"train": [0]})
    assert "--download" in msg
    assert_no_output(str(tmp_path / "lmdb"))


def test_cifar_missing_or_bad_batch(tmp_path):
    folder, _, _ = datagen.write_cifar_folder(str(tmp_path))
    out = str(tmp_path / "lmdb")
    os.remove(os.path.join(folder, "data_batch_3"))
    raises_one_line(r"data_batch_3: missing file", convert.convert_cifar10, folder, out, split_indices={"train": [0]})
    open(os.path.join(folder, "data_batch_3"), "wb").write(b"garbage")
    raises_one_line(r"data_batch_3: not a CIFAR-10 python batch", convert.convert_cifar10, folder, out,
                    split_indices={"train": [0]})
    with open(os.path.join(folder, "data_batch_3"), "wb") as fh:   # pickles that would run code are refused
        pickle.dump({b"data": os.system}, fh)
    raises_one_line(r"data_batch_3: not a CIFAR-10 python batch \(refusing to load", convert.convert_cifar10,
                    folder, out, split_indices={"train": [0]})
    assert_no_output(out)


def test_images_and_labels_of_different_lengths_on_read_back(listed):
    dirs = convert_listed(listed)
    with lmdb.open(os.path.join(dirs["train"], "labels"), map_size=1 << 30) as env, env.begin(write=True) as txn:
        txn.delete(b"%08d" % 2)
    for fn in (split_folder.check_split, split_folder.read_split_labels):
        raises_one_line(r"train: images/ holds 3 records but labels/ holds 2", fn, dirs["train"])
    # ...and a re-run notices the damage and rebuilds that split.
    convert_listed(listed)
    assert split_folder.read_split_labels(dirs["train"]).shape == (3, 21)


def test_cli_prints_one_error_line_and_exits_2(listed, capsys):
    rewrite_line(listed["list"], 3, lambda s: s + " 1")
    rc = convert.main(["nuswide21", "--images", listed["root"], "--list", listed["list"], "--out", listed["out"]])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and "list.txt:3:" in err
    assert_no_output(listed["out"])


def test_make_data_without_arguments_for_list_datasets_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        convert.main(["nuswide21"])
    assert info.value.code == 2 and "--images" in capsys.readouterr().err
