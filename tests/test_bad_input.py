"""Every bad input in docs/USAGE.md's table "Bad input: one line, exit status 2", run as the table says.

The table is the source: each row names a bad input, the command (run as written, in a fresh
folder where CASES[row] has laid out that input), and the one line it prints. For each row this
test runs the real command-line tool as a subprocess (with a time limit) and checks that stderr
is exactly that line, stdout is empty, the exit status is 2 and no file in the folder was
created, changed or removed (nothing half-written). A row without a case here, or a case
without a row, fails. `python tests/test_bad_input.py` (under tools/env.sh) prints the table's
rows as the commands print them now, to paste into docs/USAGE.md after a deliberate change.
"""
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

import datagen

ROOT = os.environ["DHN_ROOT"]
USAGE = os.path.join(ROOT, "docs", "USAGE.md")
HEADING = "## Bad input: one line, exit status 2"
TIMEOUT = 300      # seconds per command; a hung tool fails its row instead of holding the suite


# ----------------------------------------------------------------------------- the table in docs/USAGE.md

def usage_table_rows():
    """[(bad input, command, printed line)] of docs/USAGE.md's table, in order."""
    text = open(USAGE, encoding="utf-8").read()
    assert HEADING in text, "docs/USAGE.md has no section %r" % HEADING
    rows = []
    for line in text.split(HEADING, 1)[1].split("\n#", 1)[0].splitlines():
        if not line.startswith("| ") or line.startswith("| bad input") or line.startswith("|---"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        assert len(cells) == 3, line
        rows.append((cells[0], _code(cells[1]), _code(cells[2])))
    return rows


def _code(cell):
    """The text of a Markdown code span: `x`, or `` x `` when x holds a backtick."""
    m = re.fullmatch(r"(`+) ?(.*?) ?\1", cell)
    assert m, "not a code span: %r" % cell
    return m.group(2)


# ----------------------------------------------------------------------------- material

@pytest.fixture(scope="module")
def material(tmp_path_factory):
    return make_material(str(tmp_path_factory.mktemp("material")))


def make_material(root):
    """Whole inputs that the cases copy and break: a converted demo dataset, a trained run on it,
    a small foreign backbone and its features of that dataset, a 21-label list dataset."""
    import caffe
    from dhn import features, train
    lmdb, list_file = datagen.converted_demo(root, 120, seed=5, order_seed=0, n_train=60, n_query=20)
    run = os.path.join(root, "run")
    train.train("demo", 16, "dhn", iters=20, data_dir=lmdb, run_dir=run, quiet=True)
    deploy = os.path.join(root, "smallnet", "deploy.prototxt")
    os.makedirs(os.path.dirname(deploy))
    open(deploy, "w").write(datagen.SMALL_DEPLOY)
    caffe.set_mode_cpu()
    caffe.Net(deploy, caffe.TEST).save(os.path.join(root, "smallnet", "smallnet.caffemodel"))
    feats, _ = features.extract("demo", ("train", "query", "database"), deploy + ":feat",
                                os.path.join(root, "smallnet", "smallnet.caffemodel"), data_dir=lmdb,
                                out=os.path.join(root, "features"), progress=False)
    image = os.path.join(root, open(list_file).readline().split()[0])
    listed = os.path.join(root, "listed")
    datagen.write_image_list(listed, datagen.random_multihot(6, 21, seed=4), sizes=((20, 24),))
    return dict(root=root, lmdb=lmdb, run=run, smallnet=os.path.dirname(deploy), features=feats, image=image,
                listed=listed)


def copy(m, what, to):
    shutil.copytree(m[what], to) if os.path.isdir(m[what]) else shutil.copyfile(m[what], to)


def flip(path, offset, n=1):
    """Invert n bytes of a file at offset."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        data = fh.read(n)
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in data))


def record_offset(lmdb_dir, i):
    """Where record i's key lies in the LMDB file (a leaf node: the key, then the value)."""
    raw = open(os.path.join(lmdb_dir, "data.mdb"), "rb").read()
    key = b"%08d" % i
    assert raw.count(key) == 1
    return raw.index(key)


def write(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)


def codes_for_evaluate(d):
    rng = np.random.default_rng(0)
    for name, a in (("q", rng.normal(size=(5, 8))), ("ql", np.eye(4)[rng.integers(0, 4, 5)]),
                    ("d", rng.normal(size=(30, 8))), ("dl", np.eye(4)[rng.integers(0, 4, 30)])):
        np.save(os.path.join(d, name + ".npy"), a)


# ----------------------------------------------------------------------------- the cases
# Each lays out one bad input in the empty folder d (the command's working directory), from the
# whole material m. The docs/USAGE.md row of the same name gives the command and the line it prints.

def case_lmdb_header(d, m):
    copy(m, "lmdb", os.path.join(d, "lmdb"))
    flip(os.path.join(d, "lmdb", "database", "labels", "data.mdb"), 16, 16)   # the first meta page


def case_features_truncated(d, m):
    """A features split's stored outputs cut short (a copy interrupted, a full disk)."""
    copy(m, "features", os.path.join(d, "features"))
    path = os.path.join(d, "features", "database", "blobs.npy")
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) - 100)


