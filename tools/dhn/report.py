"""`make report`: gather runs/*/results.json (and results-<database>.json, a run evaluated on another
database) into tables laid out like the paper's, with every
number traceable to the configuration that produced it.

python -m dhn.report [--runs runs] [--out runs/report.md]

One table per dataset; columns are code lengths. Each row is one configuration: a variant plus
everything that sets it apart from the paper's setting (backbone, frozen features, iterations,
database, lr, λ, ...), read from the run's own results.json. Runs are averaged only when their
configurations are identical but for the seed ("0.612 ± 0.004 (3)", sample s.d.); never the best
of them (a pitfall of other codebases, docs/FIDELITY.md). A run without a recorded configuration (an
older layout) gets a row of its own, marked so. The paper's row holds only numbers a cited source
gives (PAPER_SOURCES); every other paper cell is "—". Baselines on a backbone's features
(dhn.baselines: LSH, cosine) found in runs/baselines-*/ are added under their database.
Also writes report_map_vs_bits.png beside the report. Sweep grids (runs/sweep-*) are validation
results and are not read.
"""
import argparse
import collections
import glob
import json
import os
import sys

import numpy as np

from dhn import kept, paths, run_folder
from dhn.atomic import write_atomic
from dhn.split_folder import short_backbone
from dhn.datasets import DatasetError, read_json

VARIANTS = ("dhn", "dhn-b", "dhn-q", "dhn-e")
BITS = (12, 24, 32, 48)
DATASET_ORDER = ("cifar10", "nuswide21", "flickr25k")
TITLES = {"cifar10": "CIFAR-10", "nuswide21": "NUS-WIDE (21 concepts)", "flickr25k": "MIRFlickr-25K"}
VARIANT_NAMES = {"dhn": "DHN", "dhn-b": "DHN-B", "dhn-q": "DHN-Q", "dhn-e": "DHN-E"}

# DHN's MAP (Hamming ranking) as a source available to the project gives it, with that source.
# CIFAR-10: Zhu et al., "Deep Hashing Network for Efficient Similarity Retrieval", AAAI 2016,
# Table 1, reprinted in Lu et al., "Deep Binary Representation for Efficient Image Retrieval",
# Advances in Multimedia 2017, Table 3. NUS-WIDE 48 bits: the "paper" column of the README of
# swuxyj/DeepHash-pytorch. No source at hand confirms DHN's NUS-WIDE 12-32 bits, its Flickr row
# or any DHN-B/-Q/-E number: those cells stay "—".
PAPER = {
    ("cifar10", "dhn"): {12: 0.555, 24: 0.594, 32: 0.603, 48: 0.621},
    ("nuswide21", "dhn"): {48: 0.758},
}
PAPER_SOURCES = {
    "cifar10": "Zhu et al. 2016, Table 1, as reprinted in Lu et al. 2017 (Adv. Multimedia), Table 3",
    "nuswide21": "48 bits only: the paper column of swuxyj/DeepHash-pytorch's README",
}
# Where our protocol differs from the authors' whatever the run (docs/FIDELITY.md).
PROTOCOL_NOTES = {
    "nuswide21": "database = all images outside train/query (183,234), the authors' lists had 149,736",
    "flickr25k": "split 4,000 train / 1,000 query / rest database (no official DHN split)",
}
# The paper's setting, against which each row says what differs.
PAPER_SETTING = {"backbone": "alexnet", "mode": "fine-tuned", "max_iter": 3000, "alpha": 1.0, "shuffle": True,
                 "backbone_lr_mult": 1.0, "init_fch": None, "batch": 64}
FULL_DATABASE = {"cifar10": 54000}


def paper_map(dataset, variant, bits):
    return PAPER.get((dataset, variant), {}).get(bits)


def load_runs(runs_dir):
    """[results dict + "run" name] for every runs_dir/*/results.json (the run on its dataset's own
    database) and results-<database>.json (on another: run_folder.results_name) with the keys a table
    needs; the latter are named RUN/results-<database>.json."""
    runs = []
    paths = glob.glob(os.path.join(runs_dir, "*", "results.json")) + glob.glob(os.path.join(runs_dir, "*", "results-*.json"))
    for path in sorted(paths):
        name = os.path.basename(os.path.dirname(path))
        if os.path.basename(path) != "results.json":
            name += "/" + os.path.basename(path)
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


def load_baselines(runs_dir):
    """Every runs_dir/baselines-*/baselines.json; a corrupt one is a DatasetError (one line)."""
    out = []
    for path in sorted(glob.glob(os.path.join(runs_dir, "baselines-*", "baselines.json"))):
        doc = read_json(path, "run python -m dhn.baselines again for it, or delete %s" % os.path.dirname(path))
        if not isinstance(doc, dict):
            raise DatasetError("%s: not a baselines document (a JSON object): run python -m dhn.baselines again "
                               "for it, or delete %s" % (path, os.path.dirname(path)))
        out.append(dict(doc, name=os.path.basename(os.path.dirname(path))))
    return out


