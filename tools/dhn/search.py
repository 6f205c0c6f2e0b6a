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

The index (HammingIndex, below) scans with our C kernel (exact, ties in database order) and looks
up with FAISS; its FAISS indexes are kept beside the codes (``codes/<database>.faissindex``, .hash,
.ivf) and reused until the codes are written again.
"""
import argparse
import json
import math
import os
import sys
import time

import faiss
import numpy as np

from dhn import hamming_ap, metrics, split_folder
from dhn.atomic import write_atomic
from dhn.datasets import read_json

# IndexBinaryHash's bucket key: a code's first 16 bits (of 16, 32 and 64 key bits the fastest
# radius-2 lookup on the bench's codes at 200,000 and 2,000,000, and the smallest index)
HASH_BITS = 16


def key_bits(bits):
    """Bits of the bucket key for K-bit codes (FAISS pads codes to whole bytes with zero bits)."""
    return min(HASH_BITS, 8 * ((bits + 7) // 8))


# A radius-r lookup probes every bucket key within r flips of the query's: sum of C(b, i), i = 0..r,
# b = key_bits(K) (16: 137 at r = 2, 2,517 at r = 4, 39,203 at r = 8). Above this
# many probes a query is refused: the scan (no --radius, a larger --top) returns the same items
# within r at a cost that does not grow with r.
MAX_PROBES = 50000


class SearchError(ValueError):
    """One line: the file and the fix."""


def probes(bits, radius):
    """Bucket keys probed by a radius lookup at this code length."""
    return sum(math.comb(key_bits(bits), r) for r in range(radius + 1))


def check_radius(bits, radius):
    if radius < 0:
        raise SearchError("--radius %d: a Hamming radius is 0 or more" % radius)
    if probes(bits, radius) > MAX_PROBES:
        largest = max(r for r in range(bits + 1) if probes(bits, r) <= MAX_PROBES)
        raise SearchError("--radius %d at %d bits probes %s bucket keys a query, above the limit of %s (they grow "
                          "as C(%d, r)): use a radius of at most %d, or the scan (no RADIUS=, a larger TOP=)"
                          % (radius, bits, format(probes(bits, radius), ","), format(MAX_PROBES, ","),
                             key_bits(bits), largest))


# ----------------------------------------------------------------------------- the index

def ivf_lists(n):
    """IndexBinaryIVF's list count for n codes: about sqrt(n), with ≥ 39 training codes a list
    (FAISS warns below that)."""
    return max(1, min(int(round(np.sqrt(n))), n // 39))


class HammingIndex:
    """The sign codes of a database (z ≥ 0 → 1), packed as FAISS packs binary codes (np.packbits,
    zero bits padding the last byte: no distance sees them), searched three ways:
    - scan: the exact top k, ties in database order, by our C kernel (hamming_ap.top_k; numpy
      where no compiler exists): database order by construction. FAISS's IndexBinaryFlat returned
      the same rows in every case measured (its heap breaks ties by id), but that is its
      implementation, not a documented promise; it is faster on one query (make bench: 0.24 vs
      0.41 ms at 200,000 codes, a fraction of a millisecond beside encoding the image) and not on
      1,000 (its OpenMP threads lose most on a busy machine);
    - lookup: every item within Hamming radius r, by FAISS IndexBinaryHash (buckets keyed by the
      codes' first HASH_BITS bits, probed at every key within r flips: a code within r of the
      query differs from it in at most r key bits, so nothing is missed), ranked as the scan ranks;
    - approximate: the top k from FAISS IndexBinaryIVF (ivf_lists(N) lists, nprobe of them
      searched): exact distances, items in lists not probed missed.
    ``files`` (IndexFiles) keeps the FAISS indexes beside the codes file, reused while it is
    unchanged."""

    def __init__(self, codes=None, packed=None, bits=None, files=None):
        if packed is None:
            codes = np.asarray(codes)
            if codes.ndim != 2 or len(codes) == 0:
                raise ValueError("an index needs N×K codes, got shape %s" % (codes.shape,))
            bits, packed = codes.shape[1], self._packbits(codes)
        self.bits, self.packed = bits, np.ascontiguousarray(packed, np.uint8)
        self.n = len(self.packed)
        pad = (-self.packed.shape[1]) % 8        # the kernel's 64-bit words
        self.words = np.ascontiguousarray(np.pad(self.packed, ((0, 0), (0, pad))) if pad else self.packed).view(np.uint64)
        self.files = files
        self._faiss = {}

    @classmethod
    def open(cls, codes_path):
        """The index of a codes file (N×K .npy), its FAISS files kept beside it (IndexFiles)."""
        files = IndexFiles(codes_path)
        flat = files.load("flat")
        if flat is not None:     # the packed codes in database order, without reading the float codes
            index = cls(packed=faiss.vector_to_array(flat.xb).reshape(flat.ntotal, flat.code_size),
                        bits=files.bits, files=files)
            index._faiss["flat"] = flat
            return index
        index = cls(np.load(codes_path), files=files)
        index.faiss("flat")
        return index

    @staticmethod
    def _packbits(codes):
        return np.packbits(codes >= 0 if codes.dtype.kind == "f" else codes > 0, axis=1)

    def pack(self, queries):
        """Queries as packed bytes (the FAISS layout)."""
        queries = np.asarray(queries)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.shape[1] != self.bits:
            raise ValueError("queries have %d bits, the index %d" % (queries.shape[1], self.bits))
        return self._packbits(queries)

    def _pack_words(self, queries):
        q = self.pack(queries)
        pad = (-q.shape[1]) % 8
        return np.ascontiguousarray(np.pad(q, ((0, 0), (0, pad))) if pad else q).view(np.uint64)

    def scan(self, queries, top, workers=2):
        """(idx, dist), each nq×top: the Hamming ranking's top, ties in database order."""
        q = self._pack_words(queries)
        if hamming_ap.available():
            return hamming_ap.top_k(q, self.words, self.bits, top, workers)
        return self.scan_numpy(q, top)

    def scan_numpy(self, packed_queries, top):
        """The same ranking with numpy only: popcount distances, then a stable sort."""
        nb = self.packed.shape[1]
        d = metrics.hamming_distances(packed_queries.view(np.uint8)[:, :nb], self.packed)
        order = np.argsort(d, axis=1, kind="stable")[:, :top]
        return order.astype(np.int64), np.take_along_axis(d, order, axis=1).astype(np.int32)

    # the FAISS indexes, built on first use (or read from their files)
    def faiss(self, kind):
        if kind not in self._faiss:
            build = {"flat": self._flat, "hash": self._hash, "ivf": self._ivf}[kind]
            self._faiss[kind] = self.files.get(kind, build) if self.files else build()
        return self._faiss[kind]

    def _flat(self):
        index = faiss.IndexBinaryFlat(8 * self.packed.shape[1])
        index.add(self.packed)
        return index

    def _hash(self):
        index = faiss.IndexBinaryHash(8 * self.packed.shape[1], key_bits(self.bits))
        index.add(self.packed)
        return index

    def _ivf(self):
        d = 8 * self.packed.shape[1]
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(d), d, ivf_lists(self.n))
        index.train(self.packed)
        index.add(self.packed)
        return index

    def lookup(self, queries, radius=2):
        """For each query, (idx, dist) of every database item within Hamming distance ``radius``,
        ranked as the scan ranks them (distance, then database order). At most MAX_PROBES probes."""
        check_radius(self.bits, radius)
        index = self.faiss("hash")
        index.nflip = min(radius, index.b)          # every key within radius flips is probed
        lims, dist, idx = index.range_search(self.pack(queries), radius + 1)    # FAISS keeps d < radius
        out = []
        for s, e in zip(lims[:-1], lims[1:]):
            order = np.lexsort((idx[s:e], dist[s:e]))
            out.append((idx[s:e][order].astype(np.int64), dist[s:e][order].astype(np.int32)))
        return out

    def approximate(self, queries, top, nprobe):
        """[(idx, dist)] of the top ``top`` items IndexBinaryIVF finds in ``nprobe`` lists, ranked
        by (distance, database row); fewer where the lists hold fewer."""
        index = self.faiss("ivf")
        index.nprobe = nprobe
        dist, idx = index.search(self.pack(queries), top)
        out = []
        for d, i in zip(dist, idx):
            keep = i >= 0
            d, i = d[keep], i[keep]
            order = np.lexsort((i, d))
            out.append((i[order].astype(np.int64), d[order].astype(np.int32)))
        return out


