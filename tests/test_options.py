"""A run's command-line options declared once (dhn.options): every RunSettings field is an option
of dhn.train or said not to be one, the committed Makefile fragment is what the list generates,
`make train VAR=…` passes every variable on as its option, and dhn.train, dhn.sweep and dhn.table
parse an option to the same setting."""
import argparse
import dataclasses
import os
import subprocess

import pytest

from dhn import options, paths, sweep, table, train
from dhn.run_folder import RunSettings

ROOT = paths.root()


def test_every_setting_is_an_option_or_said_not_to_be():
    fields = [f.name for f in dataclasses.fields(RunSettings)]
    assert sorted(o.field for o in options.OPTIONS) + sorted(options.NOT_OPTIONS) == \
        sorted(set(fields) - set(options.NOT_OPTIONS)) + sorted(options.NOT_OPTIONS)
    assert len({o.flag for o in options.OPTIONS}) == len(options.OPTIONS)
    makes = [o.make for o in options.OPTIONS if o.make]
    assert len(set(makes)) == len(makes)


def test_the_committed_make_fragment_is_the_generated_one():
    with open(os.path.join(ROOT, options.FRAGMENT)) as fh:
        assert fh.read() == options.make_fragment(), "tools/run_options.mk is stale: run `make prototxt`"
    out = subprocess.run(["python", "-m", "dhn.options", "--check"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def _value(option):
    """A value of the option's Make variable and the words it must become on dhn.train's line."""
    if option.kind == "switch":
        return "1", [option.flag]
    if option.kind == "off":
        return "0", [option.flag]
    if option.kind == "both":
        return "0", ["--no-" + option.flag[2:]]
    value = {"mean": "1,2,3", "similar_weight": "balanced", "views": "10"}.get(option.field, "7")
    return value, [option.flag, value]


def test_make_train_passes_every_variable_on_as_its_option():
    passed = [o for o in options.OPTIONS if o.make]
    assert {o.group for o in passed} == {"TRAIN_ARGS", "MODEL_ARGS", "RUN_ARGS"}
    out = subprocess.run(["make", "-n", "-s", "train"] + ["%s=%s" % (o.make, _value(o)[0]) for o in passed],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    for o in passed:
        want = _value(o)[1]
        assert any(words[i:i + len(want)] == want for i in range(len(words))), (o.make, want, out.stdout)
    # and the line parses back to those settings
    line = words[words.index("dhn.train") + 1:]
    parsed = options.settings(_parser(train_defaults=True).parse_args(line))
    assert parsed.lr == 7.0 and parsed.mean == (1.0, 2.0, 3.0) and parsed.similar_weight == "balanced"
    assert parsed.feature_norm is False and parsed.shuffle is False and parsed.force and parsed.force_new
    unset = subprocess.run(["make", "-n", "-s", "train"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert unset.stdout.split()[-7:] == ["dhn.train", "--dataset", "cifar10", "--bits", "48", "--variant", "dhn"], \
        unset.stdout        # no variable set: no option but the three the Makefile always passes


def _parser(train_defaults=False):
    ap = argparse.ArgumentParser()
    options.add(ap, defaults=dict(dataset="cifar10", bits=48, variant="dhn") if train_defaults else None)
    return ap


def test_the_tools_read_an_option_alike(monkeypatch):
    """dhn.train, dhn.sweep and dhn.table take the options they share from one declaration: the
    same text gives the same setting (a bad value is refused by each with the same words)."""
    seen = {}
    monkeypatch.setattr(train, "run", lambda s: seen.setdefault("train", s) and {"map": 0.0})
    monkeypatch.setattr(sweep, "run", lambda s, *a: seen.setdefault("sweep", s) and ({"lr": 1, "lambda": 1, "map": 0}, 0))
    monkeypatch.setattr(table, "table", lambda *a, **k: seen.setdefault("table", (a, k)) and ({}, {}))
    common = ["--dataset", "demo", "--mean", "1,2,3", "--scale", "0.5", "--backbone", "d.prototxt:f", "--weights", "w",
              "--iters", "9"]
    assert train.main(common + ["--similar-weight", "balanced", "--no-feature-norm"]) == 0
    assert sweep.main(common + ["--similar-weight", "balanced", "--no-feature-norm"]) == 0
    assert table.main(common) == 0
    t, s = seen["train"], seen["sweep"]
    for field in ("dataset", "mean", "scale", "backbone", "weights", "iters", "similar_weight", "feature_norm"):
        assert getattr(t, field) == getattr(s, field), field
    a, k = seen["table"]
    assert (a[0], a[1], a[2], k["mean"], k["scale"]) == ("demo", "d.prototxt:f", "w", (1.0, 2.0, 3.0), 0.5)
    for main in (train.main, sweep.main, table.main):
        with pytest.raises(SystemExit) as e:
            main(["--mean", "1,2"])
        assert e.value.code == 2