def _alpha_per_bits(run):
    """α·K rounded, where α is a whole number over the code length (10/K: one setting at every K)."""
    alpha, bits = run.get("alpha"), run.get("bits")
    if not isinstance(alpha, (int, float)) or not isinstance(bits, int) or alpha == 1.0:
        return None
    per = alpha * bits
    return round(per) if abs(per - round(per)) < 1e-6 else None


def _alpha_text(run):
    per = _alpha_per_bits(run)
    return "%d/K" % per if per else "%g" % run["alpha"]


def _lambda(run):
    return run.get("lambda", run.get("lambda_", 0))


def _without_lambda(run):
    return {k: v for k, v in run.items() if k not in ("lambda", "lambda_")}


def _lambda_text(lambdas):
    """'λ 0.1', or 'λ 1 / 0.3 / 0.1 at 12 / 24 / 48 bits' where it was chosen per length."""
    values = sorted(set(lambdas.values()))
    if len(values) == 1:
        return "λ %g" % values[0]
    bits = sorted(lambdas)
    return "λ %s at %s bits" % (" / ".join("%g" % lambdas[b] for b in bits), " / ".join(str(b) for b in bits))


def setting(run, lambdas=None):
    """The row label's tail: how the run's configuration differs from the paper's, plus lr and λ
    (which the paper cross-validated). None for a run without a recorded configuration."""
    if "lr" not in run or "mode" not in run:
        return None
    parts = []
    backbone = run.get("backbone")
    if backbone and backbone != PAPER_SETTING["backbone"]:
        parts.append("backbone " + short_backbone(backbone))
    if run.get("mode") != PAPER_SETTING["mode"]:
        parts.append(run["mode"])
    if run.get("max_iter") != PAPER_SETTING["max_iter"]:
        parts.append("%s iterations" % run.get("max_iter"))
    if run.get("alpha", 1.0) != 1.0:
        parts.append("α %s" % _alpha_text(run))
    if run.get("similar_weight", 1.0) == "balanced":
        parts.append("balanced pairs")
    elif run.get("similar_weight", 1.0) != 1.0:
        parts.append("similar pairs ×%g" % run["similar_weight"])
    if run.get("shuffle") is False:
        parts.append("no reshuffle")
    if run.get("backbone_lr_mult", 1.0) != 1.0:
        parts.append("%s lr ×%g" % ("upper layers'" if run.get("upper") else "backbone", run["backbone_lr_mult"]))
    if run.get("views") not in (None, 2):
        parts.append("%d stored views an image" % run["views"])
    if run.get("init_fch"):
        parts.append("warm-started from a fitted head")
    if run.get("bn_recalibration"):
        parts.append("BatchNorm recomputed after training")
    if run.get("batch", 64) != 64:
        parts.append("batch %d" % run["batch"])
    full = FULL_DATABASE.get(run["dataset"])
    if run.get("database", "database") != "database" or (full and run.get("n_database") not in (None, full)):
        parts.append("database %s (%s images)" % (run.get("database", "?"), format(run.get("n_database", 0), ",")))
    parts.append("lr %g, %s" % (run["lr"], _lambda_text(lambdas or {run.get("bits"): _lambda(run)})))
    return ", ".join(parts)


# What evaluation measures (it differs from seed to seed; R, ranking and the split sizes describe the
# protocol and stay in the key), and where/with which commit a run ran.
RESULT_KEYS = ("map", "ap", "pr_curve", "precision_at_n", "precision_hamming2", "precision_radius", "radius",
               "eval_seconds", "random_ranking_map", "demo_seconds")
# How a result was measured, beside the run's identity: the queries, the database, their sizes, R.
PROTOCOL_KEYS = ("query", "database", "n_query", "n_database", "R", "ranking")
# What must be equal for two runs to share a cell: the run's identity (run_folder.RunIdentity) but
# its seed and length (a row spans the lengths), and the protocol.
GROUP_KEYS = tuple(k for k in run_folder.IDENTITY if k not in ("seed", "bits")) + PROTOCOL_KEYS


def config_key(run):
    """The GROUP_KEYS of a run, for grouping its results with other seeds'; a key recorded as None,
    or not at all, is one a run from before that key existed lacks (run_folder.check_same_config
    reads such runs the same way). A run without a recorded configuration is its own."""
    if setting(run) is None:
        return ("unrecorded", run["run"])
    per = _alpha_per_bits(run)
    run = dict(run, alpha="%d/K" % per) if per else run     # 10/K at every length is one configuration
    # one backbone wherever its file lay (its weights' sha256 is recorded): runs from several machines;
    # λ as older results spelled it too
    run = dict(run, backbone=short_backbone(run.get("backbone")), **{"lambda": run.get("lambda", run.get("lambda_"))})
    return tuple(sorted((k, json.dumps(run[k], sort_keys=True)) for k in GROUP_KEYS if run.get(k) is not None))


