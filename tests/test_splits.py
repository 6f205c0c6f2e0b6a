"""The committed split definitions and the rules that turn them into record indices."""
import json
import os

import numpy as np
import pytest

from dhn import make_splits
from dhn.datasets import (DATA_DIR, DatasetError, check_split_indices, cifar10_split, load_split_spec,
                          per_label_split, random_split, read_split_files, write_split_files)


def fake_cifar_labels(seed=7):
    """60,000 labels, 6,000 per class, in a shuffled order like the real record order."""
    return np.random.RandomState(seed).permutation(np.repeat(np.arange(10), 6000))


def assert_disjoint_cover(split, n):
    allidx = np.concatenate(list(split.values()))
    assert len(np.unique(allidx)) == len(allidx) == n


def test_committed_cifar10_definition_is_what_the_script_derives():
    with open(os.path.join(DATA_DIR, "cifar10", "split.json")) as fh:
        committed = fh.read()
    assert committed == make_splits.dump_spec(make_splits.cifar10_positions(seed=0))
    spec = json.loads(committed)
    for c in range(10):
        train, query = spec["train_positions"][c], spec["query_positions"][c]
        assert len(train) == 500 and len(query) == 100 and not set(train) & set(query)
        assert 0 <= min(train + query) and max(train + query) < 6000


def test_cifar10_split_sizes_per_class_counts_and_disjointness():
    labels = fake_cifar_labels()
    split = cifar10_split(labels, load_split_spec("cifar10"))
    assert {k: len(v) for k, v in split.items()} == {"train": 5000, "query": 1000, "database": 54000}
    for name, per_class in (("train", 500), ("query", 100), ("database", 5400)):
        assert np.bincount(labels[split[name]], minlength=10).tolist() == [per_class] * 10
    assert_disjoint_cover(split, 60000)
    again = cifar10_split(labels, load_split_spec("cifar10"))
    assert all(np.array_equal(split[k], again[k]) for k in split)


def test_cifar10_split_picks_the_committed_positions():
    labels = fake_cifar_labels()
    spec = load_split_spec("cifar10")
    split = cifar10_split(labels, spec)
    members = np.flatnonzero(labels == 3)
    assert set(members[spec["train_positions"][3]]) == set(split["train"][labels[split["train"]] == 3])


def test_cifar10_split_refuses_data_that_is_not_cifar10():
    labels = fake_cifar_labels()[:59999]
    with pytest.raises(DatasetError, match="has 5999 images, the split needs 6000"):
        cifar10_split(labels, load_split_spec("cifar10"))


def test_committed_list_rules_match_the_script():
    for name, spec in make_splits.SPECS.items():
        assert load_split_spec(name) == spec


def test_nuswide_rule_at_full_size():
    rng = np.random.RandomState(0)
    labels = (rng.rand(195834, 21) < 0.08).astype(np.uint8)
    spec = load_split_spec("nuswide21")
    split = per_label_split(labels, spec["seed"], spec["query_per_label"], spec["train_per_label"],
                            eligible=labels.any(1))
    n_labelled = int(labels.any(1).sum())
    assert len(split["train"]) == 10500 and len(split["query"]) == 2100
    assert len(split["database"]) == n_labelled - 12600
    assert_disjoint_cover(split, n_labelled)
    # each label contributed >= 100 queries / 500 training images carrying it
    assert (labels[split["query"]].sum(0) >= 100).all() and (labels[split["train"]].sum(0) >= 500).all()
    with pytest.raises(DatasetError, match="label 0 has"):
        per_label_split(labels[:1000], 0, 100, 500)


def test_flickr_rule():
    eligible = np.ones(25000, bool)
    eligible[::7] = False
    spec = load_split_spec("flickr25k")
    split = random_split(25000, spec["seed"], spec["query"], spec["train"], eligible)
    assert len(split["query"]) == 1000 and len(split["train"]) == 4000
    assert len(split["database"]) == eligible.sum() - 5000
    assert_disjoint_cover(split, int(eligible.sum()))
    assert eligible[np.concatenate(list(split.values()))].all()


def test_split_files_round_trip_and_checks(tmp_path):
    split = {"train": np.array([4, 0]), "query": np.array([2])}
    write_split_files(split, str(tmp_path))
    back = read_split_files(str(tmp_path))
    assert {k: v.tolist() for k, v in back.items()} == {"query": [2], "train": [4, 0]}
    (tmp_path / "query.txt").write_text("2\nx\n")
    with pytest.raises(DatasetError, match=r"query\.txt:2: 'x' is not"):
        read_split_files(str(tmp_path))
    with pytest.raises(DatasetError, match="repeated"):
        check_split_indices({"train": [1, 1]}, 5)


def test_nuswide_list_from_official_files(tmp_path):
    concepts = ["animal", "beach", "cat", "sky", "water"]
    (tmp_path / "ConceptsList").mkdir()
    (tmp_path / "ConceptsList" / "Concepts81.txt").write_text("\n".join(concepts) + "\n")
    (tmp_path / "ImageList").mkdir()
    entries = ["C:\\ImageData\\Flickr\\actor\\%04d_1.jpg" % i for i in range(6)]
    (tmp_path / "ImageList" / "Imagelist.txt").write_text("\r\n".join(entries) + "\r\n")
    table = np.array([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 1, 0, 1, 1],
                      [0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [1, 0, 0, 1, 0]])
    labdir = tmp_path / "Groundtruth" / "AllLabels"
    labdir.mkdir(parents=True)
    for c, name in enumerate(concepts):
        (labdir / ("Labels_%s.txt" % name)).write_text("".join("%d\n" % v for v in table[:, c]))
    paths, labels, top = make_splits.nuswide_list(str(tmp_path), num_labels=3)
    assert top == ["animal", "sky", "water"]               # the 3 most frequent, in concept order
    assert paths == ["actor/0000_1.jpg", "actor/0002_1.jpg", "actor/0004_1.jpg", "actor/0005_1.jpg"]
    assert labels.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]]
    (labdir / "Labels_cat.txt").write_text("0\n0\n0\n2\n0\n0\n")
    with pytest.raises(DatasetError, match=r"Labels_cat\.txt:4: '2' is not 0 or 1"):
        make_splits.nuswide_list(str(tmp_path), num_labels=3)


def test_flickr_list_from_official_annotations(tmp_path):
    names = ["c%02d" % c for c in range(38)]
    for c, name in enumerate(names):
        (tmp_path / (name + ".txt")).write_text("%d\n" % (c % 9 + 1))
    (tmp_path / "README.txt").write_text("not labels\n")
    paths, labels, concepts = make_splits.flickr_list(str(tmp_path), num_images=10)
    assert concepts == names and paths == ["im%d.jpg" % k for k in range(1, 10)]   # im10 has no label
    assert labels.shape == (9, 38) and labels[0, 0] == 1 and labels[0, 9] == 1
    out = tmp_path / "out"
    make_splits.write_list(str(out / "l.txt"), paths, labels)
    assert open(out / "l.txt").readline().split() == ["im1.jpg"] + [str(v) for v in labels[0]]
