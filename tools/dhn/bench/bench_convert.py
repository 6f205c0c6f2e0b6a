"""Dataset conversion: CIFAR-10-shaped 32×32 inputs resized to 256×256, raw vs PNG vs JPEG Datums.

For each encoding: conversion throughput (images/s, through dhn.convert.convert_cifar10 on a
folder of pickled batches, every core), LMDB bytes per image, and read speed through Caffe's own
Data layer with the training transform (227 crop, mirror, BGR mean), which is what a training run
pays per image. Plus the list path (32×32 PNG files -> PNG Datums), PNG on one worker process
against all, and the reshuffling Python data layer's read rate against Data's. Ratios are to raw
unless said.

The images are 32×32 crops of matplotlib's sample photo (grace_hopper.jpg) at several scales,
so they have natural-image statistics; real CIFAR-10 cannot be downloaded on these machines.
"""
import os
import pickle
import shutil
import tempfile
import time

import cv2
import numpy as np

from dhn import convert, split_folder
from dhn.bench import Figure

os.environ.setdefault("GLOG_minloglevel", "2")  # before Caffe loads: keep its log out of the table
N = 480          # images per encoding: enough for steady rates, small enough for 2 busy cores
N_WORKERS = 4000  # images for the one-vs-all-workers comparison
BATCH = 40
ENCODINGS = ("raw", "png", "jpg")


def natural_32x32(n, seed=0):
    """n BGR 32×32 crops of a real photo at random scales (noise if the photo is missing)."""
    rng = np.random.RandomState(seed)
    try:
        import matplotlib.cbook
        photo = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except Exception:
        photo = None
    if photo is None:
        return rng.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8)
    out = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        side = rng.randint(32, min(photo.shape[:2]))
        y, x = rng.randint(0, photo.shape[0] - side + 1), rng.randint(0, photo.shape[1] - side + 1)
        out[i] = cv2.resize(photo[y:y + side, x:x + side], (32, 32), interpolation=cv2.INTER_AREA)
    return out


def write_cifar_folder(folder, bgr, labels):
    """The official batch format: pickled {b'data': N×3072 R,G,B planes, b'labels': [...]}."""
    os.makedirs(folder)
    rows = np.ascontiguousarray(bgr[..., ::-1].transpose(0, 3, 1, 2)).reshape(len(bgr), 3072)
    names = ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]
    for k, part in enumerate(np.array_split(np.arange(len(bgr)), len(names))):
        with open(os.path.join(folder, names[k]), "wb") as fh:
            pickle.dump({b"data": rows[part], b"labels": [int(v) for v in labels[part]]}, fh, protocol=2)
    with open(os.path.join(folder, "batches.meta"), "wb") as fh:
        pickle.dump({b"label_names": [b"c%d" % c for c in range(10)]}, fh, protocol=2)


def _read_rate(proto, passes=3, warmup=6):
    """Images/s of a net made of one data layer (steady state: the batches prefetched while the
    net was built are drained first)."""
    import caffe
    caffe.set_mode_cpu()
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as fh:
        fh.write(proto)
    try:
        net = caffe.Net(fh.name, caffe.TRAIN)
        for _ in range(warmup):
            net.forward()
        steps = passes * N // BATCH
        t0 = time.perf_counter()
        for _ in range(steps):
            net.forward()
        rate = steps * BATCH / (time.perf_counter() - t0)
        del net
    finally:
        os.remove(fh.name)
    return rate


def caffe_read_rate(images_lmdb):
    """Images/s through a stock Data layer with the training transform."""
    return _read_rate("""layer { name: "data" type: "Data" top: "data" top: "cls"
  transform_param { crop_size: 227 mirror: true mean_value: 104 mean_value: 117 mean_value: 123 }
  data_param { source: "%s" backend: LMDB batch_size: %d } }""" % (images_lmdb, BATCH))


def shuffled_read_rate(split_dir):
    """Images/s through the project's reshuffling Python data layer (dhn_data.ShuffledData) with
    the same transform: what `make train` reads with by default (no prefetch thread)."""
    return _read_rate("""layer { name: "data" type: "Python" top: "data" top: "label"
  python_param { module: "dhn_data" layer: "ShuffledData" param_str: "{'source': '%s', 'batch_size': %d, 'crop_size': 227, 'mirror': True, 'mean': [104, 117, 123]}" } }""" % (split_dir, BATCH), warmup=1)


