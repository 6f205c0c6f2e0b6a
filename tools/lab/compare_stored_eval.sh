#!/bin/bash
# A finished stored-mode run evaluated by OLD (a checkout from before a change) and by NEW (this
# one) on the same queries and a seeded 2,000-image database subset (its outputs at the cut stored
# first): the two MAPs, which must be identical. The run folder is copied, never touched.
#   OLD=/path/to/old/checkout RUN=runs/<a stored-mode run> [OUT=/tmp/stored-eval] bash tools/lab/compare_stored_eval.sh
set -euo pipefail
OLD=${OLD:?a checkout from before the change}
RUN=${RUN:?a finished stored-mode run folder}
NEW=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/stored-eval}
SQ=$NEW/weights/squeezenet_v1.0_dc
in_tree() { (cd "$1" && . tools/env.sh && shift && "$@"); }
args() { python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["identity"]; print("--bits %d --variant %s --seed %d" % (c["bits"], c["variant"], c["seed"]))' "$RUN/config.json"; }
# the run's backbone as it was given and its weights at the path they were stored with: the stored
# outputs' key holds both (OLD must reach weights/ by the same relative path)
SPEC=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["identity"]["backbone"])' "$RUN/config.json")
in_tree "$NEW" python -m dhn.subset "$NEW/data/cifar10/lmdb/database" --per-class 200 --name database_2000
rm -rf "$OUT" && mkdir -p "$OUT"
for tree in old new; do
  code=$NEW; [ $tree = old ] && code=$OLD
  cp -a "$RUN" "$OUT/run-$tree"
  in_tree "$code" python -m dhn.train --dataset cifar10 $(args) --upper 1 --backbone "$SPEC" \
      --weights "$SQ/squeezenet_v1.0_dc.caffemodel" --database database_2000 \
      --run "$OUT/run-$tree" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tail -2
done
python3 - "$OUT" <<'PY'
import json, os, sys
maps = {t: json.load(open(os.path.join(sys.argv[1], "run-" + t, "results-database_2000.json")))["map"] for t in ("old", "new")}
print("MAP old %r, new %r: %s" % (maps["old"], maps["new"], "identical" if maps["old"] == maps["new"] else "DIFFERENT"))
PY
