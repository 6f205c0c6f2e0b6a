"""Only the pinned Caffe source is built: tools/build/verify_source.sh checks each file of the
Debian source package against its sha256 pin and the .dsc's own list against the pins, and
build_caffe.sh refuses (one line, exit 2, nothing left in the cache) a mirror that serves
anything else. No Caffe is built here: the recipe stops at the check."""
import hashlib
import os
import re
import subprocess

ROOT = os.environ["DHN_ROOT"]
BUILD = os.path.join(ROOT, "tools", "build")
VERIFY = os.path.join(BUILD, "verify_source.sh")


def recipe_pins():
    """{file name: sha256} as build_caffe.sh pins them."""
    text = open(os.path.join(BUILD, "build_caffe.sh")).read()
    return {name: sha for sha, name in re.findall(r'^([0-9a-f]{64})  (caffe_[^\s"]+)"?$', text, re.M)}


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def write_package(folder, debian_listed=None):
    """A small self-consistent source package (.dsc listing the other two) and its pins file."""
    folder.mkdir(exist_ok=True)
    (folder / "pkg_1.0.orig.tar.gz").write_bytes(b"upstream source" * 100)
    (folder / "pkg_1.0-1.debian.tar.xz").write_bytes(b"debian patches" * 10)
    lines = []
    for name in ("pkg_1.0.orig.tar.gz", "pkg_1.0-1.debian.tar.xz"):
        h = sha256(folder / name)
        if name.endswith("debian.tar.xz") and debian_listed:
            h = debian_listed
        lines.append(" %s %d %s" % (h, (folder / name).stat().st_size, name))
    (folder / "pkg_1.0-1.dsc").write_text("Format: 3.0 (quilt)\nSource: pkg\nChecksums-Sha256:\n%s\nFiles:\n x 1 y\n"
                                          % "\n".join(lines))
    pins = folder.parent / (folder.name + ".sha256")
    pins.write_text("".join("%s  %s\n" % (sha256(folder / n), n)
                            for n in ("pkg_1.0-1.dsc", "pkg_1.0.orig.tar.gz", "pkg_1.0-1.debian.tar.xz")))
    return pins


def verify(folder, pins):
    return subprocess.run(["bash", VERIFY, str(folder), str(pins)], capture_output=True, text=True, timeout=60)


def test_recipe_pins_the_three_files_of_the_package():
    pins = recipe_pins()
    assert sorted(n.rsplit("99bd997", 1)[1] for n in pins) == ["-8.debian.tar.xz", "-8.dsc", ".orig.tar.gz"]
    assert all(n.startswith("caffe_1.0.0+git20180821.99bd997") for n in pins)


def test_a_whole_package_passes(tmp_path):
    pins = write_package(tmp_path / "src")
    out = verify(tmp_path / "src", pins)
    assert (out.returncode, out.stderr) == (0, "")


def test_a_tampered_file_is_refused_naming_both_hashes(tmp_path):
    pins = write_package(tmp_path / "src")
    orig = tmp_path / "src" / "pkg_1.0.orig.tar.gz"
    want = sha256(orig)
    with open(orig, "ab") as fh:
        fh.write(b"\0")
    out = verify(tmp_path / "src", pins)
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["verify_source: %s: sha256 %s, expected %s (the pinned Caffe source): refusing "
                                       "to build it: fetch it again (make setup), or put the pinned file there"
                                       % (orig, sha256(orig), want)]


def test_a_dsc_that_lists_another_hash_is_refused(tmp_path):
    # every file matches its pin, but the .dsc names another debian tarball than the pinned one
    pins = write_package(tmp_path / "src", debian_listed="0" * 64)
    out = verify(tmp_path / "src", pins)
    assert out.returncode == 2
    assert out.stderr.startswith("verify_source: %s: lists pkg_1.0-1.debian.tar.xz with sha256 %s, expected %s"
                                 % (tmp_path / "src" / "pkg_1.0-1.dsc", "0" * 64,
                                    sha256(tmp_path / "src" / "pkg_1.0-1.debian.tar.xz")))
    assert len(out.stderr.splitlines()) == 1


def test_a_missing_file_is_refused(tmp_path):
    pins = write_package(tmp_path / "src")
    os.remove(tmp_path / "src" / "pkg_1.0-1.debian.tar.xz")
    out = verify(tmp_path / "src", pins)
    assert out.returncode == 2
    assert out.stderr.startswith("verify_source: %s: missing" % (tmp_path / "src" / "pkg_1.0-1.debian.tar.xz"))


def test_build_caffe_refuses_a_tampered_mirror_and_leaves_nothing(tmp_path):
    """The recipe itself, on a local mirror (CAFFE_SOURCE_DIR) whose files carry the pinned names
    but other bytes (the genuine files are not at hand offline; the checks one file at a time are
    above): it stops at the first file checked, the .dsc, before unpacking anything."""
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    pins = recipe_pins()
    for name in pins:
        (mirror / name).write_bytes(b"not the pinned file")
    dsc = next(n for n in pins if n.endswith(".dsc"))
    env = dict(os.environ, DHN_CACHE=str(cache), CAFFE_SOURCE_DIR=str(mirror))
    out = subprocess.run(["bash", os.path.join(BUILD, "build_caffe.sh")], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines()[-1] == (
        "verify_source: %s: sha256 %s, expected %s (the pinned Caffe source): refusing to build it: fetch it again "
        "(make setup), or put the pinned file there" % (mirror / dsc, sha256(mirror / dsc), pins[dsc]))
    assert os.listdir(cache) == []     # no work folder, no half-built cache entry
