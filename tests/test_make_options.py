"""Every option a make verb passes to its tool is one that tool declares: each verb is dry-run
(`make -n`) with every variable the Makefile reads set, and each --option in the printed command
must appear in that tool's own --help (an undeclared one is an argparse error for the user)."""
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.environ["DHN_ROOT"]
MAKEFILE = open(os.path.join(ROOT, "Makefile")).read()
# the variables the Makefile turns into options: $(if $(X),...) and $(filter 1,$(X))
VARIABLES = sorted(set(re.findall(r"\$\((?:if |filter [01],)\s*\$\(([A-Z_]+)\)", MAKEFILE)))
VERBS = {"data": ["DATASET=cifar10", "DATASET=nuswide21", "DATASET=flickr25k"], "train": [""], "sweep": [""],
         "features": [""], "search": [""], "gallery": [""], "table-cpu": [""], "weights": [""], "demo": [""],
         "report": [""], "bench": [""], "prototxt": ["DATASET=cifar10"]}
# another dataset's variables: make passes them, and dhn.convert refuses them (argparse: unrecognized)
NOT_FOR = {"DATASET=cifar10": {"IMAGES", "LIST", "UNLABELED"}, "DATASET=nuswide21": {"SOURCE", "DOWNLOAD"},
           "DATASET=flickr25k": {"SOURCE", "DOWNLOAD"}}


def test_the_variables_are_found():
    assert {"FORCE", "INIT_FCH", "IMAGES", "LIST", "OUT", "MIRROR", "MODEL"} <= set(VARIABLES)


@pytest.mark.parametrize("verb, extra", [(v, e) for v, extras in VERBS.items() for e in extras])
def test_every_option_make_passes_is_declared(verb, extra):
    assigned = ["%s=1" % v for v in VARIABLES if v not in NOT_FOR.get(extra, ())] + ([extra] if extra else [])
    r = subprocess.run(["make", "-n", verb] + assigned, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.replace("\\\n", " ").splitlines() if "python -m dhn." in line]
    assert lines, r.stdout
    for line in lines:
        words = shlex.split(line.split("python -m ", 1)[1])
        module, args = words[0], words[1:]
        sub = [args[0]] if module == "dhn.convert" else []      # its dataset sub-command
        options = sorted({a for a in args if a.startswith("--")})
        helped = subprocess.run([sys.executable, "-m", module] + sub + ["--help"], capture_output=True, text=True,
                                timeout=120)
        assert helped.returncode == 0, helped.stderr
        missing = [o for o in options if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), helped.stdout)]
        assert not missing, "make %s passes %s, which %s does not declare" % (verb, ", ".join(missing),
                                                                             " ".join([module] + sub))
