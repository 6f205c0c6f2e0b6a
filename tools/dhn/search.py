"""`make search`: use a trained run — encode image files and rank the run's database by Hamming distance.

    python -m dhn.search --run runs/NAME IMAGE [IMAGE ...] [--top 20] [--json] [--radius R]
    make search RUN=runs/NAME IMAGE=path.jpg [TOP=20]

Each image is read (any format OpenCV decodes), resized to the dataset's size (cv2.INTER_LINEAR,
as the converter does), centre-cropped, mean-subtracted and scaled exactly as encoding does
(dhn.encode, Caffe's TEST phase), and forwarded through the run's deploy net with its trained
weights. A frozen-feature run is searched with its backbone and its trained head joined into one
net. The run's database codes (``codes/<database>.npy``, written by its evaluation) are ranked by
Hamming distance of the sign bits, ties in database order (the metrics' convention); a DHN-B run
by the inner product of the real codes. Each hit prints its rank, database row, the source record
it came from (the split's records.txt: the CIFAR-10 record, or the list file's path), the distance
and the label names. ``--radius R`` answers with a hash-table lookup instead: every database item
within Hamming distance R, from buckets of identical codes probed at distance 0..R.

The index (HammingIndex) keeps the codes packed in 64-bit words: a linear scan is one popcount
pass per query (the C kernel of dhn.hamming_ap; numpy where no compiler exists).
"""
import argparse
import itertools
import json
import math
import os
import sys
import time

import numpy as np

from dhn import hamming_ap, metrics
from dhn.datasets import read_json

# A radius-r lookup probes every code within distance r of the query: sum of C(K, i), i = 0..r
# (64 bits: 2,081 at r = 2, 43,745 at r = 3, 679,121 at r = 4), each a table lookup, and keeps
# that many masks in memory. Above this many probes a query is refused: the scan (no --radius,
# a larger --top) returns the same items within r at a cost that does not grow with r.
MAX_PROBES = 50000


class SearchError(ValueError):
    """One line: the file and the fix."""


def probes(bits, radius):
    """Codes probed by a radius lookup at this code length."""
    return sum(math.comb(bits, r) for r in range(radius + 1))


def check_radius(bits, radius):
    if radius < 0:
        raise SearchError("--radius %d: a Hamming radius is 0 or more" % radius)
    if probes(bits, radius) > MAX_PROBES:
        largest = max(r for r in range(bits + 1) if probes(bits, r) <= MAX_PROBES)
        raise SearchError("--radius %d at %d bits probes %s codes a query, above the limit of %s (the probe table "
                          "grows as C(%d, r)): use a radius of at most %d, or the scan (no RADIUS=, a larger TOP=)"
                          % (radius, bits, format(probes(bits, radius), ","), format(MAX_PROBES, ","), bits, largest))


# ----------------------------------------------------------------------------- the index

