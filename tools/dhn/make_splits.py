"""Derive the split definitions committed in data/<dataset>/ (see dhn.datasets for the rules).

    python -m dhn.make_splits cifar10            # data/cifar10/split.json: per-class positions
    python -m dhn.make_splits specs              # data/nuswide21/ and data/flickr25k/split.json
    python -m dhn.make_splits nuswide21 --official NUS-WIDE/ [--list-out F] [--splits-out D]
    python -m dhn.make_splits flickr25k --official mirflickr25k_annotations_v080/ [...]

CIFAR-10: the labels come only with the data, so the committed file holds, per class, which
500 (train) and 100 (query) of the class's 6,000 images, numbered in record order
(data_batch_1..5 then test_batch), are drawn with RandomState(seed); dhn.datasets.cifar10_split
maps them to record indices with the md5-checked labels. It needs no data to regenerate.

NUS-WIDE-21 and MIRFlickr-25K: from the official label files this writes the list file the
converter reads (``path l_1 ... l_C``; images with no label left out) and the split it gets by
the committed rule as <split>.txt index files, printing their sha256 so runs can be compared.
- NUS-WIDE: ImageList/Imagelist.txt (269,648 paths), ConceptsList/Concepts81.txt and
  Groundtruth/AllLabels/Labels_<concept>.txt (one 0/1 per image); the 21 most frequent concepts
  (ties: concept order), images with at least one of them (195,834 in the paper); paths become
  ``<category>/<file>.jpg``, relative to the Flickr/ image folder.
- MIRFlickr-25K: mirflickr25k_annotations_v080/<concept>.txt (1-based image numbers): all 38
  files (24 concepts + 14 "_r1" relevant subsets) in name order; images ``im<k>.jpg``.
"""
import argparse
import json
import os
import sys

import numpy as np

from dhn.atomic import write_atomic
from dhn.datasets import (NUM_LABELS, DatasetError, dataset_dir, file_digest, load_split_spec,
                          split_from_spec, write_split_files)

# The committed rules of the list datasets (docs/FIDELITY.md: the authors' NUS-WIDE protocol, a common Flickr split).
SPECS = {
    "nuswide21": {"dataset": "nuswide21", "rule": "per_label", "seed": 0, "num_labels": 21,
                  "query_per_label": 100, "train_per_label": 500,
                  "description": "for each concept in list order: 100 queries then 500 training images "
                                 "drawn (RandomState(seed).choice) among not yet drawn images with that "
                                 "concept; 2,100 query, 10,500 train, the rest the database; disjoint"},
    "flickr25k": {"dataset": "flickr25k", "rule": "random", "seed": 0, "num_labels": 38,
                  "query": 1000, "train": 4000,
                  "description": "RandomState(seed).permutation of the labelled images: first 1,000 "
                                 "queries, next 4,000 training, the rest the database; disjoint"},
}


def cifar10_positions(seed=0, per_class=6000, train=500, query=100, classes=10):
    """The CIFAR-10 split definition: per class, sorted positions of train and query images."""
    rng = np.random.RandomState(seed)
    train_pos, query_pos = [], []
    for _ in range(classes):
        perm = rng.permutation(per_class)
        train_pos.append(sorted(int(p) for p in perm[:train]))
        query_pos.append(sorted(int(p) for p in perm[train:train + query]))
    return {"dataset": "cifar10", "rule": "class_positions", "seed": seed,
            "record_order": "data_batch_1..5 then test_batch (60,000 records)",
            "per_class": per_class, "train_per_class": train, "query_per_class": query,
            "description": "class c's images in record order are numbered 0..%d; train_positions[c] / "
                           "query_positions[c] are the training / query ones (a RandomState(seed) "
                           "permutation per class, first %d / next %d); the rest are the database"
                           % (per_class - 1, train, query),
            "train_positions": train_pos, "query_positions": query_pos}


def dump_spec(spec):
    """JSON with each position list on one line (small, diffable)."""
    lines = []
    for k, v in spec.items():
        if isinstance(v, list) and v and isinstance(v[0], list):
            inner = ",\n".join("  " + json.dumps(row, separators=(",", ":")) for row in v)
            lines.append(" %s: [\n%s\n ]" % (json.dumps(k), inner))
        else:
            lines.append(" %s: %s" % (json.dumps(k), json.dumps(v)))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_spec(spec, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, dump_spec(spec))


# ----------------------------------------------------------------------------- official files

def _find(root, *candidates):
    for rel in candidates:
        path = os.path.join(root, rel)
        if os.path.exists(path):
            return path
    raise DatasetError("%s: missing %s (the official files, unpacked)" % (root, candidates[0]))


