"""`make search`: use a trained run — encode image files and rank the run's database by Hamming distance.

    python -m dhn.search --run runs/NAME IMAGE [IMAGE ...] [--top 20] [--json] [--radius R | --nprobe P]
    make search RUN=runs/NAME IMAGE=path.jpg [TOP=20] [RADIUS=R | NPROBE=P]

Each image is read (any format OpenCV decodes), resized to the dataset's size (cv2.INTER_LINEAR,
as the converter does), centre-cropped, mean-subtracted and scaled exactly as encoding does
(dhn.encode, Caffe's TEST phase), and forwarded through the run's deploy net with its trained
weights. A frozen-feature run is searched with its backbone and its trained head joined into one
net. The run's database codes (``codes/<database>.npy``, written by its evaluation) are ranked by
Hamming distance of the sign bits, ties in database order (the metrics' convention); a DHN-B run
by the inner product of the real codes. Each hit prints its rank, database row, the source record
it came from (the split's records.txt: the CIFAR-10 record, or the list file's path), the distance
and the label names. ``--radius R`` answers with a hash-table lookup instead: every database item
within Hamming distance R (FAISS IndexBinaryHash). ``--nprobe P`` searches an inverted file
(FAISS IndexBinaryIVF, P of its lists): approximate, for databases too large to scan.

The index (dhn.hamming_index.HammingIndex) scans with our C kernel (exact, ties in database order)
and looks up with FAISS; its FAISS indexes are kept beside the codes (``codes/<database>.faissindex``,
.hash, .ivf) and reused until the codes are written again.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from dhn import encode, metrics, netgen, run_folder, split_folder
from dhn.datasets import read_json
from dhn.hamming_index import HammingIndex, check_radius


class SearchError(ValueError):
    """One line: the file and the fix."""


# ----------------------------------------------------------------------------- a run

def _run_files(run_dir):
    """config, results and the paths search needs from a finished run; SearchError otherwise."""
    for name in ("config.json", "results.json"):
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise SearchError("%s: no %s: not a finished run; train and evaluate it first (make train ...)"
                              % (run_dir, name))
    config = run_folder.read_config(run_dir)
    results = read_json(os.path.join(run_dir, "results.json"), "evaluate the run again (make train ... with --force)")
    database = results.get("database", "database")
    codes = os.path.join(run_dir, "codes", database + ".npy")
    if not os.path.isfile(codes):
        raise SearchError("%s: the run has no database codes: evaluate it again (make train ... with --force)" % codes)
    try:
        weights = run_folder.final_model(run_dir)
    except run_folder.TrainError as e:
        raise SearchError(str(e)) from None
    return config, results, database, codes, weights


def read_image(path, size):
    import cv2
    if not os.path.isfile(path):
        raise SearchError("%s: no such image file" % path)
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise SearchError("%s does not decode as an image (PNG, JPEG, ... that OpenCV reads): give another file" % path)
    if bgr.shape[:2] != (size, size):
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_LINEAR)
    return bgr.transpose(2, 0, 1)


def encode_images(paths, deploy, model, crop, mean, scale, size):
    """float32 codes (len(paths)×K) of image files, prepared as dhn.encode prepares LMDB images."""
    import caffe
    os.environ.setdefault("GLOG_minloglevel", "2")
    images = [read_image(p, size) for p in paths]
    caffe.set_mode_cpu()
    try:
        net = encode.load_net(deploy, model, "the run's deploy net and weights do not match; evaluate the run again")
    except ValueError as e:
        raise SearchError(str(e)) from None
    data = net.blobs[net.inputs[0]]
    data.reshape(len(images), 3, crop, crop)
    batch = np.stack([encode.centre_crop(img, crop).astype(np.float32) for img in images])
    batch -= np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    if scale != 1:
        batch *= scale
    data.data[...] = batch
    return np.array(net.forward()["code"], np.float32).reshape(len(images), -1)


def describe(data_dir, database, rows):
    """[(source record, label names)] of database rows: the record from the split's records.txt,
    a list dataset's file path, and the class/concept names the manifest knows."""
    split = os.path.join(data_dir, database)
    manifest = split_folder.check_split(split)
    src = manifest.get("source_split") or manifest.get("subset_of")
    records = np.loadtxt(os.path.join(split, "records.txt"), dtype=np.int64, ndmin=1)
    labels = split_folder.read_split_labels(split)
    names = (manifest.get("options") or {}).get("class_names")
    if names is None and src and os.path.isfile(os.path.join(src, "manifest.json")):
        names = (split_folder.check_split(src).get("options") or {}).get("class_names")
    list_paths = None
    lst = (manifest.get("sources") or {}).get("list")
    if isinstance(lst, dict) and os.path.isfile(lst.get("path", "")):
        list_paths = [line.split()[0] for line in open(lst["path"]) if line.strip()]
    out = []
    for r in rows:
        rec = int(records[r])
        where = list_paths[rec] if list_paths else "%s record %d" % (manifest["dataset"], rec)
        labs = [names[c] if names and c < len(names) else str(c) for c in np.flatnonzero(labels[r])]
        out.append((where, labs))
    return out


