"""`make report`: gather runs/*/results.json into markdown tables laid out like the paper's:
one table per dataset, rows = variants, columns = code lengths, our MAP beside the paper's.

python -m dhn.report [--runs runs] [--out runs/report.md]

A cell is "ours / paper". Several runs of one (dataset, variant, bits) are averaged and their
count shown ("0.612 ±0.004, 3 runs"): never the best of them (../shared/README.md §3).
Only top-level run folders count (runs/NAME/results.json); sweep grids (runs/sweep-*/...) are
validation results and are not read.
"""
import argparse
import glob
import json
import os
import sys

import numpy as np

VARIANTS = ("dhn", "dhn-b", "dhn-q", "dhn-e")
BITS = (12, 24, 32, 48)
DATASET_ORDER = ("cifar10", "nuswide21", "flickr25k")
TITLES = {"cifar10": "CIFAR-10", "nuswide21": "NUS-WIDE (21 concepts)", "flickr25k": "MIRFlickr-25K"}
VARIANT_NAMES = {"dhn": "DHN", "dhn-b": "DHN-B", "dhn-q": "DHN-Q", "dhn-e": "DHN-E"}

# MAP of DHN in the paper (Zhu et al., AAAI 2016, Table 1) at 12/24/32/48 bits, as given in
# issue 6. The ablation variants' numbers are left out: not known here with certainty.
PAPER = {
    ("cifar10", "dhn"): (0.555, 0.594, 0.603, 0.621),
    ("nuswide21", "dhn"): (0.708, 0.735, 0.748, 0.758),
    ("flickr25k", "dhn"): (0.721, 0.733, 0.740, 0.747),
}


def paper_map(dataset, variant, bits):
    row = PAPER.get((dataset, variant))
    return row[BITS.index(bits)] if row and bits in BITS else None


def load_runs(runs_dir):
    """[results dict + "run" name] for every runs_dir/*/results.json with the keys a table needs."""
    runs = []
    for path in sorted(glob.glob(os.path.join(runs_dir, "*", "results.json"))):
        name = os.path.basename(os.path.dirname(path))
        try:
            with open(path) as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as e:
            print("dhn.report: skipping %s (%s)" % (path, e), file=sys.stderr)
            continue
        missing = [k for k in ("dataset", "bits", "variant", "map") if k not in doc]
        if missing:
            print("dhn.report: skipping %s (no %s)" % (path, ", ".join(missing)), file=sys.stderr)
            continue
        doc["run"] = name
        runs.append(doc)
    return runs


def _cell(maps, paper):
    if not maps:
        ours = "—"
    elif len(maps) == 1:
        ours = "%.3f" % maps[0]
    else:
        ours = "%.3f ±%.3f, %d runs" % (np.mean(maps), np.std(maps, ddof=1), len(maps))
    return "%s / %s" % (ours, "—" if paper is None else "%.3f" % paper)


def _depth(runs):
    """How deep the MAP looked, from the runs' own R: "MAP@5000" or "MAP over the whole database"."""
    depths = sorted({"all" if r.get("R") in (None, r.get("n_database")) else str(r["R"]) for r in runs})
    return "MAP over the whole database" if depths == ["all"] else "MAP@" + "/".join(depths)


def tables(runs):
    """Markdown text: one table per dataset that has runs."""
    datasets = sorted({r["dataset"] for r in runs},
                      key=lambda d: (DATASET_ORDER.index(d) if d in DATASET_ORDER else len(DATASET_ORDER), d))
    out = ["# MAP: ours / paper", "",
           "Each cell: our MAP / the paper's (— = no run yet, or no paper number known here).", ""]
    for ds in datasets:
        mine = [r for r in runs if r["dataset"] == ds]
        bits = sorted(set(BITS) | {int(r["bits"]) for r in mine}) if ds in DATASET_ORDER else \
            sorted({int(r["bits"]) for r in mine})
        variants = list(VARIANTS) + sorted({r["variant"] for r in mine} - set(VARIANTS))
        out += ["## %s (%s)" % (TITLES.get(ds, ds), _depth(mine)), "",
                "| variant | " + " | ".join("%d bits" % b for b in bits) + " |",
                "|---" * (len(bits) + 1) + "|"]
        for v in variants:
            cells = [_cell([r["map"] for r in mine if r["variant"] == v and int(r["bits"]) == b],
                           paper_map(ds, v, b)) for b in bits]
            out.append("| %s | %s |" % (VARIANT_NAMES.get(v, v), " | ".join(cells)))
        out.append("")
        out.append("Runs: " + ", ".join(sorted(r["run"] for r in mine)))
        out.append("")
    if not datasets:
        out += ["No runs yet: train one with `make train DATASET=... BITS=... VARIANT=...`.", ""]
    return "\n".join(out)


def main(argv=None):
    root = os.environ.get("DHN_ROOT", ".")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=os.path.join(root, "runs"))
    ap.add_argument("--out", default=None, help="default: RUNS/report.md")
    args = ap.parse_args(argv)
    text = tables(load_runs(args.runs))
    out = args.out or os.path.join(args.runs, "report.md")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(out + ".tmp", out)
    print(text)
    print("wrote %s" % out, file=sys.stderr)


if __name__ == "__main__":
    main()
