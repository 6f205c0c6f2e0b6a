#!/bin/bash
# Frozen features in the older format (a features/ LMDB of float Datums) against stored outputs
# (dhn.blobs, float32, one view), on real CIFAR-10 with SqueezeNet: the features of train, query
# and a seeded 2,000-image database subset made by OLD (a checkout from before the change),
# converted by NEW, and made afresh by NEW; one frozen 48-bit run on each. Prints whether the
# features are equal and the three MAPs.
#   OLD=/path/to/old/checkout [OUT=/tmp/frozen-formats] bash tools/lab/compare_frozen_formats.sh
set -euo pipefail
OLD=${OLD:?a checkout from before the change}
NEW=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/frozen-formats}
DATA=$NEW/data/cifar10/lmdb
SQ=$NEW/weights/squeezenet_v1.0_dc
BB="--backbone $SQ/deploy.prototxt:pool_final --weights $SQ/squeezenet_v1.0_dc.caffemodel"
SPLITS=train,query,database_2000
in_tree() { (cd "$1" && . tools/env.sh && shift && "$@"); }
mkdir -p "$OUT"
in_tree "$NEW" python -m dhn.subset "$DATA/database" --per-class 200 --name database_2000
in_tree "$OLD" python -m dhn.features --dataset cifar10 $BB --splits $SPLITS --data "$DATA" --out "$OUT/old"
rm -rf "$OUT/converted" && cp -a "$OUT/old" "$OUT/converted"
in_tree "$NEW" python -m dhn.features --dataset cifar10 $BB --splits $SPLITS --data "$DATA" --out "$OUT/converted"
in_tree "$NEW" python -m dhn.features --dataset cifar10 $BB --splits $SPLITS --data "$DATA" --out "$OUT/new"
for tree in old converted new; do
  code=$NEW; [ $tree = old ] && code=$OLD
  in_tree "$code" python -m dhn.train --dataset cifar10 --bits 48 --features $BB --data "$OUT/$tree" \
      --database database_2000 --run "$OUT/run-$tree" 2>&1 | tr "\r" "\n" | grep -v "^\s*$" | tail -2
done
in_tree "$NEW" python - "$OUT" <<'PY'
import json, os, sys
import numpy as np
from dhn import lmdb_io
out = sys.argv[1]
for split in ("train", "query", "database_2000"):
    old = np.stack([lmdb_io.datum_array(d).reshape(-1) for d in lmdb_io.read(os.path.join(out, "old", split, "features"))])
    conv = np.load(os.path.join(out, "converted", split, "blobs.npy")).reshape(len(old), -1)
    new = np.load(os.path.join(out, "new", split, "blobs.npy")).reshape(len(old), -1)
    print("%s: %d×%d features; converted == older: %s; made afresh == older: %s (max |diff| %.3g)"
          % (split, *old.shape, np.array_equal(conv, old), np.array_equal(new, old), np.abs(new - old).max()))
for tree in ("old", "converted", "new"):
    res = json.load(open(os.path.join(out, "run-" + tree, "results-database_2000.json")))
    print("MAP %-9s %r" % (tree, res["map"]))
PY
