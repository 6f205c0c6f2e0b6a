"""Score codes and write a run's results: results.json, pr_curve.png, precision_at_n.png; and
evaluate a trained run (evaluate_run: encode its query and database, score, write, gallery).

    python -m dhn.evaluate --query-codes Q.npy --query-labels QL.npy --db-codes D.npy \\
        --db-labels DL.npy --R 5000 --out runs/NAME [--real] [--dataset D --bits K --variant V]

Codes are the real-valued net outputs z (N×K, from dhn.encode). DHN ranks by Hamming distance
of sign(z) (z ≥ 0 → +1); --real (DHN-B) ranks by the inner product of z itself. The metric
conventions (ties in database order, AP over the relevant items within the top R, queries
without relevant items count 0) are written down in dhn/metrics.py.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from dhn import blobs, encode, gallery, metrics, run_folder, runlock, split_folder
from dhn.atomic import write_atomic


def evaluate_codes(query_z, query_labels, db_z, db_labels, R, binary=True, ns=metrics.DEFAULT_NS):
    """All metrics as a JSON-ready dict (see metrics.evaluate) plus "precision_hamming2".
    R=None: the whole database. binary=False is DHN-B (inner product of the real codes).
    Precision@N cut-offs beyond the database size are left out."""
    if binary:
        qc, dc, ranking = metrics.binarize(query_z), metrics.binarize(db_z), "hamming"
    else:
        qc, dc, ranking = np.asarray(query_z, np.float32), np.asarray(db_z, np.float32), "inner_product"
    n_db = len(db_z)
    t0 = time.perf_counter()
    out = metrics.evaluate(qc, query_labels, dc, db_labels, R=R, ranking=ranking, radius=2,
                           ns=[n for n in ns if n <= n_db] or [n_db])
    out["precision_hamming2"] = out.pop("precision_radius")
    out.pop("radius")
    out["eval_seconds"] = round(time.perf_counter() - t0, 3)
    return out


def write_results(run_dir, results, meta, name="results.json"):
    """run_dir/<name> (meta first, then the metrics; name: run_folder.results_name) and the two plots
    (pr_curve<suffix>.png, precision_at_n<suffix>.png), each atomically, holding the folder's lock
    (runlock: the temporary names are fixed)."""
    doc = dict(meta)
    doc.update(results)

    with runlock.hold(run_dir):
        write_atomic(os.path.join(run_dir, name), json.dumps(doc, indent=1) + "\n")
        _plots(run_dir, doc, run_folder.results_suffix(name))
    return doc


def _plots(run_dir, doc, suffix=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = " ".join(str(doc[k]) for k in ("dataset", "variant", "bits") if k in doc)
    title = (title + " bits" if "bits" in doc else title) or os.path.basename(os.path.abspath(run_dir))

    pr = doc["pr_curve"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(pr["recall"], pr["precision"], marker=".")
    for r in (0, 2, len(pr["radius"]) // 2):   # a few radii named along the curve
        if r < len(pr["radius"]):
            ax.annotate("r=%d" % r, (pr["recall"][r], pr["precision"][r]), fontsize=7)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("%s: PR over Hamming radius 0..%d" % (title, pr["radius"][-1]), fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(os.path.join(run_dir, "pr_curve%s.png" % suffix), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)

    pn = doc["precision_at_n"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(pn["n"], pn["precision"], marker="o")
    ax.set_xlabel("number of top returned items N")
    ax.set_ylabel("precision@N")
    ax.set_ylim(0, 1.02)
    ax.set_title("%s: precision@N (MAP@%s = %.4f)" % (title, doc.get("R"), doc["map"]), fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(os.path.join(run_dir, "precision_at_n%s.png" % suffix), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


# ----------------------------------------------------------------------------- a trained run

# MAP@R depth of each dataset's evaluation (the paper's; None: the whole database)
DATASET_R = {"cifar10": None, "nuswide21": 5000, "flickr25k": None, "demo": None}


def encode_split(run_dir, weights, data_dir, split, gpu):
    """The run's codes of one split (codes/<split>.npy, written holding the codes folder's lock)."""
    crop, mean, scale = run_folder.data_transform(os.path.join(run_dir, "train.prototxt"))
    deploy = os.path.join(run_dir, "deploy.prototxt")
    with runlock.hold(os.path.join(run_dir, "codes")):    # as `dhn.encode --out` into it takes it
        try:
            if crop is None:     # a frozen-feature or stored-mode run: its stored outputs (dhn.blobs)
                z = blobs.encode_blobs(deploy, weights, os.path.join(data_dir, split), gpu=gpu)
            else:
                z = encode.encode(deploy, weights, os.path.join(data_dir, split, "images"),
                                  crop=crop, mean_bgr=mean, scale=scale, gpu=gpu)
        except (ValueError, split_folder.DatasetError) as e:   # bad input (a damaged LMDB, weights that do not fit): one line
            raise run_folder.TrainError(str(e)) from None
        encode.save_codes(os.path.join(run_dir, "codes", split), z)
    return z


def evaluate_run(run_dir, dataset, bits, variant, weights, data_dir, gpu=None, query="query",
                 database="database", R=None, meta=None):
    """Encode query and database with the trained net, score, write the results file of that query
    and database (run_folder.results_name), its plots and gallery."""
    zq = encode_split(run_dir, weights, data_dir, query, gpu)
    zd = encode_split(run_dir, weights, data_dir, database, gpu)
    lq = split_folder.read_split_labels(os.path.join(data_dir, query))
    ld = split_folder.read_split_labels(os.path.join(data_dir, database))
    results = evaluate_codes(zq, lq, zd, ld, R=R, binary=(variant != "dhn-b"))
    name = run_folder.results_name(query, database)
    doc = write_results(run_dir, results, dict(meta or {}, dataset=dataset, bits=bits, variant=variant,
                                               weights=os.path.relpath(weights, run_dir)), name)
    gallery.write_gallery(run_dir, results=name)     # what the codes retrieve, for a seeded sample of queries
    return doc


def inner_product_run(dhn_run, out_run, query="query", database="database"):
    """DHN-B of a trained DHN run without training it again (DHN-B is DHN's net, retrieved without
    sign()): out_run gets the run's net (prototxts, final caffemodel linked), its codes and config
    with variant dhn-b, and results ranked by the inner product of the real-valued codes."""
    import shutil
    name = run_folder.results_name(query, database)
    src = json.load(open(os.path.join(dhn_run, name)))
    config = run_folder.read_config(dhn_run)
    final = run_folder.final_model(dhn_run)
    os.makedirs(os.path.join(out_run, "snapshots"), exist_ok=True)
    os.makedirs(os.path.join(out_run, "codes"), exist_ok=True)
    for f in ("train.prototxt", "deploy.prototxt", "solver.prototxt"):
        shutil.copyfile(os.path.join(dhn_run, f), os.path.join(out_run, f))
    link = os.path.join(out_run, "snapshots", os.path.basename(final))
    if not os.path.exists(link):
        os.link(final, link)
    z = {}
    for split in (query, database):
        z[split] = np.load(os.path.join(dhn_run, "codes", split + ".npy"))
        encode.save_codes(os.path.join(out_run, "codes", split), z[split])
    config = dict(config, identity=dict(config["identity"], variant="dhn-b"), codes_of=os.path.abspath(dhn_run))
    write_atomic(os.path.join(out_run, "config.json"), json.dumps(config, indent=1))
    data_dir = config["data_dir"]
    lq = split_folder.read_split_labels(os.path.join(data_dir, query))
    ld = split_folder.read_split_labels(os.path.join(data_dir, database))
    results = evaluate_codes(z[query], lq, z[database], ld, R=src.get("R"), binary=False)
    keep = {k: v for k, v in src.items() if k not in results and k != "eval_seconds"}
    doc = write_results(out_run, results, dict(keep, variant="dhn-b", run=os.path.basename(os.path.abspath(out_run)),
                                               codes_of=os.path.basename(os.path.abspath(dhn_run))), name)
    gallery.write_gallery(out_run, results=name)
    return doc


def _load(path, what):
    """A .npy array; ValueError (one line naming the file) for anything else."""
    fix = "give the .npy file of the %s (dhn.encode writes PREFIX.npy)" % what
    if not os.path.exists(path):
        raise ValueError("%s: no such file: %s" % (path, fix))
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        why = "a folder" if os.path.isdir(path) else "not a NumPy .npy file (%s)" % str(e).split("\n")[0]
        raise ValueError("%s: %s: %s" % (path, why, fix)) from None


def parse_R(text):
    """--R: a positive whole number, or 'all' (None: the whole database)."""
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError("--R %s: give the MAP depth as a positive whole number (e.g. 5000), or 'all'" % text)
    return int(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--query-codes", required=True, help="N×K float .npy (dhn.encode output)")
    ap.add_argument("--query-labels", required=True, help="N×C 0/1 .npy")
    ap.add_argument("--db-codes", required=True)
    ap.add_argument("--db-labels", required=True)
    ap.add_argument("--R", default="all", help="MAP@R depth, or 'all' for the whole database")
    ap.add_argument("--out", required=True, help="run folder for results.json and the plots")
    ap.add_argument("--real", action="store_true", help="DHN-B: rank by inner product of real codes")
    ap.add_argument("--dataset")
    ap.add_argument("--bits", type=int)
    ap.add_argument("--variant", help="default: dhn, or dhn-b with --real")
    args = ap.parse_args(argv)
    try:
        R = parse_R(args.R)
        zq, zd = _load(args.query_codes, "query codes"), _load(args.db_codes, "database codes")
        lq, ld = _load(args.query_labels, "query labels"), _load(args.db_labels, "database labels")
        results = evaluate_codes(zq, lq, zd, ld, R=R, binary=not args.real)
    except ValueError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    meta = {"variant": args.variant or ("dhn-b" if args.real else "dhn"), "bits": args.bits or zq.shape[1]}
    if args.dataset:
        meta["dataset"] = args.dataset
    try:
        write_results(args.out, results, meta)
    except runlock.Busy as e:
        print("dhn.evaluate: %s" % e, file=sys.stderr)
        raise SystemExit(2)
    print("MAP@%s = %.4f  precision(H<=2) = %.4f  (%d queries, %d database, %s)  -> %s"
          % (results["R"], results["map"], results["precision_hamming2"], results["n_query"],
             results["n_database"], results["ranking"], os.path.join(args.out, "results.json")),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
