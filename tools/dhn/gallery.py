"""`make gallery`: see what a run's codes retrieve.

    python -m dhn.gallery --run runs/NAME [--queries 8] [--top 10] [--seed 0]

For a fixed, seeded sample of the run's queries (``RandomState(seed).choice``, sorted), the query
image and its top retrieved database images (the run's own codes and ranking: Hamming, ties in
database order; inner product for DHN-B), each framed green when it shares a label with the query
and red when not, its distance under it. Writes ``gallery.png`` and ``gallery.html`` (the same
images inlined as data: URIs, so it opens from disk without a server) into the run folder.
Every evaluation writes them (dhn.train); this command redoes them.
"""
import argparse
import base64
import html
import os
import sys

import numpy as np

from dhn import lmdb_io, metrics, run_folder, split_folder
from dhn.atomic import write_atomic
from dhn.datasets import DatasetError, read_json
from dhn.hamming_index import HammingIndex

GREEN, RED = (40, 170, 40), (220, 40, 40)   # RGB


def image_split(data_dir, split):
    """The folder holding a split's images: the split itself, or for a features or stored split
    (dhn.features, dhn.stored) the image split it was computed from."""
    d = os.path.join(data_dir, split)
    manifest = split_folder.check_split(d)
    if "images" not in manifest.get("databases", ["images"]):
        src = manifest.get("source_split")
        while src and "images" not in split_folder.check_split(src).get("databases", ["images"]):
            src = split_folder.check_split(src).get("source_split")
        if not src and manifest.get("subset_of"):
            src = manifest["subset_of"]
        return src, manifest
    return d, manifest


def load_images(split_dir, rows):
    """RGB H×W×3 uint8 images of the given rows of a split (its images LMDB)."""
    with lmdb_io.Reader(os.path.join(split_dir, "images")) as reader:
        out = []
        for r in rows:
            datum = lmdb_io.caffe_pb2.Datum()
            datum.ParseFromString(reader.get_bytes(int(r)))
            out.append(np.ascontiguousarray(lmdb_io.datum_array(datum).transpose(1, 2, 0)[:, :, ::-1]))
    return out


def retrieve(run_dir, queries=8, top=10, seed=0, results="results.json"):
    """[(query row, [(db row, distance, relevant)])] for the seeded sample, from the run's codes
    (of the query and database its results file names)."""
    res = read_json(os.path.join(run_dir, results), "evaluate the run again (make train ... with --force)")
    config = run_folder.read_config(run_dir)
    qname, dname = res.get("query", "query"), res.get("database", "database")
    zq = np.load(os.path.join(run_dir, "codes", qname + ".npy"))
    zd = np.load(os.path.join(run_dir, "codes", dname + ".npy"))
    lq = split_folder.read_split_labels(os.path.join(config["data_dir"], qname))
    ld = split_folder.read_split_labels(os.path.join(config["data_dir"], dname))
    rows = np.sort(np.random.RandomState(seed).choice(len(zq), min(queries, len(zq)), replace=False))
    if res.get("ranking") == "inner_product":
        idx, dist = metrics.rank_inner_product(zq[rows], zd, top)
    else:
        idx, dist = HammingIndex(zd).scan(zq[rows], min(top, len(zd)))
    out = []
    for q, ids, ds in zip(rows, idx, dist):
        out.append((int(q), [(int(i), d, bool((lq[q] & ld[i]).any())) for i, d in zip(ids, ds)]))
    return out, config, qname, dname


def _framed(img, colour, width=3):
    out = np.empty((img.shape[0] + 2 * width, img.shape[1] + 2 * width, 3), np.uint8)
    out[...] = colour
    out[width:-width, width:-width] = img
    return out


def _thumb(img, size=64):
    import cv2
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _png_uri(img):
    import cv2
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


def write_gallery(run_dir, queries=8, top=10, seed=0, results="results.json"):
    """gallery.png and gallery.html in run_dir (gallery-<database>.* for results-<database>.json);
    returns their paths and the precision shown."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    found, config, qname, dname = retrieve(run_dir, queries, top, seed, results)
    qdir, _ = image_split(config["data_dir"], qname)
    ddir, _ = image_split(config["data_dir"], dname)
    qimgs = load_images(qdir, [q for q, _ in found])
    real = any(isinstance(d, float) or np.issubdtype(type(d), np.floating) for _, hits in found for _, d, _ in hits)
    fig, axes = plt.subplots(len(found), top + 1, figsize=(1.2 * (top + 1), 1.35 * len(found)), squeeze=False)
    rows_html, shown = [], []
    for row, ((q, hits), qimg) in enumerate(zip(found, qimgs)):
        dimgs = load_images(ddir, [i for i, _, _ in hits])
        axes[row][0].imshow(_thumb(qimg))
        axes[row][0].set_title("query %d" % q, fontsize=6)
        cells = ['<td class="q"><img src="%s" alt="query %d"><div>query %d</div></td>' % (_png_uri(_thumb(qimg)), q, q)]
        for col in range(top):
            ax = axes[row][col + 1]
            if col < len(hits):
                i, d, rel = hits[col]
                framed = _framed(_thumb(dimgs[col]), GREEN if rel else RED)
                ax.imshow(framed)
                label = ("%.2f" % d) if real else ("d=%d" % d)
                ax.set_title(label, fontsize=6)
                shown.append(rel)
                cells.append('<td class="%s"><img src="%s" alt="database %d"><div>%s</div></td>'
                             % ("rel" if rel else "irr", _png_uri(framed), i, html.escape(label)))
            ax.axis("off")
        axes[row][0].axis("off")
        rows_html.append("<tr>%s</tr>" % "".join(cells))
    prec = float(np.mean(shown)) if shown else 0.0
    title = "%s: %d seeded queries (seed %d), top %d; green = shares a label, red = not (precision shown %.2f)" % (
        os.path.basename(os.path.abspath(run_dir)), len(found), seed, top, prec)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    png = os.path.join(run_dir, "gallery%s.png" % run_folder.results_suffix(results))
    write_atomic(png, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    page = """<!doctype html><html><head><meta charset="utf-8"><title>%s</title>
<style>body{font-family:sans-serif;font-size:12px}td{text-align:center;padding:2px}
td.rel img{outline:3px solid rgb%s}td.irr img{outline:3px solid rgb%s}img{width:64px;height:64px}</style></head>
<body><h3>%s</h3><table>%s</table></body></html>
""" % (html.escape(title), GREEN, RED, html.escape(title), "\n".join(rows_html))
    page_path = os.path.join(run_dir, "gallery%s.html" % run_folder.results_suffix(results))
    write_atomic(page_path, page)
    return png, page_path, prec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name in ("results.json", "config.json"):
        if not os.path.isfile(os.path.join(args.run, name)):
            print("error: %s: no %s: not an evaluated run (make train ... first)" % (args.run, name), file=sys.stderr)
            return 2
    try:
        png, page, prec = write_gallery(args.run, args.queries, args.top, args.seed)
    except (DatasetError, OSError, KeyError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("gallery: %s, %s (precision of the images shown %.2f)" % (png, page, prec), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
