"""Using a trained run: the Hamming index (our kernel's scan, FAISS's hash lookup and inverted
file, the index files kept beside the codes) against a brute-force ranking, `dhn.search` on image
files, the retrieval gallery (and its HTML in headless Chromium where Chromium is installed), and
one-line errors for bad input."""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from dhn import encode, gallery, hamming_ap, hamming_index, search, train
import datagen


def brute_force(q, db, top):
    """Distances by counting differing signs, ranked by a stable sort: ties in database order."""
    d = ((q[:, None, :] >= 0) != (db[None, :, :] >= 0)).sum(2)
    order = np.argsort(d, axis=1, kind="stable")[:, :top]
    return order, np.take_along_axis(d, order, axis=1)


@pytest.mark.parametrize("bits", [12, 64, 70])
@pytest.mark.parametrize("kernel", [True, False])
def test_scan_is_the_stable_hamming_ranking(bits, kernel, monkeypatch):
    if kernel and not hamming_ap.available():
        pytest.skip("no C compiler: the kernel is not built")
    monkeypatch.setattr(hamming_ap, "available", lambda: kernel and hamming_ap._load() is not None)
    rng = np.random.default_rng(bits)
    centres = rng.choice([-1.0, 1.0], (4, bits))
    db = centres[rng.integers(0, 4, 500)] * np.where(rng.random((500, bits)) < 0.1, -1, 1)   # many ties
    q = rng.normal(size=(9, bits))
    idx, dist = hamming_index.HammingIndex(db).scan(q, 60)
    want_idx, want_dist = brute_force(q, db, 60)
    np.testing.assert_array_equal(dist, want_dist)
    np.testing.assert_array_equal(idx, want_idx)


def test_scan_past_the_database_pads_with_minus_one():
    idx, dist = hamming_index.HammingIndex(np.ones((3, 8))).scan(np.ones((1, 8)), 5)
    assert idx.tolist() == [[0, 1, 2, -1, -1]] and dist.tolist()[0][:3] == [0, 0, 0]


@pytest.mark.parametrize("bits,radius", [(12, 3), (16, 2), (64, 0), (64, 2), (70, 1), (70, 8)])
def test_lookup_is_the_brute_force_ball(bits, radius):
    """FAISS's IndexBinaryHash lookup: every item within the radius (8: the largest MAX_PROBES allows),
    ranked by distance then database order, as a brute-force count of differing signs ranks them."""
    rng = np.random.default_rng(1)
    centres = rng.choice([-1.0, 1.0], (3, bits))
    db = centres[rng.integers(0, 3, 400)] * np.where(rng.random((400, bits)) < 0.02, -1, 1)   # many ties
    q = centres[[0, 1, 2, 0]] * np.where(rng.random((4, bits)) < 0.02, -1, 1)
    full_idx, full_dist = brute_force(q, db, len(db))
    found = hamming_index.HammingIndex(db).lookup(q, radius)
    assert sum(len(i) for i, _ in found) > 4 * (radius > 0)            # not empty balls
    for (idx, dist), fi, fd in zip(found, full_idx, full_dist):
        keep = fd <= radius
        np.testing.assert_array_equal(idx, fi[keep])
        np.testing.assert_array_equal(dist, fd[keep])


@pytest.mark.parametrize("bits", [12, 64])
def test_ivf_finds_a_subset_with_exact_distances(bits):
    rng = np.random.default_rng(bits)
    centres = rng.choice([-1.0, 1.0], (8, bits))
    db = centres[rng.integers(0, 8, 4000)] * np.where(rng.random((4000, bits)) < 0.05, -1, 1)
    q = centres[rng.integers(0, 8, 6)] * np.where(rng.random((6, bits)) < 0.05, -1, 1)
    index = hamming_index.HammingIndex(db)
    full_idx, full_dist = brute_force(q, db, len(db))
    exact_dist = brute_force(q, db, 50)[1]
    for nprobe in (1, hamming_index.ivf_lists(len(db))):
        for (idx, dist), fi, fd, ed in zip(index.approximate(q, 50, nprobe), full_idx, full_dist, exact_dist):
            assert 0 < len(idx) <= 50 and len(set(idx.tolist())) == len(idx)
            np.testing.assert_array_equal(dist, fd[np.argsort(fi)][idx])                     # exact distances
            assert [(d, i) for d, i in zip(dist, idx)] == sorted(zip(dist.tolist(), idx.tolist()))   # (distance, row)
            if nprobe == hamming_index.ivf_lists(len(db)):      # every list probed: the exact top 50's distances
                np.testing.assert_array_equal(dist, ed)


