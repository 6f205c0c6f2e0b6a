"""`make weights`: fetch BVLC AlexNet (ImageNet) weights and check them.

python -m dhn.weights [--url URL] [--out weights/bvlc_alexnet.caffemodel]

Source and checksum: ../shared/README.md §2 (BVLC's model zoo). The download goes to a
temporary name and is renamed only after its sha1 matches; an existing file is checked, not
fetched again. Offline, the error says where to put a copy obtained elsewhere.
"""
import argparse
import os
import sys
import urllib.request

from dhn import runlock
from dhn.atomic import write_atomic
from dhn.datasets import file_digest

ALEXNET_URL = "http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel"
ALEXNET_SHA1 = "9116a64c0fbe4459d18f4bb6b56d647b63920377"


class WeightsError(RuntimeError):
    pass


def check(path, sha1=ALEXNET_SHA1):
    got = file_digest(path, "sha1", progress=True)
    if got != sha1:
        raise WeightsError("%s: sha1 %s, expected %s (a partial or different file): delete it and "
                           "run `make weights` again" % (path, got, sha1))


def fetch(out, url=ALEXNET_URL, sha1=ALEXNET_SHA1, quiet=False):
    """Download ``url`` to ``out`` unless a checked copy is there; returns ``out``. One process at a
    time per folder (``out``.part is a fixed name): another one is a WeightsError naming its pid."""
    try:
        with runlock.hold(os.path.dirname(os.path.abspath(out))):
            return _fetch(out, url, sha1, quiet)
    except runlock.Busy as e:
        raise WeightsError(str(e)) from None


def _fetch(out, url, sha1, quiet):
    if os.path.exists(out):
        check(out, sha1)
        return out
    from tqdm import tqdm

    def download(tmp):
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as fh:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(out), disable=quiet) as bar:
                    for chunk in iter(lambda: resp.read(1 << 20), b""):
                        fh.write(chunk)
                        bar.update(len(chunk))
        except OSError as e:
            raise WeightsError("could not download %s (%s): fetch it elsewhere and put it at %s (sha1 %s)"
                               % (url, getattr(e, "reason", e), out, sha1))
        try:
            check(tmp, sha1)
        except WeightsError:
            raise WeightsError("%s: downloaded file's sha1 does not match %s; nothing kept, try again" % (url, sha1))
    write_atomic(out, download, tmp=out + ".part")     # nothing but a checked file is kept
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=ALEXNET_URL)
    ap.add_argument("--out", default=os.path.join(os.environ.get("DHN_ROOT", "."), "weights", "bvlc_alexnet.caffemodel"))
    args = ap.parse_args(argv)
    try:
        print(fetch(args.out, args.url))
    except WeightsError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
