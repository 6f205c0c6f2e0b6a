"""Where a checkout keeps its things: the one place that reads DHN_ROOT (tools/env.sh sets it)."""
import os

CHECKOUT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def root():
    """The project root: $DHN_ROOT, read at each call (a test points it at a folder of its own),
    else the checkout this module sits in."""
    return os.environ.get("DHN_ROOT") or CHECKOUT


def alexnet_weights(root_dir=None):
    """Where `make weights` puts the paper's ImageNet AlexNet: the default --weights of the dataset's own net."""
    return os.path.join(root_dir or root(), "weights", "bvlc_alexnet.caffemodel")
