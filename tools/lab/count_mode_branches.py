"""How many places branch on a run's mode: code lines of tools/dhn/ and layers/ (not docstrings or
comments) holding a condition (if/elif/while, a conditional expression, and/or) that tests the mode,
by an option flag (features, upper, init_fch), a backbone dict key (the form before netgen.Backbone)
or a typed kind (Backbone.kind, RunSettings.mode, netgen.BUILT/FOREIGN/FEATURES/STORED). The last
line also counts the sites that test an option flag or a dict key directly. A pattern count, so it
has false hits (a variable named features); compare two trees with it, not with another measure.

    python3 tools/lab/count_mode_branches.py [TREE]"""
import collections
import glob
import os
import re
import sys

MODE = re.compile(r'(\.|\b)(features|upper|init_fch)\b(?!\s*=)|bb\.get\(|"layers" (not )?in|\["(stored|features)"\]|\.kind\b'
                  r'|whole_foreign_net|\.mode\b|\b(BUILT|FOREIGN|FEATURES|STORED)\b|\.spliced\b|\.takes_images\b')
COND = re.compile(r'^\s*(if|elif|while)\b|\bif\b.*\belse\b|\band\b|\bor\b')
RAW = re.compile(r'(\.|\b)(features|upper)\b(?!\s*=)|bb\.get\(|"layers" (not )?in|\["(stored|features)"\]')


def main(tree="."):
    os.chdir(tree)
    counts = collections.Counter()
    raw = collections.Counter()
    for f in sorted(glob.glob("tools/dhn/*.py") + glob.glob("layers/*.py")):
        in_doc = False
        for line in open(f):
            n = line.count('"""')
            if in_doc or n:
                if n % 2:
                    in_doc = not in_doc
                continue
            s = line.split("#")[0]
            if COND.search(s) and MODE.search(s):
                counts[f] += 1
                raw[f] += bool(RAW.search(s))
    for f, n in counts.most_common():
        print("%3d %s" % (n, f))
    print("modules %d, sites %d; of them testing an option flag or dict key directly: %d in %d modules (%s)" % (len(counts), sum(counts.values()), sum(raw.values()), len(+raw), ", ".join("%s %d" % (os.path.basename(k), v) for k, v in (+raw).most_common())))



if __name__ == "__main__":
    main(*sys.argv[1:])
