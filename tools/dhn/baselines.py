"""Baselines on a backbone's untrained features (dhn.features): what DHN's codes must beat.

    python -m dhn.baselines FEATURES_DIR --bits 12,24,32,48 [--query query --database database]
                            [--seeds 0,1,2] [--out runs/baselines-<features>/]

- LSH: sign of a seeded random Gaussian projection of the raw features (SimHash,
  ``RandomState(seed).standard_normal((D, K))``), ranked by Hamming distance.
- cosine: the real-valued features, L2-normalised, ranked by inner product (K-independent).
- linear probe: what a supervised linear head can get out of the same features. A softmax
  classifier (independent sigmoids for multi-label data) on the standardised training features,
  plain minibatch SGD (``linear_probe``); query and database are ranked by the inner product of
  their predicted class posteriors (K-independent, real-valued). The reference for the learned
  codes: a hash head on these features that stays far below it is held back by its learning.
Both are scored by dhn.metrics with the same conventions as every run (ties in database order,
MAP over the whole database unless R is given) and written to baselines.json.
"""
import argparse
import json
import os
import sys

import numpy as np

from dhn import metrics, paths, split_folder
from dhn.atomic import write_atomic
from dhn.datasets import DatasetError


def read_features(split_dir):
    """N×D float32 features of a features split (dhn.features: stored outputs, one view), in record order."""
    return split_folder.first_views(split_dir)


def lsh_codes(features, bits, seed):
    """±1 codes: sign of a RandomState(seed) Gaussian projection (z ≥ 0 → +1)."""
    proj = np.random.RandomState(seed).standard_normal((features.shape[1], bits))
    return metrics.binarize(features.astype(np.float64) @ proj)


def unit_rows(features):
    f = features.astype(np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


# The probe's SGD (numpy): 200 epochs of batch 64 as in the measurement that motivated it (issue
# 21); lr and weight decay are ordinary values for a standardised linear model (not tuned on queries).
PROBE = dict(epochs=200, batch=64, lr=0.05, weight_decay=1e-4, seed=0)


def _softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def linear_probe(train_features, train_labels, epochs=PROBE["epochs"], batch=PROBE["batch"], lr=PROBE["lr"],
                 weight_decay=PROBE["weight_decay"], seed=PROBE["seed"]):
    """A linear classifier on standardised features; returns posteriors(features) -> N×C.

    Single-label data (one label per row): softmax + cross-entropy; multi-label: one sigmoid per
    label + binary cross-entropy. Standardisation uses the training features' mean and s.d., as
    the hash head's BatchNorm does. Minibatch SGD, RandomState(seed) epoch orders: deterministic."""
    x = np.asarray(train_features, np.float64)
    y = np.asarray(train_labels, np.float64).reshape(len(x), -1)
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    x = (x - mu) / sd
    multi = bool((y.sum(axis=1) != 1).any())
    act = _sigmoid if multi else _softmax
    w, b = np.zeros((x.shape[1], y.shape[1])), np.zeros(y.shape[1])
    rng = np.random.RandomState(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            i = order[start:start + batch]
            g = (act(x[i] @ w + b) - y[i]) / len(i)      # both losses have this gradient in the logits
            w -= lr * (x[i].T @ g + weight_decay * w)
            b -= lr * g.sum(axis=0)
    return lambda f: act(((np.asarray(f, np.float64) - mu) / sd) @ w + b)


def run(features_dir, bits=(12, 24, 32, 48), seeds=(0, 1, 2), query="query", database="database", R=None,
        train="train"):
    """{"lsh": {bits: [MAP per seed]}, "cosine": MAP, "probe": MAP, ...} on the features of query vs
    database (the probe trained on the ``train`` split's)."""
    fq, fd = read_features(os.path.join(features_dir, query)), read_features(os.path.join(features_dir, database))
    lq = split_folder.read_split_labels(os.path.join(features_dir, query))
    ld = split_folder.read_split_labels(os.path.join(features_dir, database))
    ft, lt = read_features(os.path.join(features_dir, train)), split_folder.read_split_labels(os.path.join(features_dir, train))
    out = {"dataset": split_folder.check_split(os.path.join(features_dir, query))["dataset"],
           "features": os.path.abspath(features_dir), "query": query, "database": database,
           "n_query": len(fq), "n_database": len(fd), "R": R, "seeds": list(seeds), "lsh": {}}
    for k in bits:
        out["lsh"][str(k)] = [metrics.map_at_r(lsh_codes(fq, k, s), lq, lsh_codes(fd, k, s), ld, R=R) for s in seeds]
    out["cosine"] = metrics.map_at_r(unit_rows(fq), lq, unit_rows(fd), ld, R=R, ranking="inner_product")
    posteriors = linear_probe(ft, lt)
    pq = posteriors(fq)
    out["probe"] = metrics.map_at_r(pq, lq, posteriors(fd), ld, R=R, ranking="inner_product")
    single = lq.sum(axis=1) == 1
    out["probe_query_accuracy"] = float((lq[single].argmax(axis=1) == pq[single].argmax(axis=1)).mean()) \
        if single.any() else None
    out["probe_setting"] = dict(PROBE, train=train, n_train=int(len(ft)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("features_dir", help="data/<dataset>/features/<net>-<layer>")
    ap.add_argument("--bits", default="12,24,32,48")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--query", default="query")
    ap.add_argument("--database", default="database")
    ap.add_argument("--R", type=int)
    ap.add_argument("--out", help="folder for baselines.json (default runs/baselines-<features>-<database>)")
    args = ap.parse_args(argv)
    try:
        res = run(args.features_dir, tuple(int(b) for b in args.bits.split(",")),
                  tuple(int(s) for s in args.seeds.split(",")), args.query, args.database, args.R)
    except (DatasetError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    root = paths.root()
    out = args.out or os.path.join(root, "runs", "baselines-%s-%s" % (os.path.basename(os.path.normpath(args.features_dir)),
                                                                       args.database))
    os.makedirs(out, exist_ok=True)
    write_atomic(os.path.join(out, "baselines.json"), json.dumps(res, indent=1))
    for k, maps in res["lsh"].items():
        print("LSH %s bits: MAP %.4f ± %.4f (%d seeds)" % (k, np.mean(maps), np.std(maps, ddof=1) if len(maps) > 1 else 0,
                                                           len(maps)))
    print("cosine on the features: MAP %.4f   (%d queries × %d database)" % (res["cosine"], res["n_query"], res["n_database"]))
    print("linear probe (softmax on the standardised %s features, posteriors ranked by inner product): MAP %.4f%s -> %s"
          % (res["probe_setting"]["train"], res["probe"], "" if res["probe_query_accuracy"] is None else
             ", query accuracy %.3f" % res["probe_query_accuracy"], os.path.join(out, "baselines.json")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
