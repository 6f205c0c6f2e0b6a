"""python -m dhn.bench [NAME ...]: run the benchmarks, print the table, write runs/bench.json."""
import argparse
import importlib
import json
import os
import pkgutil
import sys

import dhn.bench as pkg
from dhn import paths
from dhn.atomic import write_atomic


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("only", nargs="*", help="module names to run (default: all bench_* modules)")
    ap.add_argument("--out", default=os.path.join(paths.root(), "runs", "bench.json"))
    args = ap.parse_args(argv)
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if n in args.only or n[len("bench_"):] in args.only]
    figures, failed = [], []
    for name in names:
        print("== %s" % name, file=sys.stderr, flush=True)
        try:
            figures += importlib.import_module("dhn.bench." + name).run()
        except Exception as e:     # one broken bench must not cost the others' figures (some take minutes)
            import traceback
            traceback.print_exc()
            failed.append(name)
            print("== %s failed: %s: %s" % (name, type(e).__name__, e), file=sys.stderr, flush=True)
    print("%-44s %14s  %-8s %9s  %s" % ("figure", "value", "unit", "ratio", "compared with"))
    for f in figures:
        ratio = "" if f.ratio is None else "%.3g" % f.ratio
        print("%-44s %14.6g  %-8s %9s  %s" % (f.name, f.value, f.unit, ratio, f.versus))
    flat = {}
    for f in figures:
        flat[f.name] = f.value
        if f.ratio is not None:
            flat[f.name + ".ratio"] = f.ratio
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_atomic(args.out, json.dumps(flat, indent=1, sort_keys=True))
    print("wrote %s" % args.out, file=sys.stderr)
    if failed:
        print("failed: %s (their figures are missing)" % ", ".join(failed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