def case_not_a_datum(d, m):
    copy(m, "lmdb", os.path.join(d, "lmdb"))
    labels = os.path.join(d, "lmdb", "database", "labels")
    flip(os.path.join(labels, "data.mdb"), record_offset(labels, 5) + 8)      # the Datum's first tag


def case_label_not_binary(d, m):
    copy(m, "lmdb", os.path.join(d, "lmdb"))
    labels = os.path.join(d, "lmdb", "database", "labels")
    # a label Datum: channels, height, width, then data (tag 0x22, length 6, the six 0/1 bytes)
    at = record_offset(labels, 5) + 8
    raw = open(os.path.join(labels, "data.mdb"), "rb").read()
    data = raw.index(b"\x22\x06", at) + 2
    with open(os.path.join(labels, "data.mdb"), "r+b") as fh:
        fh.seek(data)
        fh.write(b"\x07")


def case_lmdb_page(d, m):
    copy(m, "lmdb", os.path.join(d, "lmdb"))
    # page 2, the labels tree's only leaf: its lower/upper bounds inverted send LMDB past the file
    flip(os.path.join(d, "lmdb", "database", "labels", "data.mdb"), 2 * 4096 + 10, 6)


def case_manifest(d, m):
    copy(m, "lmdb", os.path.join(d, "lmdb"))
    write(os.path.join(d, "lmdb", "database", "manifest.json"), '{\n "dataset": "list",\n "sources": {')  # cut short


def case_subset_too_large(d, m):
    copy(m, "lmdb", os.path.join(d, "lmdb"))


def case_config_search(d, m):
    copy(m, "run", os.path.join(d, "run"))
    copy(m, "image", os.path.join(d, "img.png"))
    write(os.path.join(d, "run", "config.json"), "{\"identity\": {")


def case_config_resume(d, m):
    copy(m, "run", os.path.join(d, "run"))
    copy(m, "lmdb", os.path.join(d, "lmdb"))
    write(os.path.join(d, "run", "config.json"), "")


def case_changed_configuration(d, m):
    copy(m, "run", os.path.join(d, "run"))
    copy(m, "lmdb", os.path.join(d, "lmdb"))


def case_results_gallery(d, m):
    copy(m, "run", os.path.join(d, "run"))
    write(os.path.join(d, "run", "results.json"), "[1, 2")


def case_baselines(d, m):
    write(os.path.join(d, "runs", "baselines-x-database", "baselines.json"), "{\"lsh\": ")


def case_runs_typo(d, m):
    os.makedirs(os.path.join(d, "runs"))


def case_evaluate_folder(d, m):
    codes_for_evaluate(d)
    os.makedirs(os.path.join(d, "codes"))


def case_evaluate_npy(d, m):
    codes_for_evaluate(d)
    write(os.path.join(d, "d.npy"), open(os.path.join(d, "d.npy"), "rb").read()[:100])