def run():
    tmp = tempfile.mkdtemp(prefix="dhn-bench-convert-")
    try:
        bgr = natural_32x32(N)
        labels = np.arange(N) % 10
        src = os.path.join(tmp, "cifar-10-batches-py")
        write_cifar_folder(src, bgr, labels)
        results = {}
        for enc in ENCODINGS:
            dirs = convert.convert_cifar10(src, os.path.join(tmp, enc), split_indices={"database": np.arange(N)},
                                           size=256, encoding=enc, progress=False)
            m = split_folder.check_split(dirs["database"])
            results[enc] = {"img_per_s": m["count"] / m["seconds"],
                            "kb_per_img": m["bytes"]["images"] / m["count"] / 1e3,
                            "read_img_per_s": caffe_read_rate(os.path.join(dirs["database"], "images"))}
        # PNG on one worker process, then on every core, over N_WORKERS images: the pool's start-up
        # (a forkserver, ~1 s) is noise at that size, not at N
        big = os.path.join(tmp, "cifar-big")
        write_cifar_folder(big, natural_32x32(N_WORKERS), np.arange(N_WORKERS) % 10)
        rate = {}
        for w in (1, None):
            out = convert.convert_cifar10(big, os.path.join(tmp, "png-w%s" % w), progress=False, size=256,
                                          split_indices={"database": np.arange(N_WORKERS)}, encoding="png", workers=w)
            m1 = split_folder.check_split(out["database"])
            rate[m1["workers"]] = m1["count"] / m1["seconds"]
        png_all_workers = max(rate)
        png_one, png_all = rate[1], rate[png_all_workers]
        shuffled = {enc: shuffled_read_rate(os.path.join(tmp, enc, "database")) for enc in ("raw", "png")}
        # The list path: 32×32 PNG files on disk -> 256×256 PNG Datums.
        os.makedirs(os.path.join(tmp, "png-files"))
        with open(os.path.join(tmp, "list.txt"), "w") as fh:
            for i in range(N):
                cv2.imwrite(os.path.join(tmp, "png-files", "%d.png" % i), bgr[i])
                fh.write("png-files/%d.png %s\n" % (i, " ".join("1" if c == labels[i] else "0" for c in range(10))))
        dirs = convert.convert_list(os.path.join(tmp, "list.txt"), tmp, os.path.join(tmp, "list-out"),
                                    {"database": np.arange(N)}, num_labels=10, size=256, encoding="png",
                                    progress=False)
        m = split_folder.check_split(dirs["database"])
        list_rate = m["count"] / m["seconds"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = []
    raw = results["raw"]
    what = {"img_per_s": ("img/s", "convert 32->256 (%d imgs)" % N),
            "kb_per_img": ("KB", "LMDB bytes per image"),
            "read_img_per_s": ("img/s", "Caffe Data layer, train transform")}
    for key, (unit, label) in what.items():
        for enc in ENCODINGS:
            v = results[enc][key]
            figures.append(Figure("convert.%s_%s" % (enc, key), v, unit, None if enc == "raw" else v / raw[key],
                                  "" if enc == "raw" else "raw, %s" % label))
    figures.append(Figure("convert.list_png_img_per_s", list_rate, "img/s", list_rate / results["png"]["img_per_s"],
                          "png from CIFAR batches (adds PNG file decode)"))
    figures.append(Figure("convert.png_1worker_img_per_s", png_one, "img/s", None,
                          "PNG, one worker process (%d imgs)" % N_WORKERS))
    figures.append(Figure("convert.png_all_workers_img_per_s", png_all, "img/s", png_all / png_one,
                          "one worker: speed-up of %d workers (%d imgs)" % (png_all_workers, N_WORKERS)))
    for enc in ("raw", "png"):
        figures.append(Figure("read.shuffled_%s_img_per_s" % enc, shuffled[enc], "img/s",
                              shuffled[enc] / results[enc]["read_img_per_s"],
                              "Caffe Data layer on the same LMDB (reshuffling Python layer / Data)"))
    return figures
