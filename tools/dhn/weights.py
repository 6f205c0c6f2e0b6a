"""`make weights`: fetch an ImageNet-pretrained backbone from its public source and check it.

python -m dhn.weights [--model alexnet|squeezenet] [--mirror DIR_OR_URL] [--out CAFFEMODEL] [--url URL]

alexnet (default): BVLC AlexNet from BVLC's model zoo (docs/USAGE.md "Downloads"), sha1-checked, to
weights/bvlc_alexnet.caffemodel.

squeezenet: SqueezeNet v1.0 as released with Deep Compression (the stand-in backbone of
docs/USAGE.md "Downloads"), from the public repository songhan/SqueezeNet-Deep-Compression at
commit fb13faa: its compressed_SqueezeNet.net and SqueezeNet_deploy.prototxt (checksums
pinned) go to weights/squeezenet_v1.0_dc/source/, and the net is decoded (dhn.deepcompression)
into an ordinary weights/squeezenet_v1.0_dc/squeezenet_v1.0_dc.caffemodel (sha256 pinned) with
deploy.prototxt beside it: use it as BACKBONE=weights/squeezenet_v1.0_dc/deploy.prototxt:pool_final
WEIGHTS=weights/squeezenet_v1.0_dc/squeezenet_v1.0_dc.caffemodel.

--mirror: a folder or URL that holds the same file names (bvlc_alexnet.caffemodel;
compressed_SqueezeNet.net and SqueezeNet_deploy.prototxt), used instead of the public source,
e.g. a copy obtained elsewhere. --url: AlexNet's file itself.

Every file is written under a temporary name and renamed only once its checksum matches; an
existing file is checked, not fetched again. Offline, the error says where to put a copy.
"""
import argparse
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dhn import paths, runlock
from dhn.atomic import write_atomic
from dhn.datasets import file_digest


@dataclass(frozen=True)
class Source:
    """One file at its public address, pinned by a checksum."""
    name: str       # its file name there, and in a mirror
    url: str
    algo: str
    digest: str


ALEXNET_URL = "http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel"
ALEXNET_SHA1 = "9116a64c0fbe4459d18f4bb6b56d647b63920377"
ALEXNET = Source("bvlc_alexnet.caffemodel", ALEXNET_URL, "sha1", ALEXNET_SHA1)

# songhan/SqueezeNet-Deep-Compression at commit fb13faa (BSD licence), docs/USAGE.md "Downloads". The
# short commit is the one known here; GitHub resolves it, and the checksums pin the content anyway.
SQUEEZENET_BASE = "https://github.com/songhan/SqueezeNet-Deep-Compression/raw/fb13faa/"
SQUEEZENET_NET = Source("compressed_SqueezeNet.net", SQUEEZENET_BASE + "compressed_SqueezeNet.net",
                        "sha1", "d366493d585f65f4badc23b1ae943e9275db1cf4")
SQUEEZENET_DEPLOY = Source("SqueezeNet_deploy.prototxt", SQUEEZENET_BASE + "SqueezeNet_deploy.prototxt",
                           "sha256", "3bcb0e792e2b50ddeb955b178ba6742e28d8950956915348eba355652040674c")
# what pycaffe's net.save writes for the decoded weights (docs/USAGE.md "Downloads")
SQUEEZENET_CAFFEMODEL_SHA256 = "c14f4959297b7b2a71d344bb1306623ed21bdbef088463660e02c87b98c5fc6b"
SQUEEZENET_DIR = "squeezenet_v1.0_dc"

MODELS = ("alexnet", "squeezenet")


class WeightsError(RuntimeError):
    pass


def make_command(model):
    return "make weights" + ("" if model == "alexnet" else " MODEL=%s" % model)


def default_out(model, root=None):
    root = os.path.join(root or paths.root(), "weights")
    if model == "alexnet":
        return os.path.join(root, ALEXNET.name)
    return os.path.join(root, SQUEEZENET_DIR, SQUEEZENET_DIR + ".caffemodel")


def url_of(source, mirror=None):
    """Where ``source`` is fetched from: its public address, or the file of that name in
    ``mirror`` (a URL, or a local folder)."""
    if not mirror:
        return source.url
    if "://" in mirror:
        return mirror.rstrip("/") + "/" + source.name
    return (Path(mirror).resolve() / source.name).as_uri()


def check(path, digest=ALEXNET_SHA1, algo="sha1", model="alexnet"):
    got = file_digest(path, algo, progress=True)
    if got != digest:
        raise WeightsError("%s: %s %s, expected %s (a partial or different file): delete it and "
                           "run `%s` again" % (path, algo, got, digest, make_command(model)))


def fetch(out, url=ALEXNET_URL, digest=ALEXNET_SHA1, quiet=False, algo="sha1"):
    """Download ``url`` to ``out`` unless a checked copy is there; returns ``out``. One process at a
    time per folder (``out``.part is a fixed name): another one is a WeightsError naming its pid."""
    try:
        with runlock.hold(os.path.dirname(os.path.abspath(out))):
            return _fetch(out, url, digest, algo, quiet, name=ALEXNET.name)
    except runlock.Busy as e:
        raise WeightsError(str(e)) from None


