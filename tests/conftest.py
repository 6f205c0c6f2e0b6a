"""Shared test set-up. Tests run under tools/env.sh (`make test`), so pycaffe, layers/ and
tools/ are importable. Helper modules that write tiny real-format data live beside the tests
(tests/datagen.py, ...) and are imported by name: this folder is put on sys.path here."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
# Caffe's glog INFO lines drown pytest's output; warnings and errors still show.
os.environ.setdefault("GLOG_minloglevel", "2")
# a hung `caffe train` under dhn.train stops with a TrainError instead of holding CI (train_time_limit)
os.environ.setdefault("DHN_TRAIN_TIMEOUT", "1800")

import pytest  # noqa: E402

if "DHN_ROOT" not in os.environ:
    raise pytest.UsageError("run the tests through `make test` (it sources tools/env.sh)")