class HammingIndex:
    """Packed sign codes of a database, searched by linear scan or by hash buckets."""

    def __init__(self, codes):
        codes = np.asarray(codes)
        if codes.ndim != 2 or len(codes) == 0:
            raise ValueError("an index needs N×K codes, got shape %s" % (codes.shape,))
        self.bits = codes.shape[1]
        self.words = hamming_ap._words(codes >= 0 if codes.dtype.kind == "f" else codes > 0)
        self.n = len(self.words)
        self._buckets = None

    def pack(self, queries):
        queries = np.asarray(queries)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.shape[1] != self.bits:
            raise ValueError("queries have %d bits, the index %d" % (queries.shape[1], self.bits))
        return hamming_ap._words(queries >= 0 if queries.dtype.kind == "f" else queries > 0)

    def scan(self, queries, top, workers=2):
        """(idx, dist), each nq×top: the Hamming ranking's top, ties in database order."""
        q = self.pack(queries)
        if hamming_ap.available():
            return hamming_ap.top_k(q, self.words, self.bits, top, workers)
        return self.scan_numpy(q, top)

    def scan_numpy(self, packed_queries, top):
        """The same ranking with numpy only: popcount distances, then a stable sort."""
        nb = self._nbytes()
        d = metrics.hamming_distances(packed_queries.view(np.uint8)[:, :nb], self.words.view(np.uint8)[:, :nb])
        order = np.argsort(d, axis=1, kind="stable")[:, :top]
        return order.astype(np.int64), np.take_along_axis(d, order, axis=1).astype(np.int32)

    def _nbytes(self):
        return (self.bits + 7) // 8

    # hash buckets: identical codes share a bucket; a lookup probes every code within radius r
    def _key(self, row):
        return row[0] if len(row) == 1 else tuple(row)   # ≤ 64 bits: a plain int

    def buckets(self):
        if self._buckets is None:
            keys = [self._key(row) for row in self.words.tolist()]
            table = {}
            for i, key in enumerate(keys):
                table.setdefault(key, []).append(i)
            self._buckets = {k: np.asarray(v, np.int64) for k, v in table.items()}
        return self._buckets

    def _flips(self, radius):
        """Per radius, the XOR masks (as word tuples) of every set of that many bit positions."""
        masks = []
        for r in range(radius + 1):
            level = []
            for pos in itertools.combinations(range(self.bits), r):
                m = [0] * self.words.shape[1]
                for p in pos:   # bit p of the code: byte p // 8 (big-endian within the byte, as np.packbits)
                    byte, within = divmod(p, 8)
                    m[byte // 8] |= 1 << ((byte % 8) * 8 + 7 - within)
                level.append(self._key(m))
            masks.append(level)
        return masks

    def lookup(self, queries, radius=2):
        """For each query, (idx, dist) of every database item within Hamming distance ``radius``,
        ranked as the scan ranks them (distance, then database order). At most MAX_PROBES probes."""
        check_radius(self.bits, radius)
        table = self.buckets()
        if getattr(self, "_masks_r", None) != radius:
            self._masks, self._masks_r = self._flips(radius), radius
        out = []
        single = self.words.shape[1] == 1
        for q in self.pack(queries).tolist():
            hits, dists = [], []
            q = q[0] if single else q
            for r, level in enumerate(self._masks):
                for m in level:
                    found = table.get(q ^ m if single else tuple(a ^ b for a, b in zip(q, m)))
                    if found is not None:
                        hits.append(found)
                        dists.append(np.full(len(found), r, np.int32))
            if hits:
                idx, dist = np.concatenate(hits), np.concatenate(dists)
                order = np.lexsort((idx, dist))
                out.append((idx[order], dist[order]))
            else:
                out.append((np.zeros(0, np.int64), np.zeros(0, np.int32)))
        return out


# ----------------------------------------------------------------------------- a run

def _run_files(run_dir):
    """config, results and the paths search needs from a finished run; SearchError otherwise."""
    from dhn import train
    for name in ("config.json", "results.json"):
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise SearchError("%s: no %s: not a finished run; train and evaluate it first (make train ...)"
                              % (run_dir, name))
    config = read_json(os.path.join(run_dir, "config.json"),
                       "the run's configuration is lost: train it again (make train ... FORCE_NEW=1)")
    results = read_json(os.path.join(run_dir, "results.json"), "evaluate the run again (make train ... with --force)")
    database = results.get("database", "database")
    codes = os.path.join(run_dir, "codes", database + ".npy")
    if not os.path.isfile(codes):
        raise SearchError("%s: the run has no database codes: evaluate it again (make train ... with --force)" % codes)
    try:
        weights = train.final_model(run_dir)
    except train.TrainError as e:
        raise SearchError(str(e)) from None
    return config, results, database, codes, weights


def image_net(run_dir, config, weights):
    """(deploy prototxt, caffemodel, crop, mean, scale) that take an image: the run's own for a
    fine-tuned run; for a frozen-feature run its backbone joined to its trained head."""
    from dhn import netgen, train
    crop, mean, scale = train.data_transform(os.path.join(run_dir, "train.prototxt"))
    if crop:
        return os.path.join(run_dir, "deploy.prototxt"), weights, crop, mean, scale
    ident = config["identity"]
    if ident["backbone"] in ("alexnet", "alexnet:fc7"):
        bb = dict(netgen.BACKBONES["alexnet"], name="alexnet", input="data")
    else:   # a frozen run's backbone is DEPLOY:LAYER with the mean and scale it was given
        bb = netgen.foreign_backbone(ident["backbone"], **({"mean": tuple(config["mean"])} if config.get("mean") else {}),
                                     scale=config.get("scale") or 1.0)
    out = os.path.join(run_dir, "search")
    os.makedirs(out, exist_ok=True)
    deploy = os.path.join(out, "image_deploy.prototxt")
    train.write_text(deploy, str(netgen.deploy_net(ident["dataset"], ident["bits"], batch=1, backbone=bb,
                                                   feature_norm=ident.get("feature_norm", False))))
    model = os.path.join(out, "image_net.caffemodel")
    train.warm_start(config["weights"], weights, model)
    return deploy, model, bb["crop"], tuple(bb["mean"]), bb["scale"]


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
    from dhn import encode
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
    from dhn import convert
    split = os.path.join(data_dir, database)
    manifest = convert.check_split(split)
    src = manifest.get("source_split") or manifest.get("subset_of")
    records = np.loadtxt(os.path.join(split, "records.txt"), dtype=np.int64, ndmin=1)
    labels = convert.read_split_labels(split)
    names = (manifest.get("options") or {}).get("class_names")
    if names is None and src and os.path.isfile(os.path.join(src, "manifest.json")):
        names = (convert.check_split(src).get("options") or {}).get("class_names")
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


def search_run(run_dir, images, top=20, radius=None):
    """[{image, ms, hits: [{rank, row, record, distance, labels}]}] for image files against a run."""
    config, results, database, codes_path, weights = _run_files(run_dir)
    ident = config["identity"]
    if radius is not None and ident["variant"] != "dhn-b":
        check_radius(ident["bits"], radius)
    from dhn import netgen
    size = netgen.BACKBONES[netgen.DATASETS[ident["dataset"]]["backbone"]]["size"]
    deploy, model, crop, mean, scale = image_net(run_dir, config, weights)
    t0 = time.perf_counter()
    z = encode_images(images, deploy, model, crop, mean, scale, size)
    encode_ms = (time.perf_counter() - t0) * 1e3 / len(images)
    db = np.load(codes_path)
    real = ident["variant"] == "dhn-b"
    out = []
    t0 = time.perf_counter()
    if real:   # DHN-B: inner product of the real codes, ties in database order
        scores = z.astype(np.float64) @ db.astype(np.float64).T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
        ranked = [(o, scores[i, o]) for i, o in enumerate(order)]
    else:
        index = HammingIndex(db)
        if radius is None:
            idx, dist = index.scan(z, min(top, len(db)))
            ranked = list(zip(idx, dist))
        else:
            ranked = [(i[:top], d[:top]) for i, d in index.lookup(z, radius)]
    search_ms = (time.perf_counter() - t0) * 1e3 / len(images)
    for path, (rows, dist) in zip(images, ranked):
        info = describe(config["data_dir"], database, rows)
        out.append({"image": path, "encode_ms": round(encode_ms, 1), "search_ms": round(search_ms, 3),
                    "ranking": "inner product" if real else ("hash lookup, radius %d" % radius if radius is not None
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
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    try:
        res = search_run(args.run, args.images, args.top, args.radius)
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
