"""A run resolved once (train.plan): each of the four modes gives its typed Backbone, run folder and
identity from the options alone, and planning writes no run folder (only the stored mode stores its
inputs, which the plan's identity needs)."""
import os

import pytest

from dhn import features, netgen, train
from dhn.run_folder import RunSettings, TrainError
import datagen

MEAN, SCALE = (128, 128, 128), 1 / 128


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("plan"))
    deploy, model = datagen.small_backbone(root)
    data, _ = datagen.converted_demo(root, 120, seed=9, order_seed=1, n_train=80, n_query=20)
    spec = deploy + ":feat"
    fdir, _ = features.extract("demo", ("train", "query", "database"), spec, model, mean=MEAN, scale=SCALE,
                               data_dir=data, out=os.path.join(root, "features"), progress=False)
    return dict(root=root, spec=spec, model=model, data=data, features=fdir)


def _settings(setup, **kw):
    foreign = dict(backbone=setup["spec"], weights=setup["model"], mean=MEAN, scale=SCALE)
    return RunSettings("demo", 16, "dhn", **dict(foreign if kw.pop("foreign", True) else {}, **kw))


@pytest.mark.parametrize("mode, options, kind, suffix", [
    ("paper", dict(foreign=False), netgen.BUILT, ""),
    ("frozen", dict(features=True), netgen.FEATURES, "-smallnet-frozen"),
    ("stored", dict(upper="1"), netgen.STORED, "-smallnet-upper-c1"),
    ("whole", dict(init_fch="none"), netgen.FOREIGN, "-smallnet"),
])
def test_each_mode_is_planned_into_its_typed_backbone_and_folder(setup, monkeypatch, mode, options, kind, suffix):
    monkeypatch.setenv("DHN_ROOT", setup["root"])
    data = setup["features"] if mode == "frozen" else setup["data"]
    s = _settings(setup, data_dir=data, **options)
    assert s.mode == kind
    step = train.steps(s)[-1]     # whole: INIT_FCH=none, a cold start without the fitted head's run
    p = train.plan(step)
    assert p.net.kind == kind and p.settings == step.resolved()
    assert p.run_dir == os.path.join(setup["root"], "runs", "demo-16-dhn" + suffix)
    assert not os.path.exists(p.run_dir)                      # planning writes no run folder
    assert p.identity["mode"] == {netgen.FEATURES: "frozen features", netgen.STORED: "fine-tuned above stored c1"}.get(
        kind, "fine-tuned")
    # the images' transform is the backbone's whatever the mode (the paper's: the demo net's own)
    assert (tuple(p.images.mean), p.images.scale) == (MEAN, SCALE)
    assert p.images.takes_images and (p.net is p.images) == (kind in (netgen.BUILT, netgen.FOREIGN))
    # a frozen run's net is the head alone: caffe train copies nothing pretrained into it
    assert (p.start_weights is None) == (kind in (netgen.FEATURES, netgen.BUILT))
    if kind == netgen.STORED:
        assert p.net.shape == (16, 12, 12) and p.net.cut == "c1" and p.identity["views"] == 2


def test_conflicting_modes_are_refused_when_checked(setup):
    with pytest.raises(TrainError, match="two modes"):
        _settings(setup, features=True, upper="1").check()
