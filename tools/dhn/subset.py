"""A stated, seeded, class-balanced subset of a converted split (for a database too slow to encode).

    python -m dhn.subset data/cifar10/lmdb/database --per-class 540 [--seed 0] [--name database_5400]

For each class c in label order, ``RandomState(seed)`` draws ``per-class`` of the split's records
carrying c (convert.class_balanced_positions); the records are copied, in the split's order, to a
sibling split folder (default name ``<split>_<count>``) with its own records.txt and manifest
(``subset_of``, the positions' sha256). Anyone can rebuild the same subset from this line.
"""
import argparse
import os
import sys

from . import convert, split_folder
from .datasets import DatasetError


def make_subset(split_dir, per_class, seed=0, name=None):
    labels = split_folder.read_split_labels(split_dir)
    counts = labels.sum(0)
    if per_class < 1 or per_class > counts.min():
        raise DatasetError("%s: --per-class %d: give 1 to %d (class %d has %d records, the fewest)"
                           % (split_dir, per_class, counts.min(), counts.argmin(), counts.min()))
    positions = convert.class_balanced_positions(labels, per_class, seed)
    name = name or "%s_%d" % (os.path.basename(os.path.normpath(split_dir)), len(positions))
    out = os.path.join(os.path.dirname(os.path.normpath(split_dir)), name)
    return convert.subset_split(split_dir, out, positions, name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("split", help="a converted split folder, e.g. data/cifar10/lmdb/database")
    ap.add_argument("--per-class", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name")
    args = ap.parse_args(argv)
    try:
        out = make_subset(args.split, args.per_class, args.seed, args.name)
    except (DatasetError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("dhn.subset: %d records -> %s" % (split_folder.check_split(out)["count"], out), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
