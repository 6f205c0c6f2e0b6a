"""Datasets to LMDB: the split folders Caffe's Data layers read.

    python -m dhn.convert cifar10   [--source TARBALL_OR_FOLDER] [--download] [--out DIR] [--workers N]
    python -m dhn.convert nuswide21 --images DIR --list FILE [--out DIR]
    python -m dhn.convert flickr25k --images DIR --list FILE [--out DIR]

A converted dataset (default out: data/<dataset>/lmdb/) holds one folder per split
(train, query, database, plus any other a caller asks for):

    <split>/images/        LMDB of image Datums (lmdb_io.image_datum), keys %08d in record
                           order: size×size BGR, Datum.label = class index (CIFAR-10) else 0
    <split>/labels/        LMDB of label Datums (lmdb_io.label_datum), same keys: the C-long
                           0/1 vector (one-hot, C = 10, for CIFAR-10), read as N×C×1×1
    <split>/records.txt    the source index (CIFAR-10 record / list entry) of each record
    <split>/manifest.json  count, num_labels, image_size, encoding, sources (checksums),
                           options, label_counts, throughput, "complete": true

The train split is written in a seeded shuffled order because Caffe's Data layer reads keys
in order and never shuffles; the other splits are in index order. Images are resized to
size×size with cv2.INTER_LINEAR, as Caffe's convert_imageset and ImageData layer do.

Safety: each split is written to ``<split>.tmp-<pid>`` and renamed to ``<split>`` only once
complete and checked (both LMDBs hold ``count`` records), so an interrupted run leaves
nothing that looks finished; a finished split whose manifest matches the request (same
sources, options and record order) is skipped, so re-running is a no-op, and a run that
was interrupted resumes at the first unfinished split. A split being replaced survives any
failure of its replacement (write_split). Bad input raises DatasetError (one line: file,
line, fix), removes everything the run wrote and puts back the splits it had replaced.

Encoding: raw, png (lossless) or jpg (lossy, OpenCV's default quality 95). ``python -m dhn.bench convert`` measures
each on 480 natural 32×32 crops resized to 256×256: bytes a record, conversion rate and the read
rate of a stock Caffe Data layer with the training transform (figures convert.* in
docs/BENCHMARKS.md). PNG is the default: lossless like raw and much smaller, and its Data layer
reads far faster than CPU training consumes images (convert.png_read_img_per_s against
finetune.alexnet_img_per_s). Caffe decodes in a single prefetch thread: for GPU training, which
consumes images faster than a PNG Data layer reads them, ``--encoding raw`` is the one whose read
rate keeps up.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time

import cv2
import numpy as np
from tqdm import tqdm

from dhn import lmdb_io, split_folder
from dhn.datasets import (CIFAR10_FOLDER_COUNTS, CIFAR10_MD5, CIFAR10_URL, NUM_LABELS, SPLIT_ORDER, DatasetError,
                          check_split_indices, dataset_dir, download_cifar10, file_digest, find_cifar10,
                          load_cifar10, load_split_spec, read_list, read_split_files, split_from_spec)

ENCODINGS = {"raw": None, "png": "png", "jpg": "jpg"}
DEFAULT_ENCODING = "png"
FORMAT_VERSION = 1  # bump when the layout changes: finished splits of an older version get rebuilt
UNLABELED_RULES = ("error", "drop", "keep")


def _log(msg):
    print("dhn.convert: " + msg, file=sys.stderr, flush=True)


def default_out(dataset):
    return os.path.join(dataset_dir(dataset), "lmdb")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(out_dir, split=None):
    """Tidy what writers that died left in out_dir (of one split, or all; never a live run's):
    a <split>.tmp-<pid> goes; a <split>.old-<pid>, the previous whole split moved aside for its
    replacement, goes back to <split> when the writer died between its two renames (no <split>),
    and goes only when <split> is there."""
    if not os.path.isdir(out_dir):
        return
    for name in sorted(os.listdir(out_dir)):
        m = re.match(r"^(.+)\.(tmp|old)-(\d+)$", name)
        if not m or (split is not None and m.group(1) != split):
            continue
        if int(m.group(3)) != os.getpid() and _pid_alive(int(m.group(3))):
            continue
        path, whole = os.path.join(out_dir, name), os.path.join(out_dir, m.group(1))
        if m.group(2) == "old" and not os.path.exists(whole):
            os.rename(path, whole)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _dir_bytes(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def _jsonable(obj):
    return json.loads(json.dumps(obj))


def subset_split(src_dir, out_dir, positions, name, seed=0, shuffle=False):
    """A split holding the records of the finished split src_dir at ``positions`` (record
    positions in src_dir, written in sorted order, or in a RandomState(seed) permutation with
    shuffle), every LMDB of it (images, labels) and the blobs.npy of a split of stored outputs (dhn.blobs) copied record for record, no
    re-encoding. What `make sweep` carves and what a stated database subset is made of. Written
    under a temporary name and renamed; a finished one with the same request is kept."""
    src = split_folder.check_split(src_dir)
    positions = np.sort(np.asarray(positions, np.int64))
    if positions.size == 0 or positions[0] < 0 or positions[-1] >= src["count"] or len(np.unique(positions)) != len(positions):
        raise DatasetError("%s: subset positions must be distinct, within 0..%d" % (src_dir, src["count"] - 1))
    if shuffle:
        positions = np.random.RandomState(seed).permutation(positions)
    key = _jsonable({"source": src.get("key"), "split": name,
                     "positions_sha256": hashlib.sha256(positions.astype("<i8").tobytes()).hexdigest()})
    if finished_split(out_dir, key):
        return out_dir

    def fill(tmp):
        for db in src.get("databases", ["images", "labels"]):
            with lmdb_io.Reader(os.path.join(src_dir, db)) as reader, lmdb_io.Writer(os.path.join(tmp, db)) as out:
                for i in positions:
                    out.put_bytes(reader.get_bytes(int(i)))
        if src.get("blobs"):      # stored outputs (dhn.blobs): the views of each record, row by row
            blobs, _ = split_folder.read_blobs(src_dir)
            v = src["blobs"]["views"]
            out = np.lib.format.open_memmap(os.path.join(tmp, src["blobs"]["file"]), mode="w+", dtype=blobs.dtype,
                                            shape=(len(positions) * v,) + blobs.shape[1:])
            for k, i in enumerate(positions):
                out[k * v:(k + 1) * v] = blobs[int(i) * v:(int(i) + 1) * v]
            out.flush()
            del out
        records = np.loadtxt(os.path.join(src_dir, "records.txt"), dtype=np.int64, ndmin=1)
        np.savetxt(os.path.join(tmp, "records.txt"), records[positions], fmt="%d")
        labels = split_folder.read_split_labels(src_dir)[positions]
        return dict(src, split=name, count=int(len(positions)), label_counts=labels.sum(0).astype(int).tolist(),
                    subset_of=os.path.abspath(src_dir), key=key,
                    order="shuffled, RandomState(%d)" % seed if shuffle else "source order")

    write_split(out_dir, fill)
    return out_dir


def class_balanced_positions(labels, per_class, seed=0):
    """Record positions of a seeded class-balanced subset: for each class c in order,
    RandomState(seed) draws per_class of the records whose label vector has c (single-label
    data: exactly per_class a class). Sorted."""
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    picked = [rng.choice(np.flatnonzero(labels[:, c]), per_class, replace=False) for c in range(labels.shape[1])]
    return np.unique(np.concatenate(picked))


def finished_split(split_dir, key, placeless=False):
    """The manifest of split_dir when it is a whole split made by the same request (its manifest's
    ``key`` equals key), else None: what lets every writer below skip finished work. ``placeless``:
    keys equal wherever their files sat (split_folder.placeless), for stored outputs, whose key
    names the weights by their sha256 (an image split's key names its image folder only by path)."""
    if os.path.isdir(split_dir):
        try:
            manifest = split_folder.check_split(split_dir)
            same = split_folder.placeless if placeless else (lambda k: k)
            if same(manifest.get("key")) == same(key):
                return manifest
        except DatasetError:
            pass
    return None


def write_split(split_dir, fill, replaced=None):
    """Make split_dir whole or not at all: fill(tmp) writes the split's LMDBs and files into
    ``<split_dir>.tmp-<pid>`` and returns its manifest, which is written and checked
    (split_folder.check_split) before the folder is swapped into place. The previous split_dir survives any
    failure of its replacement: it is moved aside to ``<split_dir>.old-<pid>`` only once the new
    one is whole, moved back if the second rename fails, and put back by the next writer if this
    process dies between the two renames (_remove_stale). ``replaced``: a list that gets
    (split_dir, aside) instead of the aside folder being deleted (build_splits decides once every
    split is written). Returns the manifest."""
    out_dir, name = os.path.split(os.path.abspath(split_dir))
    _remove_stale(out_dir, name)
    tmp = "%s.tmp-%d" % (split_dir, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    aside = None
    try:
        manifest = fill(tmp)
        with open(os.path.join(tmp, "manifest.json"), "w") as fh:
            json.dump(manifest, fh, indent=1)
        split_folder.check_split(tmp)
        if os.path.exists(split_dir):  # replacing an outdated split: move it aside, then swap
            aside = "%s.old-%d" % (split_dir, os.getpid())
            os.rename(split_dir, aside)
        os.rename(tmp, split_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside and os.path.exists(aside) and not os.path.exists(split_dir):
            os.rename(aside, split_dir)
        raise
    if aside and replaced is not None:
        replaced.append((split_dir, aside))
    elif aside:
        shutil.rmtree(aside, ignore_errors=True)
    return manifest


def _record_order(indices, shuffled, seed):
    order = np.sort(np.asarray(indices, np.int64))
    return np.random.RandomState(seed).permutation(order) if shuffled else order


class ArrayLoader:
    """load(i) for images already in memory (CIFAR-10): (images[i], shas[i] or None). Picklable."""

    def __init__(self, images, shas=None):
        self.images, self.shas = images, shas

    def __call__(self, i):
        return self.images[i], (self.shas[i] if self.shas else None)


class FileLoader:
    """load(i) for list datasets: read and decode image_root/paths[i]; (BGR, file sha256). Picklable."""

    def __init__(self, image_root, paths, wheres):
        self.image_root, self.paths, self.wheres = image_root, paths, wheres

    def __call__(self, i):
        path = os.path.join(self.image_root, self.paths[i])
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as e:
            raise DatasetError("%s: cannot read %s (%s)" % (self.wheres[i], path, e.strerror))
        bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError("%s: %s does not decode as an image: replace the file or remove the line"
                               % (self.wheres[i], path))
        return bgr, hashlib.sha256(raw).hexdigest()


_JOB = {}   # a worker's job, set once by _init_worker


def _init_worker(load, size, encoding, class_index):
    cv2.setNumThreads(1)      # one OpenCV thread per worker: the workers are the parallelism
    _JOB.update(load=load, size=size, encoding=encoding, class_index=class_index)


def _encode_record(i):
    """Read, decode, resize and encode record i: (serialized image Datum, file sha256 or None).
    Deterministic, so the LMDB is the same for any number of workers."""
    load, size, encoding, class_index = _JOB["load"], _JOB["size"], _JOB["encoding"], _JOB["class_index"]
    bgr, file_sha = load(i)
    if bgr.shape[:2] != (size, size):
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_LINEAR)
    cls = int(class_index[i]) if class_index is not None else 0
    return lmdb_io.image_datum(bgr, label=cls, encoding=ENCODINGS[encoding]).SerializeToString(), file_sha


def _encoded_records(order, job, workers):
    """_encode_record over order, in order: in a pool of worker processes, or in this process
    when workers is 1, the split is tiny, or the loader cannot be pickled (a closure).
    The pool is started by a forkserver, not forked from this process: a fork copies locks
    that other threads hold (OpenCV's thread pool, seen deadlocking a forked worker)."""
    import pickle
    parallel = workers > 1 and len(order) >= 2 * workers
    if parallel:
        try:
            pickle.dumps(job[0])
        except (pickle.PicklingError, AttributeError, TypeError):
            parallel = False
    if not parallel:
        saved = dict(_JOB)
        _JOB.update(load=job[0], size=job[1], encoding=job[2], class_index=job[3])
        try:
            for i in order:
                yield _encode_record(i)
        finally:
            _JOB.clear()
            _JOB.update(saved)
        return
    import multiprocessing
    with multiprocessing.get_context("forkserver").Pool(workers, initializer=_init_worker, initargs=job) as pool:
        yield from pool.imap(_encode_record, [int(i) for i in order], chunksize=16)


def default_workers():
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _build_split(split_dir, name, order, labels, class_index, load, size, encoding, key, info, progress,
                 workers=1, replaced=None):
    """Write one split (write_split: whole or not at all; the split it replaces goes to ``replaced``)."""
    timing = {}

    def fill(tmp):
        digest = hashlib.sha256()
        hashed = False
        t0 = time.perf_counter()
        with lmdb_io.Writer(os.path.join(tmp, "images")) as images, \
                lmdb_io.Writer(os.path.join(tmp, "labels")) as label_db:
            records = _encoded_records(order, (load, size, encoding, class_index), workers)
            for i, (image_bytes, file_sha) in tqdm(zip(order, records), total=len(order), mininterval=1.0,
                                                   desc="%s/%s" % (info["dataset"], name), unit="img",
                                                   disable=not progress, leave=False):
                if file_sha is not None:
                    digest.update(("%d %s\n" % (i, file_sha)).encode())
                    hashed = True
                images.put_bytes(image_bytes)
                label_db.put(lmdb_io.label_datum(labels[i]))
        seconds = timing["s"] = time.perf_counter() - t0
        np.savetxt(os.path.join(tmp, "records.txt"), order, fmt="%d")
        sub = labels[order]
        image_bytes = timing["bytes"] = _dir_bytes(os.path.join(tmp, "images"))
        return dict(info, split=name, count=int(len(order)), num_labels=int(labels.shape[1]),
                    image_size=[size, size], channels=3, encoding=encoding,
                    order="shuffled, RandomState(%d)" % key["seed"] if key["shuffled"] else "index order",
                    label_counts=sub.sum(0).astype(int).tolist(), unlabeled=int((sub.sum(1) == 0).sum()),
                    images_sha256=digest.hexdigest() if hashed else None,
                    bytes={"images": image_bytes, "labels": _dir_bytes(os.path.join(tmp, "labels"))},
                    seconds=round(seconds, 3), images_per_s=round(len(order) / max(seconds, 1e-9), 1),
                    workers=workers, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), key=key, complete=True)

    manifest = write_split(split_dir, fill, replaced)
    _log("%s/%s: %d images in %.1f s = %.1f img/s; %.1f KB/image (%s, %d×%d) -> %s"
         % (info["dataset"], name, len(order), timing["s"], len(order) / max(timing["s"], 1e-9),
            timing["bytes"] / max(len(order), 1) / 1e3, encoding, size, size, split_dir))
    return manifest


def build_splits(out_dir, dataset, split_indices, labels, load, class_index=None, size=256,
                 encoding=DEFAULT_ENCODING, seed=0, shuffle_splits=("train",), sources=None,
                 options=None, progress=True, workers=None):
    """Write ``<out_dir>/<split>/`` for each split (see module doc).

    split_indices: {split: indices into the source}; labels: N×C uint8 0/1 (the labels LMDB);
    load(i) -> (H×W×3 BGR uint8, sha256 of the file or None), raising DatasetError;
    class_index: N ints for Datum.label (single-label data) or None (0);
    sources/options: recorded in each manifest and compared to skip finished splits.
    workers: processes that decode/resize/encode (default: every core); the records are
    written in the same order whatever the number, so the LMDBs are byte-identical.
    Returns {split: split_dir}."""
    workers = default_workers() if workers is None else max(1, int(workers))
    if encoding not in ENCODINGS:
        raise DatasetError("encoding %r: use one of %s" % (encoding, ", ".join(ENCODINGS)))
    labels = np.asarray(labels, np.uint8)
    split_indices = check_split_indices(split_indices, len(labels))
    created_out = not os.path.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    _remove_stale(out_dir)
    names = [s for s in SPLIT_ORDER if s in split_indices] + sorted(s for s in split_indices if s not in SPLIT_ORDER)
    written, replaced, result = [], [], {}
    try:
        for name in names:
            split_dir = os.path.join(out_dir, name)
            shuffled = name in shuffle_splits
            order = _record_order(split_indices[name], shuffled, seed)
            key = _jsonable({"format": FORMAT_VERSION, "dataset": dataset, "split": name, "count": len(order),
                             "order_sha256": hashlib.sha256(order.astype("<i8").tobytes()).hexdigest(),
                             "num_labels": labels.shape[1], "size": size, "encoding": encoding,
                             "seed": seed, "shuffled": shuffled, "sources": sources or {}, "options": options or {}})
            result[name] = split_dir
            if finished_split(split_dir, key):
                _log("%s/%s: up to date (%d images) in %s" % (dataset, name, len(order), split_dir))
                continue
            if os.path.isdir(split_dir):
                _log("%s/%s: %s differs from this request: rebuilding it" % (dataset, name, split_dir))
            info = {"dataset": dataset, "sources": sources or {}, "options": options or {}}
            _build_split(split_dir, name, order, labels, class_index, load, size, encoding, key, info, progress,
                         workers, replaced)
            written.append(split_dir)
    except DatasetError:
        # Bad input: leave nothing of this run behind (the fix would change the request anyway),
        # and the splits it replaced as they were.
        for split_dir in written:
            shutil.rmtree(split_dir, ignore_errors=True)
        for split_dir, aside in replaced:
            os.rename(aside, split_dir)
        if created_out and not os.listdir(out_dir):
            os.rmdir(out_dir)
        raise
    finally:   # whatever else stopped the run, its finished splits stand: the ones they replaced go
        for _, aside in replaced:
            shutil.rmtree(aside, ignore_errors=True)
    return result


# ----------------------------------------------------------------------------- CIFAR-10

def convert_cifar10(source=None, out_dir=None, download=False, split_indices=None, size=256,
                    encoding=DEFAULT_ENCODING, seed=0, shuffle_splits=("train",), expected_md5=CIFAR10_MD5,
                    url=CIFAR10_URL, download_dir=None, progress=True, workers=None,
                    folder_counts=CIFAR10_FOLDER_COUNTS):
    """Convert CIFAR-10 into ``out_dir`` (default data/cifar10/lmdb/); returns {split: dir}.

    source: the tarball (its md5 must be expected_md5) or the extracted folder; None looks in
    download_dir (default data/cifar10/download/) and, with download=True, fetches the tarball
    from url when it is not there. split_indices: {split: record indices} (records in the
    order data_batch_1..5, test_batch; for an image folder, dhn.datasets' folder order); None
    applies the committed data/cifar10/split.json. folder_counts: the (train, test) images
    each class of an image-folder source must have (the official 5,000 and 1,000)."""
    download_dir = download_dir or os.path.join(dataset_dir("cifar10"), "download")
    if source is None:
        source = find_cifar10(download_dir)
        if source is None:
            if not download:
                raise DatasetError("%s: no cifar-10-python.tar.gz or cifar-10-batches-py/ there: put the "
                                   "tarball from %s there, pass --source PATH (make: SOURCE=PATH), or pass "
                                   "--download (make: DOWNLOAD=1)"
                                   % (download_dir, url))
            source = download_cifar10(download_dir, url, expected_md5)
    data = load_cifar10(source, expected_md5, per_class=folder_counts, progress=progress)
    if split_indices is None:
        spec = load_split_spec("cifar10")
        split_indices = split_from_spec(spec, data.labels)
        split_rule = "data/cifar10/split.json (%s, seed %d)" % (spec["rule"], spec["seed"])
    else:
        split_rule = "given"
    labels = np.eye(10, dtype=np.uint8)[data.labels]

    load = ArrayLoader(data.images, data.file_sha256)
    options = {"split": split_rule, "resize": "cv2.INTER_LINEAR", "class_names": data.class_names}
    return build_splits(out_dir or default_out("cifar10"), "cifar10", split_indices, labels, load,
                        class_index=data.labels, size=size, encoding=encoding, seed=seed,
                        shuffle_splits=shuffle_splits, sources=data.sources, options=options, progress=progress,
                        workers=workers)


# ----------------------------------------------------------------------------- lists

def convert_list(list_file, image_root, out_dir, split_indices=None, num_labels=None, size=256,
                 encoding=DEFAULT_ENCODING, seed=0, shuffle_splits=("train",), unlabeled="error",
                 dataset="list", split_spec=None, progress=True, workers=None, label_names=None):
    """Convert an image list + folder into ``out_dir/<split>/`` (see module doc); returns {split: dir}.

    list_file: lines ``relative/path l_1 ... l_C`` (0/1), paths relative to image_root.
    split_indices: {split: 0-based entry indices into the list (the i-th non-blank line)};
      None applies split_spec (a split.json dict; default data/<dataset>/split.json).
    num_labels: C (default NUM_LABELS[dataset]). size: the side images are resized to.
    encoding: 'png' (default), 'jpg' or 'raw'. seed: shuffles the splits in shuffle_splits.
    unlabeled: what an entry with no label does: 'error' (default), 'drop' (left out of every
      split, counted in the manifest) or 'keep' (kept with an all-zero label vector)."""
    if num_labels is None:
        if dataset not in NUM_LABELS:
            raise DatasetError("num_labels is needed for dataset %r" % dataset)
        num_labels = NUM_LABELS[dataset]
    if unlabeled not in UNLABELED_RULES:
        raise DatasetError("unlabeled=%r: use one of %s" % (unlabeled, ", ".join(UNLABELED_RULES)))
    if not os.path.isdir(image_root):
        raise DatasetError("%s: missing image folder (the list's paths are relative to it)" % image_root)
    lst = read_list(list_file, num_labels)
    n = len(lst.paths)
    labelled = lst.labels.any(1)
    if unlabeled == "error" and not labelled.all():
        i = int(np.flatnonzero(~labelled)[0])
        raise DatasetError("%s: %s has no label (all %d are 0): remove the line, or choose a rule: "
                           "--unlabeled drop (leave such images out) or keep (make: UNLABELED=drop or keep)"
                           % (lst.where(i), lst.paths[i], num_labels))
    eligible = labelled if unlabeled == "drop" else None
    if split_indices is None:
        spec = split_spec or load_split_spec(dataset)
        split_indices = split_from_spec(spec, lst.labels, eligible)
        split_rule = "%s, seed %d" % (spec["rule"], spec["seed"])
    else:
        split_indices = check_split_indices(split_indices, n, where=list_file)
        if eligible is not None:
            split_indices = {k: v[eligible[v]] for k, v in split_indices.items()}
        split_rule = "given"
    split_indices = check_split_indices(split_indices, n, where=list_file)
    used = np.concatenate([v for v in split_indices.values()]) if split_indices else np.zeros(0, np.int64)
    for i in np.sort(used):  # fail before writing anything
        path = os.path.join(image_root, lst.paths[i])
        if not os.path.isfile(path):
            raise DatasetError("%s: image %s does not exist: fix the path or --images" % (lst.where(i), path))

    load = FileLoader(image_root, lst.paths, [lst.where(i) for i in range(n)])

    sources = {"list": {"path": os.path.abspath(list_file), "sha256": file_digest(list_file, "sha256")},
               "images": os.path.abspath(image_root)}
    options = {"split": split_rule, "unlabeled": unlabeled, "dropped_unlabeled": int((~labelled).sum())
               if unlabeled == "drop" else 0, "resize": "cv2.INTER_LINEAR"}
    if label_names is not None:     # shown by search and the gallery
        if len(label_names) != num_labels:
            raise DatasetError("%s: %d label names for %d labels" % (list_file, len(label_names), num_labels))
        options["class_names"] = list(label_names)
    return build_splits(out_dir, dataset, split_indices, lst.labels, load, size=size, encoding=encoding,
                        seed=seed, shuffle_splits=shuffle_splits, sources=sources, options=options,
                        progress=progress, workers=workers)


# ----------------------------------------------------------------------------- CLI

def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m dhn.convert", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="dataset", required=True)

    def common(p, dataset):
        p.add_argument("--out", default=default_out(dataset), help="output folder (default %(default)s)")
        p.add_argument("--encoding", choices=list(ENCODINGS), default=DEFAULT_ENCODING)
        p.add_argument("--size", type=int, default=256, help="resize to size×size (default 256, Caffe's AlexNet input)")
        p.add_argument("--seed", type=int, default=0, help="shuffle seed of the train split")
        p.add_argument("--splits", help="folder of <split>.txt index files "
                       "(default: data/%s/split.json's rule)" % dataset)
        p.add_argument("--workers", type=int, help="encoding processes (default: every core)")

    p = sub.add_parser("cifar10", help="CIFAR-10 from the official python tarball or its folder, "
                       "or an image folder (or .tar/.tar.gz of one) train/<class>/*, test/<class>/*")
    p.add_argument("--source", help="cifar-10-python.tar.gz, cifar-10-batches-py/, or an image folder / tarball "
                   "with train/<class>/ and test/<class>/ (default: data/cifar10/download/)")
    p.add_argument("--download", action="store_true", help="download the tarball when it is not there")
    common(p, "cifar10")
    for name in ("nuswide21", "flickr25k"):
        p = sub.add_parser(name, help="%s from an image folder and a list file `path l_1 ... l_%d`"
                           % (name, NUM_LABELS[name]))
        p.add_argument("--images", required=True, help="folder the list's paths are relative to")
        p.add_argument("--list", required=True, help="list file (see data/%s/README.md)" % name)
        p.add_argument("--unlabeled", choices=UNLABELED_RULES, default="error",
                       help="an image with no label: error (default), drop it, or keep it")
        common(p, name)
    args = ap.parse_args(argv)
    try:
        split = read_split_files(args.splits) if args.splits else None
        common_kw = dict(split_indices=split, size=args.size, encoding=args.encoding, seed=args.seed,
                         workers=args.workers)
        if args.dataset == "cifar10":
            out = convert_cifar10(args.source, args.out, download=args.download, **common_kw)
        else:
            out = convert_list(args.list, args.images, args.out, dataset=args.dataset,
                               unlabeled=args.unlabeled, **common_kw)
    except DatasetError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished splits are kept, run again to resume", file=sys.stderr)
        return 130
    _log("done: %s" % ", ".join("%s=%s" % kv for kv in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