def search_run(run_dir, images, top=20, radius=None, nprobe=None):
    """[{image, ms, hits: [{rank, row, record, distance, labels}]}] for image files against a run."""
    config, results, database, codes_path, weights = _run_files(run_dir)
    ident = config["identity"]
    real = ident["variant"] == "dhn-b"
    if radius is not None and nprobe is not None:
        raise SearchError("--radius and --nprobe: give one (a radius lookup, or an inverted-file search)")
    if nprobe is not None and nprobe < 1:
        raise SearchError("--nprobe %d: the inverted-file lists searched are 1 or more" % nprobe)
    if radius is not None and not real:
        check_radius(ident["bits"], radius)
    size = netgen.BACKBONES[netgen.DATASETS[ident["dataset"]]["backbone"]]["size"]
    deploy, model, crop, mean, scale = run_folder.image_net(run_dir)
    t0 = time.perf_counter()
    z = encode_images(images, deploy, model, crop, mean, scale, size)
    encode_ms = (time.perf_counter() - t0) * 1e3 / len(images)
    out = []
    if real:   # DHN-B: inner product of the real codes, ties in database order
        db = np.load(codes_path)
        t0 = time.perf_counter()
        ranked = list(zip(*metrics.rank_inner_product(z, db, top)))
    else:
        index = HammingIndex.open(codes_path)    # its FAISS indexes built (and kept) on first use
        index.faiss("hash" if radius is not None else "ivf" if nprobe is not None else "flat")   # before the
        # clock starts: search_ms times the search, not a first build of the index
        t0 = time.perf_counter()
        if radius is not None:
            ranked = [(i[:top], d[:top]) for i, d in index.lookup(z, radius)]
        elif nprobe is not None:
            ranked = index.approximate(z, min(top, index.n), nprobe)
        else:
            idx, dist = index.scan(z, min(top, index.n))
            ranked = list(zip(idx, dist))
    search_ms = (time.perf_counter() - t0) * 1e3 / len(images)
    for path, (rows, dist) in zip(images, ranked):
        info = describe(config["data_dir"], database, rows)
        out.append({"image": path, "encode_ms": round(encode_ms, 1), "search_ms": round(search_ms, 3),
                    "ranking": "inner product" if real else ("hash lookup, radius %d" % radius if radius is not None
                                                              else "IVF, nprobe %d" % nprobe if nprobe is not None
                                                              else "Hamming"),
                    "hits": [{"rank": k + 1, "row": int(r), "record": w, "distance": float(d) if real else int(d),
                              "labels": labs} for k, (r, d, (w, labs)) in enumerate(zip(rows, dist, info))]})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="a finished run folder (runs/NAME)")
    ap.add_argument("images", nargs="+", help="image files")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--radius", type=int, help="hash-table lookup within this Hamming radius instead of a scan")
    ap.add_argument("--nprobe", type=int, help="approximate: search this many lists of an inverted file (FAISS IVF)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    try:
        res = search_run(args.run, args.images, args.top, args.radius, args.nprobe)
    except (SearchError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    for r in res:
        print("%s  (encode %.0f ms, %s search %.2f ms)" % (r["image"], r["encode_ms"], r["ranking"], r["search_ms"]))
        print("  rank  row      distance  record                          labels")
        for h in r["hits"]:
            print("  %4d  %-7d  %-8s  %-30s  %s" % (h["rank"], h["row"], ("%.3f" % h["distance"]) if
                                                   isinstance(h["distance"], float) else h["distance"], h["record"],
                                                   ", ".join(h["labels"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