def _fetch(out, url, digest, algo, quiet, model="alexnet", name=None):
    """``name``: the file's name at its source, what a --mirror folder must hold."""
    if os.path.exists(out):
        check(out, digest, algo, model)
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
        except (OSError, ValueError) as e:
            raise WeightsError("could not download %s (%s): fetch it elsewhere and put it at %s (%s %s), or pass "
                               "--mirror DIR (make: MIRROR=DIR), a folder that holds %s"
                               % (url, getattr(e, "reason", e), out, algo, digest, name or os.path.basename(out)))
        try:
            check(tmp, digest, algo, model)
        except WeightsError:
            raise WeightsError("%s: downloaded file's %s does not match %s; nothing kept, try again"
                               % (url, algo, digest)) from None
    write_atomic(out, download, tmp=out + ".part")     # nothing but a checked file is kept
    return out


def fetch_squeezenet(out, mirror=None, quiet=False):
    """SqueezeNet v1.0 (Deep Compression release) decoded to the caffemodel ``out``, with
    deploy.prototxt beside it and the release's two files in source/ there; returns ``out``. A
    checked caffemodel and deploy.prototxt there already: nothing is fetched."""
    folder = os.path.dirname(os.path.abspath(out))
    deploy = os.path.join(folder, "deploy.prototxt")
    source = os.path.join(folder, "source")
    try:
        with runlock.hold(folder):
            if os.path.exists(out) and os.path.exists(deploy):
                check(out, SQUEEZENET_CAFFEMODEL_SHA256, "sha256", "squeezenet")
                check(deploy, SQUEEZENET_DEPLOY.digest, SQUEEZENET_DEPLOY.algo, "squeezenet")
                return out
            os.makedirs(source, exist_ok=True)
            got = {}
            for src in (SQUEEZENET_NET, SQUEEZENET_DEPLOY):
                got[src] = _fetch(os.path.join(source, src.name), url_of(src, mirror), src.digest, src.algo,
                                  quiet, "squeezenet", src.name)
            if os.path.exists(deploy):
                check(deploy, SQUEEZENET_DEPLOY.digest, SQUEEZENET_DEPLOY.algo, "squeezenet")
            else:
                with open(got[SQUEEZENET_DEPLOY], "rb") as fh:
                    write_atomic(deploy, fh.read(), tmp=deploy + ".part")
            if os.path.exists(out):
                check(out, SQUEEZENET_CAFFEMODEL_SHA256, "sha256", "squeezenet")
                return out
            write_atomic(out, lambda tmp: _decode_checked(deploy, got[SQUEEZENET_NET], tmp), tmp=out + ".part")
            return out
    except runlock.Busy as e:
        raise WeightsError(str(e)) from None
    except BaseException:
        for empty in (source, folder):     # folders this call made and left empty: gone too
            try:
                os.rmdir(empty)
            except OSError:
                pass
        raise


def _decode_checked(deploy, compressed, tmp):
    from dhn import deepcompression
    try:
        import caffe  # noqa: F401  (pycaffe writes the caffemodel)
    except ImportError as e:
        raise WeightsError("pycaffe is not importable (%s): run `make setup`, then `make weights MODEL=squeezenet` "
                           "(make sets the environment through tools/env.sh)" % e) from None
    try:
        deepcompression.write_caffemodel(deploy, compressed, tmp)
    except deepcompression.DecodeError as e:
        raise WeightsError(str(e)) from None
    got = file_digest(tmp, "sha256")
    if got != SQUEEZENET_CAFFEMODEL_SHA256:
        raise WeightsError("%s: the decoded caffemodel's sha256 is %s, expected %s (a Caffe whose caffe.proto differs "
                           "from BVLC's 2018 one writes other bytes; or a decoding fault); nothing kept"
                           % (compressed, got, SQUEEZENET_CAFFEMODEL_SHA256))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=MODELS, default="alexnet")
    ap.add_argument("--mirror", help="a folder or URL holding the source's files under their own names")
    ap.add_argument("--url", help="AlexNet's caffemodel at another address (default %s)" % ALEXNET_URL)
    ap.add_argument("--out", help="the caffemodel written (default weights/bvlc_alexnet.caffemodel, "
                    "weights/%s/%s.caffemodel)" % (SQUEEZENET_DIR, SQUEEZENET_DIR))
    args = ap.parse_args(argv)
    out = args.out or default_out(args.model)
    try:
        if args.model == "alexnet":
            if args.url and args.mirror:
                raise WeightsError("--url and --mirror both say where AlexNet is: give one")
            print(fetch(out, args.url or url_of(ALEXNET, args.mirror)))
        else:
            if args.url:
                raise WeightsError("--url is AlexNet's; SqueezeNet's two files come from --mirror DIR_OR_URL")
            print(fetch_squeezenet(out, args.mirror))
    except WeightsError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
