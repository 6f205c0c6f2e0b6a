"""A conversion that fails part-way keeps the previous whole splits: faults injected at each step
of replacing a split (fill() raising, either rename failing, the process dying between the two
renames, bad input in a later split) must leave the split that was there before in place, the
very same files (same inodes: not rebuilt), with nothing left beside it."""
import os
import subprocess
import sys

import pytest

import datagen
from dhn import convert, split_folder
from dhn.datasets import DatasetError

SPLIT = {"train": [0, 1, 2], "query": [3], "database": [4, 5]}


@pytest.fixture
def converted(tmp_path):
    """A finished conversion at size 32; converting again at size 28 replaces every split."""
    labels = datagen.random_multihot(6, 21, seed=4)
    list_file, root, _ = datagen.write_image_list(str(tmp_path), labels, sizes=((20, 24),))
    out = str(tmp_path / "lmdb")
    convert.convert_list(list_file, root, out, SPLIT, num_labels=21, size=32, progress=False)
    return {"list": list_file, "root": root, "out": out, "before": state(out)}


def state(out):
    """{split: (inode of its manifest.json, size it was converted at)} and the folder's listing."""
    splits = {}
    for name in SPLIT:
        manifest = split_folder.check_split(os.path.join(out, name))   # whole
        splits[name] = (os.stat(os.path.join(out, name, "manifest.json")).st_ino, manifest["image_size"])
    return splits, sorted(os.listdir(out))


def reconvert(d, size=28):
    return convert.convert_list(d["list"], d["root"], d["out"], SPLIT, num_labels=21, size=size, progress=False)


def test_a_fill_that_fails_keeps_the_old_split(converted):
    def fill(tmp):
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError, match="disk full"):
        convert.write_split(os.path.join(converted["out"], "train"), fill)
    assert state(converted["out"]) == converted["before"]


@pytest.mark.parametrize("failing", [1, 2], ids=["moving-the-old-aside", "moving-the-new-in"])
def test_a_rename_that_fails_keeps_the_old_split(converted, monkeypatch, failing):
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == failing:
            raise OSError(28, "No space left on device (injected)")
        real(src, dst)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="injected"):
        reconvert(converted)
    monkeypatch.undo()
    assert calls[failing - 1][0].endswith("train" if failing == 1 else "train.tmp-%d" % os.getpid())
    assert state(converted["out"]) == converted["before"]


CRASH = """
import os, sys
from dhn import convert
real = os.rename
def rename(src, dst):
    real(src, dst)
    if dst.endswith(".old-%d" % os.getpid()):
        os._exit(9)          # killed between moving the old split aside and moving the new one in
os.rename = rename
list_file, root, out = sys.argv[1:]
convert.convert_list(list_file, root, out, {"train": [0, 1, 2], "query": [3], "database": [4, 5]},
                     num_labels=21, size=28, progress=False)
"""


def test_a_crash_between_the_two_renames_loses_nothing(converted):
    out = converted["out"]
    proc = subprocess.run([sys.executable, "-c", CRASH, converted["list"], converted["root"], out],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    listing = sorted(os.listdir(out))
    assert "train" not in listing and any(n.startswith("train.old-") for n in listing), listing
    # the next conversion (here: the old request again) puts the old split back and finds it up to date
    reconvert(converted, size=32)
    assert state(out) == converted["before"]


def test_bad_input_in_a_later_split_puts_back_the_splits_it_replaced(converted):
    # img5 is in the database split, written last: train and query were already replaced
    with open(os.path.join(converted["root"], "imgs", "img5.png"), "wb") as fh:
        fh.write(b"not a png at all")
    with pytest.raises(DatasetError, match="img5.png does not decode"):
        reconvert(converted)
    assert state(converted["out"]) == converted["before"]