def _cell(maps):
    if not maps:
        return "—"
    if len(maps) == 1:
        return "%.3f" % maps[0]
    return "%.3f ± %.3f (%d)" % (np.mean(maps), np.std(maps, ddof=1), len(maps))


def _depth(runs):
    depths = sorted({"all" if r.get("R") in (None, r.get("n_database")) else str(r["R"]) for r in runs})
    return "MAP over the whole database" if depths == ["all"] else "MAP@" + "/".join(depths)


def rows_of(mine):
    """[(label, variant, {bits: [maps]}, runs)] — one row per (variant, configuration but bits/seed)."""
    groups = {}
    for r in mine:
        # λ may be chosen per length (netgen.HEAD_DEFAULTS, a sweep per length): one row, its λ
        # named per length. Where runs of one length differ in λ, the λ most of them share stays
        # in that row and each other λ gets its own (a one-off λ beside three seeds of the default);
        # with no such majority at some length, a row per λ.
        key = (r["variant"], config_key(_without_lambda(r)))
        groups.setdefault(key, []).append(r)
    split = {}
    for (variant, key), runs in groups.items():
        per_bits = {}
        for r in runs:
            per_bits.setdefault(r.get("bits"), collections.Counter())[_lambda(r)] += 1
        main = {}                                   # length -> the λ that keeps the row
        for bits, counts in per_bits.items():
            (top, n), *others = counts.most_common()
            if others and others[0][1] == n:
                main = None
                break
            main[bits] = top
        for r in runs:
            lam = _lambda(r)
            in_main = main is not None and main[r.get("bits")] == lam
            split.setdefault((variant, key, None if in_main else lam), []).append(r)
    rows = []
    for (variant, _, _), runs in split.items():
        tail = setting(runs[0], {r.get("bits"): _lambda(r) for r in runs})
        label = "%s — %s" % (VARIANT_NAMES.get(variant, variant), tail if tail else "configuration not recorded (%s)"
                                % runs[0]["run"])
        cells = {}
        for r in runs:
            cells.setdefault(int(r["bits"]), []).append(r["map"])
        rows.append((label, variant, cells, runs))
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(rows, key=lambda row: (order.get(row[1], len(order)), row[0]))


def tables(runs, baselines=()):
    """Markdown text: one table per dataset that has runs."""
    datasets = sorted({r["dataset"] for r in runs},
                      key=lambda d: (DATASET_ORDER.index(d) if d in DATASET_ORDER else len(DATASET_ORDER), d))
    out = ["# MAP of Hamming ranking: ours and the paper's", "",
           "Each row is one configuration; a cell averages the runs that differ only by seed (mean ± s.d. (runs)). "
           "The paper's row holds only numbers a cited source gives (— otherwise).", ""]
    for ds in datasets:
        mine = [r for r in runs if r["dataset"] == ds]
        bits = sorted(set(BITS) | {int(r["bits"]) for r in mine}) if ds in DATASET_ORDER else \
            sorted({int(r["bits"]) for r in mine})
        out += ["## %s (%s)" % (TITLES.get(ds, ds), _depth(mine)), "",
                "| configuration | " + " | ".join("%d bits" % b for b in bits) + " |",
                "|---" * (len(bits) + 1) + "|"]
        for v in VARIANTS:
            if (ds, v) in PAPER:
                out.append("| %s — paper | %s |" % (VARIANT_NAMES[v], " | ".join(
                    "—" if paper_map(ds, v, b) is None else "%.3f" % paper_map(ds, v, b) for b in bits)))
        for label, _, cells, _ in rows_of(mine):
            out.append("| %s | %s |" % (label, " | ".join(_cell(cells.get(b, [])) for b in bits)))
        for bl in baselines:
            if bl.get("dataset", ds) != ds or not any(r.get("n_database") == bl["n_database"] for r in mine):
                continue
            feats = os.path.basename(bl["features"])
            lsh = {int(k): v for k, v in bl["lsh"].items()}
            out.append("| LSH on %s features, database %s (%s) | %s |" % (
                feats, bl["database"], format(bl["n_database"], ","), " | ".join(_cell(lsh.get(b, [])) for b in bits)))
            out.append("| cosine on %s features (real-valued), database %s | %s |" % (
                feats, bl["database"], " | ".join("%.3f" % bl["cosine"] for _ in bits)))
            if "probe" in bl:
                out.append("| linear probe on %s features (softmax posteriors, real-valued), database %s | %s |" % (
                    feats, bl["database"], " | ".join("%.3f" % bl["probe"] for _ in bits)))
        out.append("")
        if ds in PAPER_SOURCES:
            out.append("Paper numbers: " + PAPER_SOURCES[ds] + ".")
        if ds in PROTOCOL_NOTES:
            out.append("Protocol: " + PROTOCOL_NOTES[ds] + ".")
        out.append("Runs: " + ", ".join(sorted(r["run"] for r in mine)))
        out.append("")
    if not datasets:
        out += ["No runs yet: train one with `make train DATASET=... BITS=... VARIANT=...`.", ""]
    return "\n".join(out)