class IndexFiles:
    """The FAISS indexes of one codes file, kept beside it: <codes>.faissindex (IndexBinaryFlat:
    the packed codes in database order), <codes>.hash.faissindex, <codes>.ivf.faissindex, each
    with a .json recording the codes file it was built from (size, mtime, inode: encoding writes
    codes to a new file and renames it): a later search reads the index while that still matches
    and rebuilds it (the codes were encoded again) when not."""

    def __init__(self, codes_path):
        self.codes = codes_path
        shape = np.load(codes_path, mmap_mode="r").shape      # the header only
        st = os.stat(codes_path)
        self.bits = shape[1]
        self.key = {"codes": os.path.basename(codes_path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                    "inode": st.st_ino, "shape": list(shape)}
        self.built = []     # kinds built (and written) by this process, not read

    def path(self, kind):
        stem = self.codes[:-len(".npy")] if self.codes.endswith(".npy") else self.codes
        return stem + (".faissindex" if kind == "flat" else ".%s.faissindex" % kind)

    def _want(self, kind):
        return dict(self.key, kind=kind, hash_bits=HASH_BITS if kind == "hash" else None)

    def load(self, kind):
        """The index of this kind from its file if built from these codes; None otherwise."""
        try:
            with open(self.path(kind) + ".json") as fh:
                if json.load(fh) != self._want(kind):
                    return None
            return faiss.read_index_binary(self.path(kind))
        except (OSError, ValueError, RuntimeError):   # none, or unreadable (FAISS raises RuntimeError): build it
            return None

    def get(self, kind, build):
        """The index of this kind: load() it, else build() and write it (a temporary name, then
        os.replace; the .json last, so an interrupted write is rebuilt next time)."""
        index = self.load(kind)
        if index is not None:
            return index
        index = build()
        self.built.append(kind)
        path = self.path(kind)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        try:
            write_atomic(path, lambda t: faiss.write_index_binary(index, t), tmp)
            write_atomic(path + ".json", json.dumps(self._want(kind)), tmp)
        except (OSError, RuntimeError) as e:    # a read-only run folder: answer without keeping the file
            print("warning: %s not written (%s): the index is rebuilt at each search" % (path, e), file=sys.stderr)
        return index


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
    write_atomic(deploy, str(netgen.deploy_net(ident["dataset"], ident["bits"], batch=1, backbone=bb,
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
    from dhn import netgen
    size = netgen.BACKBONES[netgen.DATASETS[ident["dataset"]]["backbone"]]["size"]
    deploy, model, crop, mean, scale = image_net(run_dir, config, weights)
    t0 = time.perf_counter()
    z = encode_images(images, deploy, model, crop, mean, scale, size)
    encode_ms = (time.perf_counter() - t0) * 1e3 / len(images)
    out = []
    if real:   # DHN-B: inner product of the real codes, ties in database order
        db = np.load(codes_path)
        t0 = time.perf_counter()
        scores = z.astype(np.float64) @ db.astype(np.float64).T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
        ranked = [(o, scores[i, o]) for i, o in enumerate(order)]
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