def test_index_files_are_written_reused_and_rebuilt(tmp_path):
    """codes/<database>.faissindex (+ .hash, .ivf) beside the codes: written by the first search,
    read (not rebuilt) by the next, rebuilt once the codes file is written again; the scan read
    back from the file is the brute-force ranking of the codes, ties in database order."""
    rng = np.random.default_rng(3)
    centres = rng.choice([-1.0, 1.0], (4, 48))
    codes_path = str(tmp_path / "codes" / "database.npy")
    z = (centres[rng.integers(0, 4, 600)] * np.where(rng.random((600, 48)) < 0.1, -1, 1)).astype(np.float32)
    encode.save_codes(codes_path[:-4], z)
    q = rng.normal(size=(5, 48))

    def use():
        index = hamming_index.HammingIndex.open(codes_path)
        res = index.scan(q, 100), index.lookup(q, 3), index.approximate(q, 10, 2)
        return index.files.built, res

    built, (scan, ball, _) = use()
    assert built == ["flat", "hash", "ivf"]
    names = ["database.faissindex", "database.hash.faissindex", "database.ivf.faissindex"]
    assert sorted(os.listdir(tmp_path / "codes")) == sorted(["database.npy", "database.bits.npy"] + names
                                                             + [n + ".json" for n in names])
    stamps = {n: os.stat(tmp_path / "codes" / n).st_mtime_ns for n in names}
    for got, want in zip(scan, brute_force(q, z, 100)):
        np.testing.assert_array_equal(got, want)
    built, (scan2, ball2, _) = use()
    assert built == [] and stamps == {n: os.stat(tmp_path / "codes" / n).st_mtime_ns for n in names}
    np.testing.assert_array_equal(scan2[0], scan[0])
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(ball, ball2))
    # the codes encoded again (another evaluation): every index is rebuilt from the new codes
    encode.save_codes(codes_path[:-4], -z)
    built, (scan3, _, _) = use()
    assert built == ["flat", "hash", "ivf"]
    np.testing.assert_array_equal(scan3[0], brute_force(q, -z, 100)[0])
    # an index file spoilt by hand (its record still fresh) is rebuilt, not trusted
    (tmp_path / "codes" / "database.faissindex").write_bytes(b"spoilt")
    built, (scan4, _, _) = use()
    assert built[0] == "flat" and np.array_equal(scan4[0], scan3[0])
    assert not [n for n in os.listdir(tmp_path / "codes") if n.endswith(".tmp")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small demo-data run (trained and evaluated by dhn.train), and its image folder."""
    root = str(tmp_path_factory.mktemp("search"))
    data, list_file = datagen.converted_demo(root, 300, seed=5, order_seed=0, n_train=200, n_query=40)
    run = os.path.join(root, "run")
    train.train("demo", 16, "dhn", iters=150, data_dir=data, run_dir=run, quiet=True)
    return {"root": root, "run": run, "data": data, "list": list_file}


def test_search_finds_a_database_image_at_distance_zero(trained):
    db_records = np.loadtxt(os.path.join(trained["data"], "database", "records.txt"), dtype=int)
    paths = [line.split()[0] for line in open(trained["list"])]
    picks = [paths[db_records[3]], paths[db_records[17]]]
    res = search.search_run(trained["run"], [os.path.join(trained["root"], p) for p in picks], top=60)
    for pick, r in zip(picks, res):
        at_zero = [h["record"] for h in r["hits"] if h["distance"] == 0]
        assert pick in at_zero                     # the image itself (ties follow database order)
        assert [h["rank"] for h in r["hits"]] == list(range(1, 61))
        assert all(a["distance"] <= b["distance"] for a, b in zip(r["hits"], r["hits"][1:]))
    # the same ranking as the run's own codes give for that database row
    z = np.load(os.path.join(trained["run"], "codes", "database.npy"))
    idx, _ = hamming_index.HammingIndex(z).scan(z[3:4], 60)
    assert [h["row"] for h in res[0]["hits"]] == idx[0].tolist()


def test_search_cli_prints_json(trained, capsys):
    img = os.path.join(trained["root"], open(trained["list"]).readline().split()[0])
    assert search.main(["--run", trained["run"], img, "--top", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["image"] == img and len(out[0]["hits"]) == 3 and out[0]["ranking"] == "Hamming"


def test_search_errors_are_one_line(trained, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    img = os.path.join(trained["root"], open(trained["list"]).readline().split()[0])
    assert search.main(["--run", trained["run"], str(bad)]) == 2
    assert re.fullmatch(r"error: .*bad\.jpg does not decode as an image.*\n", capsys.readouterr().err)
    assert search.main(["--run", str(tmp_path / "nowhere"), img]) == 2
    assert "no config.json: not a finished run" in capsys.readouterr().err
    # a run whose codes are gone, and one whose deploy net no longer fits its weights
    broken = tmp_path / "broken"
    shutil.copytree(trained["run"], broken)
    os.remove(broken / "codes" / "database.npy")
    assert search.main(["--run", str(broken), img]) == 2
    assert "has no database codes" in capsys.readouterr().err
    shutil.rmtree(broken)
    shutil.copytree(trained["run"], broken)
    text = (broken / "deploy.prototxt").read_text()
    (broken / "deploy.prototxt").write_text(text.replace("num_output: 16", "num_output: 12"))
    assert search.main(["--run", str(broken), img]) == 2
    err = capsys.readouterr().err
    assert "deploy net and weights do not match" in err and err.count("\n") == 1


def test_gallery_is_written_by_the_evaluation(trained):
    html_text = open(os.path.join(trained["run"], "gallery.html")).read()
    assert html_text.count("<img ") == 8 * 11           # 8 queries, each with its top 10
    assert html_text.count('class="rel"') + html_text.count('class="irr"') == 80
    import cv2
    png = cv2.imread(os.path.join(trained["run"], "gallery.png"))
    assert png is not None and png.shape[0] > 300
    found, _, _, _ = gallery.retrieve(trained["run"])
    assert [q for q, _ in found] == sorted(np.random.RandomState(0).choice(40, 8, replace=False).tolist())


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(chromium() is None, reason="no Chromium on this machine (Debian: apt-get install chromium)")
def test_gallery_html_renders_in_headless_chromium(trained, tmp_path):
    page = os.path.join(trained["run"], "gallery.html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=%s" % (tmp_path / "u")]
    # every image decoded: the DOM reports each one complete with a natural width
    script = tmp_path / "check.html"
    script.write_text('<iframe id="f" src="file://%s" width="1600" height="1200"></iframe><script>'
                      'document.getElementById("f").onload=function(){var d=this.contentDocument;'
                      'var imgs=[...d.images];document.title=imgs.length+" "+imgs.filter(i=>i.complete&&i.naturalWidth>0).length;};'
                      '</script>' % page)
    out = subprocess.run([chromium(), *flags, "--allow-file-access-from-files", "--virtual-time-budget=5000",
                          "--dump-dom", "file://%s" % script], capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>(\d+) (\d+)</title>", out.stdout)
    assert title, out.stdout[-500:] + out.stderr[-500:]
    assert title.group(1) == title.group(2) == str(8 * 11)
    shot = tmp_path / "shot.png"
    subprocess.run([chromium(), *flags, "--screenshot=%s" % shot, "--window-size=1200,900", "file://%s" % page],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10000
