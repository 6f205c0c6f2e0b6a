"""Two stored folders of the same backbone and cut, made by two storing engines (dhn.stored
--engine caffe / opencv): how far their stored outputs differ, and whether a trained stored-mode
run's codes of the queries differ through them (docs/BENCHMARKS.md, CPU speed against the peak).

    . tools/env.sh && python tools/lab/compare_stored_engines.py STORED_A STORED_B RUN [SPLIT ...]

STORED_*: data/<dataset>/stored/<net>-<cut> folders (from two checkouts, or one renamed aside);
RUN: a finished stored-mode run on that cut. Prints one JSON document."""
import json
import os
import sys

import numpy as np

from dhn import blobs, run_folder, split_folder, stored


def compare(a_dir, b_dir, run, splits=("query", "train")):
    out = {}
    for split in splits:
        a, ma = split_folder.read_blobs(os.path.join(a_dir, split))
        b, mb = split_folder.read_blobs(os.path.join(b_dir, split))
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        d = np.abs(a - b)
        out[split] = dict(engines=[ma.get("engine"), mb.get("engine")], max_abs_diff=float(d.max()),
                          max_abs=float(np.abs(a).max()), frac_values_differ=float((d > 0).mean()),
                          img_per_s=[ma.get("images_per_s"), mb.get("images_per_s")])
    deploy, model = os.path.join(run, "deploy.prototxt"), run_folder.final_model(run)
    za = blobs.encode_blobs(deploy, model, os.path.join(a_dir, "query"), progress=False)
    zb = blobs.encode_blobs(deploy, model, os.path.join(b_dir, "query"), progress=False)
    out["query_codes"] = dict(max_abs_diff=float(np.abs(za - zb).max()),
                              frac_bits_differ=float((np.sign(za) != np.sign(zb)).mean()), bits=int(za.size))
    return out


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    print(json.dumps(compare(sys.argv[1], sys.argv[2], sys.argv[3], tuple(sys.argv[4:]) or ("query", "train")),
                     indent=1))