def plot(runs, baselines, png):
    """MAP vs bits, one line per (dataset, configuration), baselines dashed."""
    if not runs:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import textwrap
    fig, ax = plt.subplots(figsize=(11, 5.5))
    ticks = set(BITS)
    datasets = sorted({r["dataset"] for r in runs})
    for ds in datasets:
        mine = [r for r in runs if r["dataset"] == ds]
        # several datasets share the axes: every label says which one it is
        tag = ("%s: " % TITLES.get(ds, ds)) if len(datasets) > 1 else ""
        for label, _, cells, _ in rows_of(mine):
            b = sorted(cells)
            ticks |= set(b)
            ax.errorbar(b, [np.mean(cells[k]) for k in b], yerr=[np.std(cells[k], ddof=1) if len(cells[k]) > 1 else 0
                                                                 for k in b], marker="o", capsize=3,
                        label=textwrap.fill(tag + label, 60))
        for v in VARIANTS:
            if (ds, v) in PAPER:
                pts = sorted(PAPER[(ds, v)].items())
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "k:", marker="x", label="%s%s paper" % (tag, VARIANT_NAMES[v]))
        for bl in baselines:
            if any(r.get("n_database") == bl["n_database"] for r in mine):
                lsh = sorted((int(k), np.mean(v)) for k, v in bl["lsh"].items())
                ax.plot([p[0] for p in lsh], [p[1] for p in lsh], "--", marker="s", color="gray",
                        label="%sLSH (%s)" % (tag, bl["database"]))
                ax.axhline(bl["cosine"], ls="-.", color="gray", lw=1, label="%scosine (%s)" % (tag, bl["database"]))
                if "probe" in bl:
                    ax.axhline(bl["probe"], ls="-", color="black", lw=1, label="%slinear probe (%s)" % (tag, bl["database"]))
    ax.set_xlabel("bits")
    ax.set_ylabel("MAP")
    ax.set_xticks(sorted(ticks))
    ax.grid(alpha=0.3)
    # beside the axes, never on them: with many rows an inside legend hid the paper's curve
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    # bbox_inches="tight" sizes the figure to the axes and the legend outside them (tight_layout
    # cannot: it only fits the axes into the figure, and warns with a tall legend)
    write_atomic(png, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return png


def main(argv=None):
    root = paths.root()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", action="append", help="a folder of run folders; repeat for several (default: runs "
                    "and the kept results, %s/; a run in both is read from the first)" % kept.FOLDER)
    ap.add_argument("--out", default=None, help="default: runs/report.md")
    args = ap.parse_args(argv)
    folders = args.runs or [os.path.join(root, "runs"), kept.folder(root)]
    present = [f for f in folders if os.path.isdir(f)]
    if not present:
        print("error: %s: no such folder: give the folder that holds the run folders (--runs; make train writes "
              "runs/NAME/, make keep copies a run's results into %s/)" % (" or ".join(folders), kept.FOLDER),
              file=sys.stderr)
        return 2
    try:
        runs, baselines = load_all(present)
    except DatasetError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    text = tables(runs, baselines)
    out = args.out or os.path.join(args.runs[0] if args.runs else os.path.join(root, "runs"), "report.md")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_atomic(out, text)
    print(text)
    png = plot(runs, baselines, os.path.splitext(out)[0] + "_map_vs_bits.png")
    print("wrote %s%s" % (out, " and " + png if png else ""), file=sys.stderr)
    return 0


def load_all(folders):
    """(runs, baselines) of several folders of run folders; a run or baselines folder of the same
    name in two of them (runs/ and its kept copy) is read once, from the first."""
    runs, baselines, seen_runs, seen_baselines = [], [], set(), set()
    for f in folders:
        runs += [r for r in load_runs(f) if r["run"] not in seen_runs]
        seen_runs |= {r["run"] for r in runs}
        baselines += [b for b in load_baselines(f) if b["name"] not in seen_baselines]
        seen_baselines |= {b["name"] for b in baselines}
    return runs, baselines


if __name__ == "__main__":
    sys.exit(main())