def case_evaluate_R(d, m):
    codes_for_evaluate(d)


def case_features_shapes(d, m):
    import caffe
    copy(m, "smallnet", os.path.join(d, "smallnet"))
    other = os.path.join(d, "other.prototxt")
    write(other, datagen.SMALL_DEPLOY.replace("num_output: 16", "num_output: 8"))
    caffe.Net(other, caffe.TEST).save(os.path.join(d, "other.caffemodel"))
    os.remove(other)


def case_features_junk(d, m):
    copy(m, "smallnet", os.path.join(d, "smallnet"))
    write(os.path.join(d, "junk.caffemodel"), b"\xff" * 64)


def case_search_radius(d, m):
    copy(m, "run", os.path.join(d, "run"))
    copy(m, "image", os.path.join(d, "img.png"))


def case_search_image(d, m):
    copy(m, "run", os.path.join(d, "run"))
    write(os.path.join(d, "photo.jpg"), b"not an image")


def case_search_codes(d, m):
    copy(m, "run", os.path.join(d, "run"))
    copy(m, "image", os.path.join(d, "img.png"))
    os.remove(os.path.join(d, "run", "codes", "database.npy"))


def case_weights_missing(d, m):
    copy(m, "lmdb", os.path.join(d, "lmdb"))


def case_weights_sha1(d, m):
    write(os.path.join(d, "weights", "bvlc_alexnet.caffemodel"), b"half a download")


def case_diverging(d, m):
    copy(m, "lmdb", os.path.join(d, "lmdb"))


def case_cifar_checksum(d, m):
    write(os.path.join(d, "cifar-10-python.tar.gz"), b"not the official tarball")


def copy_listed(d, m):
    """The 6-image list dataset, with split files (--splits) for it: the split rule needs more."""
    copy(m, "listed", os.path.join(d, "listed"))
    for name, rows in (("train", "0\n1\n2\n"), ("query", "3\n"), ("database", "4\n5\n")):
        write(os.path.join(d, "splits", name + ".txt"), rows)


def case_list_columns(d, m):
    copy_listed(d, m)
    path = os.path.join(d, "listed", "list.txt")
    lines = open(path).read().splitlines()
    lines[2] += " 1"
    write(path, "\n".join(lines) + "\n")


def case_list_label(d, m):
    copy_listed(d, m)
    path = os.path.join(d, "listed", "list.txt")
    lines = open(path).read().splitlines()
    lines[3] = lines[3][:-1] + "2"
    write(path, "\n".join(lines) + "\n")


def case_list_image(d, m):
    copy_listed(d, m)
    write(os.path.join(d, "listed", "imgs", "img4.png"), b"\x89PNG but not one")


# name (the table's first column) -> (lay-out function, paths the failure may leave by design,
# whether the command's progress output may come before the line: work had begun)
CASES = {
    "the labels LMDB's header bytes flipped": (case_lmdb_header, (), False),
    "a features split's blobs.npy cut short": (case_features_truncated, (), False),
    "a labels record that is no Caffe Datum": (case_not_a_datum, (), False),
    "a label byte that is not 0 or 1": (case_label_not_binary, (), False),
    "a damaged LMDB page (LMDB reads past the file: SIGBUS)": (case_lmdb_page, (), False),
    "a truncated manifest.json": (case_manifest, (), False),
    "a subset larger than a class": (case_subset_too_large, (), False),
    "a corrupt config.json (search)": (case_config_search, (), False),
    "an empty config.json (resuming the run)": (case_config_resume, (), False),
    "a run folder of another configuration": (case_changed_configuration, (), False),
    "a corrupt results.json (gallery)": (case_results_gallery, (), False),
    "a corrupt baselines.json": (case_baselines, (), False),
    "a --runs folder that does not exist (a typo)": (case_runs_typo, (), False),
    "a folder given as codes": (case_evaluate_folder, (), False),
    "a truncated .npy": (case_evaluate_npy, (), False),
    "--R that is no number": (case_evaluate_R, (), False),
    "a caffemodel whose shapes do not fit the backbone": (case_features_shapes, (), False),
    "a file that is no Caffe model": (case_features_junk, (), False),
    "a search radius whose probes explode": (case_search_radius, (), False),
    "an image that does not decode (search)": (case_search_image, (), False),
    "a run without database codes": (case_search_codes, (), False),
    "AlexNet's weights missing": (case_weights_missing, (), False),
    "a weights file with the wrong sha1": (case_weights_sha1, (), False),
    # the failed run's folder keeps its configuration and the log the line points to
    "a loss that diverges": (case_diverging, ("run/",), True),
    "a CIFAR-10 tarball with the wrong checksum": (case_cifar_checksum, (), False),
    "a list line with the wrong column count": (case_list_columns, (), False),
    "a list label that is not 0 or 1": (case_list_label, (), False),
    "an image that does not decode (conversion)": (case_list_image, (), True),
}


