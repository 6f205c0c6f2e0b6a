"""How well a stored-mode run fits its training images against how it ranks unseen ones: MAP of
the training split's codes against themselves, of the test queries against the training split,
and (from its results.json) of the queries against the database, the same ranked by the inner
product of the real-valued codes (DHN-B of the run: what sign() costs), with the mean |z| of the
training and query codes. The training split is encoded from its stored outputs (the centre crop,
blobs.encode_blobs); each training image retrieves itself too, which lifts its MAP a little.

    . tools/env.sh && python tools/lab/fit_gap.py RUN [RUN ...]"""
import json
import os
import sys

import numpy as np

from dhn import blobs, evaluate, run_folder, split_folder


def fit_gap(run):
    config = run_folder.read_config(run)
    train = os.path.join(config["data_dir"], "train")
    z = blobs.encode_blobs(os.path.join(run, "deploy.prototxt"), run_folder.final_model(run), train, progress=False)
    labels = split_folder.read_split_labels(train)
    zq = np.load(os.path.join(run, "codes", "query.npy"))
    lq = split_folder.read_split_labels(os.path.join(config["data_dir"], "query"))
    tested = json.load(open(os.path.join(run, "results.json")))["map"]
    zd = np.load(os.path.join(run, "codes", "database.npy"))
    ld = split_folder.read_split_labels(os.path.join(config["data_dir"], "database"))
    return {"run": os.path.basename(os.path.normpath(run)),
            "train_vs_train": evaluate.evaluate_codes(z, labels, z, labels, R=None)["map"],
            "query_vs_train": evaluate.evaluate_codes(zq, lq, z, labels, R=None)["map"],
            "query_vs_database": tested,
            "query_vs_database_real": evaluate.evaluate_codes(zq, lq, zd, ld, R=None, binary=False)["map"],
            "mean_abs_z_train": float(np.abs(z).mean()), "mean_abs_z_query": float(np.abs(zq).mean())}


if __name__ == "__main__":
    for r in sys.argv[1:]:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in fit_gap(r).items()}))
