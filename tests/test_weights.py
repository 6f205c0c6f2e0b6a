"""`make weights`: checksum-verified, atomic download (over a file:// URL here, since the
real host is unreachable from these machines), and clear errors."""
import hashlib

import pytest

from dhn import weights


def test_fetch_checks_sha1_and_renames_only_when_good(tmp_path):
    src = tmp_path / "model.caffemodel"
    src.write_bytes(b"weights" * 1000)
    sha1 = hashlib.sha1(src.read_bytes()).hexdigest()
    out = tmp_path / "w" / "bvlc_alexnet.caffemodel"
    assert weights.fetch(str(out), src.as_uri(), sha1, quiet=True) == str(out)
    assert out.read_bytes() == src.read_bytes()
    # a second call checks the file and downloads nothing
    src.unlink()
    weights.fetch(str(out), src.as_uri(), sha1, quiet=True)


def test_wrong_checksum_keeps_nothing(tmp_path):
    src = tmp_path / "model.caffemodel"
    src.write_bytes(b"not alexnet")
    out = tmp_path / "bvlc_alexnet.caffemodel"
    with pytest.raises(weights.WeightsError, match="sha1 does not match"):
        weights.fetch(str(out), src.as_uri(), "0" * 40, quiet=True)
    assert list(tmp_path.iterdir()) == [src]


def test_existing_file_with_wrong_checksum_is_refused(tmp_path):
    out = tmp_path / "bvlc_alexnet.caffemodel"
    out.write_bytes(b"truncated")
    with pytest.raises(weights.WeightsError, match="delete it and run `make weights`"):
        weights.fetch(str(out), "file:///nonexistent", weights.ALEXNET_SHA1, quiet=True)


def test_unreachable_url_says_where_to_put_the_file(tmp_path):
    out = tmp_path / "bvlc_alexnet.caffemodel"
    with pytest.raises(weights.WeightsError, match="put it at .*bvlc_alexnet.caffemodel"):
        weights.fetch(str(out), (tmp_path / "missing").as_uri(), weights.ALEXNET_SHA1, quiet=True)
    assert not out.exists() and not (tmp_path / "bvlc_alexnet.caffemodel.part").exists()


def test_a_mirror_is_read_under_the_source_file_name(tmp_path, capsys):
    """--mirror DIR_OR_URL (make: MIRROR=): AlexNet is looked for as bvlc_alexnet.caffemodel there."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "bvlc_alexnet.caffemodel").write_bytes(b"a copy that is not AlexNet")
    out = tmp_path / "w" / "bvlc_alexnet.caffemodel"
    assert weights.main(["--mirror", str(mirror), "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()[-1]      # after the download's progress bar
    assert err == "error: %s: downloaded file's sha1 does not match %s; nothing kept, try again" % (
        (mirror / "bvlc_alexnet.caffemodel").as_uri(), weights.ALEXNET_SHA1)
    assert not out.exists() and not (tmp_path / "w" / "bvlc_alexnet.caffemodel.part").exists()
    assert weights.url_of(weights.ALEXNET, "http://127.0.0.1:8000/m/") == "http://127.0.0.1:8000/m/bvlc_alexnet.caffemodel"