def _read_lines(path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [line.strip() for line in fh]


def nuswide_image_path(entry):
    r"""``C:\ImageData\Flickr\actor\0001_2124494179.jpg`` -> ``actor/0001_2124494179.jpg``."""
    parts = [p for p in entry.replace("\\", "/").split("/") if p]
    if "Flickr" in parts:
        parts = parts[len(parts) - parts[::-1].index("Flickr"):]
    elif len(parts) > 2:
        parts = parts[-2:]
    return "/".join(parts)


def nuswide_list(official_dir, num_labels=21):
    """(paths, N×num_labels uint8, concept names) of the images with at least one of the
    num_labels most frequent concepts, in Imagelist.txt order."""
    concepts_file = _find(official_dir, "ConceptsList/Concepts81.txt", "Concepts81.txt")
    imagelist = _find(official_dir, "ImageList/Imagelist.txt", "Imagelist.txt")
    label_dir = _find(official_dir, "Groundtruth/AllLabels", "AllLabels")
    concepts = [c for c in _read_lines(concepts_file) if c]
    entries = [e for e in _read_lines(imagelist) if e]
    columns = []
    for c in concepts:
        path = os.path.join(label_dir, "Labels_%s.txt" % c)
        if not os.path.isfile(path):
            raise DatasetError("%s: missing file (one per concept of %s)" % (path, concepts_file))
        vals = [v for v in _read_lines(path) if v]
        if len(vals) != len(entries):
            raise DatasetError("%s: %d lines, %s has %d images" % (path, len(vals), imagelist, len(entries)))
        bad = next((k for k, v in enumerate(vals) if v not in ("0", "1")), None)
        if bad is not None:
            raise DatasetError("%s:%d: %r is not 0 or 1" % (path, bad + 1, vals[bad]))
        columns.append(np.frombuffer("".join(vals).encode(), np.uint8) - ord("0"))
    all_labels = np.stack(columns, 1).astype(np.uint8)
    counts = all_labels.sum(0)
    top = sorted(np.argsort(-counts, kind="stable")[:num_labels])   # keep concept order
    labels = all_labels[:, top]
    keep = np.flatnonzero(labels.any(1))
    return [nuswide_image_path(entries[i]) for i in keep], labels[keep], [concepts[i] for i in top]


def flickr_list(annotation_dir, num_images=25000, num_labels=38):
    """(paths, N×38 uint8, concept names) of the images with at least one label."""
    if not os.path.isdir(annotation_dir):
        raise DatasetError("%s: missing annotation folder (mirflickr25k_annotations_v080/)" % annotation_dir)
    files = sorted(f for f in os.listdir(annotation_dir) if f.endswith(".txt") and not f.lower().startswith("readme"))
    if len(files) != num_labels:
        raise DatasetError("%s: %d label files, expected %d (24 concepts + 14 _r1)"
                           % (annotation_dir, len(files), num_labels))
    labels = np.zeros((num_images, num_labels), np.uint8)
    for c, name in enumerate(files):
        path = os.path.join(annotation_dir, name)
        for lineno, line in enumerate(_read_lines(path), 1):
            if not line:
                continue
            if not line.isdigit() or not 1 <= int(line) <= num_images:
                raise DatasetError("%s:%d: %r is not an image number 1..%d" % (path, lineno, line, num_images))
            labels[int(line) - 1, c] = 1
    keep = np.flatnonzero(labels.any(1))
    return ["im%d.jpg" % (i + 1) for i in keep], labels[keep], [f[:-4] for f in files]


def write_list(path, paths, labels):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, "".join("%s %s\n" % (p, " ".join(map(str, row))) for p, row in zip(paths, labels)))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m dhn.make_splits", description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", choices=["cifar10", "specs", "nuswide21", "flickr25k"])
    ap.add_argument("--seed", type=int, default=0, help="cifar10: the seed of the positions")
    ap.add_argument("--official", help="nuswide21: the NUS-WIDE folder; flickr25k: the annotations folder")
    ap.add_argument("--list-out", help="list file to write (default data/<dataset>/download/<dataset>.txt)")
    ap.add_argument("--splits-out", help="folder for <split>.txt (default data/<dataset>/download/splits/)")
    args = ap.parse_args(argv)
    try:
        if args.dataset == "cifar10":
            path = os.path.join(dataset_dir("cifar10"), "split.json")
            write_spec(cifar10_positions(args.seed), path)
            print("wrote %s" % path)
            return 0
        if args.dataset == "specs":
            for name, spec in SPECS.items():
                path = os.path.join(dataset_dir(name), "split.json")
                write_spec(spec, path)
                print("wrote %s" % path)
            return 0
        if not args.official:
            raise DatasetError("--official DIR is needed for %s" % args.dataset)
        if args.dataset == "nuswide21":
            paths, labels, concepts = nuswide_list(args.official, NUM_LABELS["nuswide21"])
        else:
            paths, labels, concepts = flickr_list(args.official)
        download = os.path.join(dataset_dir(args.dataset), "download")
        list_out = args.list_out or os.path.join(download, args.dataset + ".txt")
        splits_out = args.splits_out or os.path.join(download, "splits")
        write_list(list_out, paths, labels)
        with open(os.path.splitext(list_out)[0] + ".concepts.txt", "w") as fh:
            fh.write("\n".join(concepts) + "\n")
        split = split_from_spec(load_split_spec(args.dataset), labels)
        write_split_files(split, splits_out)
        print("wrote %s: %d images, %d labels (%s)" % (list_out, len(paths), len(concepts), ", ".join(concepts)))
        print("  sha256 %s" % file_digest(list_out, "sha256"))
        for name, idx in split.items():
            f = os.path.join(splits_out, name + ".txt")
            print("wrote %s: %d  sha256 %s" % (f, len(idx), file_digest(f, "sha256")))
    except DatasetError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
