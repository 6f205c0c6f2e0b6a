"""Features of other inputs never overwrite these: extracting with another mean or scale (the fault
injected) writes a folder of its own, the default folder keeps its name and its files."""
import os

import pytest

import datagen
from dhn import features, split_folder


@pytest.fixture
def setup(tmp_path, monkeypatch):
    import caffe
    monkeypatch.setenv("DHN_ROOT", str(tmp_path))     # features_dir() is under DHN_ROOT/data
    deploy = tmp_path / "smallnet" / "deploy.prototxt"
    deploy.parent.mkdir()
    deploy.write_text(datagen.SMALL_DEPLOY)
    caffe.set_mode_cpu()
    model = str(tmp_path / "smallnet.caffemodel")
    caffe.Net(str(deploy), caffe.TEST).save(model)
    data, _ = datagen.converted_demo(str(tmp_path / "demo"), 120, seed=2, order_seed=0, n_train=60, n_query=20)
    return dict(root=tmp_path, spec=str(deploy) + ":feat", model=model, data=data)


def extract(setup, **kw):
    out, _ = features.extract("demo", ("query",), setup["spec"], setup["model"], data_dir=setup["data"],
                              progress=False, **kw)
    return out


def test_another_mean_or_scale_goes_to_another_folder(setup):
    default = extract(setup)
    assert default == os.path.join(str(setup["root"]), "data", "demo", "features", "smallnet-feat")
    manifest = os.path.join(default, "query", "manifest.json")
    before = (os.stat(manifest).st_ino, split_folder.check_split(os.path.dirname(manifest))["key"])
    other = extract(setup, mean=(128, 128, 128), scale=1 / 128)
    assert os.path.basename(other) == "smallnet-feat-mean128,128,128-scale0.0078125"
    assert (os.stat(manifest).st_ino, split_folder.check_split(os.path.dirname(manifest))["key"]) == before
    assert split_folder.check_split(os.path.join(other, "query"))["key"]["backbone"]["mean"] == [128, 128, 128]
    # the default mean given explicitly is the default folder
    assert extract(setup, mean=(104, 117, 123), scale=1.0) == default
    assert features.backbone_of("demo", setup["spec"], (128, 128, 128), 1 / 128, setup["model"])[2] == \
        "smallnet-feat-mean128,128,128-scale0.0078125"
