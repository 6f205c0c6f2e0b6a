"""dhn's tools: importable functions behind thin command-line mains (python -m dhn.<tool>)."""
import os

# In-process pycaffe (encoding, benchmarks) would print every net it builds; keep warnings.
# dhn.train's `caffe train` child sets its own level: its INFO log is what the tool reads.
os.environ.setdefault("GLOG_minloglevel", "1")