# ----------------------------------------------------------------------------- running a row

def snapshot(d):
    """{relative path: sha256 or 'dir'} of everything under d, the folder's lock files aside."""
    out = {}
    for top, dirs, files in os.walk(d):
        for name in dirs:
            out[os.path.relpath(os.path.join(top, name), d)] = "dir"
        for name in files:
            if name == ".lock":
                continue
            path = os.path.join(top, name)
            out[os.path.relpath(path, d)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def run_row(name, command, d, m):
    """(stderr, stdout, exit status, paths created/changed/removed) of one row's command."""
    lay_out, keeps, _ = CASES[name]
    lay_out(d, m)
    before = snapshot(d)
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-m"], command
    out = subprocess.run([sys.executable] + argv[1:], cwd=d, capture_output=True, text=True, timeout=TIMEOUT,
                         env=dict(os.environ, GLOG_minloglevel="2"))
    after = snapshot(d)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p)
                     and not any(p == k.rstrip("/") or p.startswith(k) for k in keeps))
    err = out.stderr.replace(os.path.realpath(d) + os.sep, "").replace(d + os.sep, "")
    return err, out.stdout, out.returncode, changed


@pytest.mark.parametrize("name,command,line", usage_table_rows(), ids=[r[0] for r in usage_table_rows()])
def test_bad_input_prints_one_line_and_leaves_nothing(name, command, line, material, tmp_path):
    assert name in CASES, "docs/USAGE.md's table names %r, which tests/test_bad_input.py does not lay out" % name
    err, out, status, changed = run_row(name, command, str(tmp_path), material)
    if CASES[name][2]:      # the progress of work begun before the failure, then the one line
        assert "Traceback" not in err and err.count("error: ") == 1, err[-3000:]
        err = err.rstrip("\n").rsplit("\n", 1)[-1] + "\n"
    assert (status, err, out) == (2, line + "\n", ""), err[-3000:]
    assert changed == [], "left behind or changed: %s" % changed


def test_every_case_is_in_the_usage_table():
    assert sorted(CASES) == sorted(r[0] for r in usage_table_rows())
    assert len(CASES) >= 20


if __name__ == "__main__":   # print the rows as the commands print them now (for docs/USAGE.md)
    import tempfile
    sys.argv[1:] = []
    rows = usage_table_rows()
    with tempfile.TemporaryDirectory() as tmp:
        m = make_material(os.path.join(tmp, "material"))
        for i, (name, command, _) in enumerate(rows):
            d = os.path.join(tmp, "case%d" % i)
            os.makedirs(d)
            err, out, status, changed = run_row(name, command, d, m)
            line = err.rstrip("\n")
            if CASES[name][2]:
                line = line.rsplit("\n", 1)[-1]
            code = "`` %s ``" % line if "`" in line else "`%s`" % line
            print("| %s | `%s` | %s |" % (name, command, code.replace("|", "\\|"))
                  + ("" if (status, out, changed) == (2, "", []) and "\n" not in line else
                     "   <-- status %s, stdout %r, changed %s" % (status, out[:80], changed)))
