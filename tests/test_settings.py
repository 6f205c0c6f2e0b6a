"""Every setting checked once, where a run's settings are resolved (RunSettings.check): a value out
of range is one line naming the option and what it accepts, exit status 2, before anything is
stored, trained or written — for make train, make sweep and make table-cpu alike."""
import os

import pytest

from dhn import sweep, table, train
from dhn.run_folder import RunSettings, TrainError

BAD = [
    (["--bits", "0", "--features"], "--bits 0: a code length, a whole number of bits >= 1"),
    (["--lr", "-1"], "--lr -1.0: a positive number"),
    (["--lr", "nan"], "--lr nan: a positive number"),
    (["--lambda", "-0.5"], "--lambda -0.5: a finite, non-negative number"),
    (["--alpha", "0"], "--alpha 0.0: a positive number"),
    (["--iters", "0"], "--iters 0: a whole number of iterations >= 1"),
    (["--seed", "-3"], "--seed -3: a whole number >= 0"),
    (["--backbone-lr-mult", "-1"], "--backbone-lr-mult -1.0: a finite, non-negative number"),
]


@pytest.mark.parametrize("argv, said", BAD, ids=[b[0][0] for b in BAD])
def test_a_value_out_of_range_is_one_line_before_anything_is_written(argv, said, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DHN_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert train.main(["--dataset", "cifar10"] + argv) == 2
    assert capsys.readouterr().err == "error: %s\n" % said
    assert os.listdir(tmp_path) == []            # no run folder, no data, nothing


def test_sweep_and_table_check_before_they_carve_or_extract(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DHN_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert table.main(["--bits", "12,0"]) == 2
    assert capsys.readouterr().err == "error: --bits 0: a code length, a whole number of bits >= 1\n"
    assert table.main(["--seeds", "1,-1"]) == 2
    assert capsys.readouterr().err == "error: --seed -1: a whole number >= 0\n"
    with pytest.raises(TrainError, match=r"^--lr -0.001: a positive number$"):
        sweep.run(RunSettings("cifar10", 48, "dhn"), lrs=(1e-3, -1e-3), lambdas=(1.0,))
    assert os.listdir(tmp_path) == []


def test_good_settings_pass_unchanged():
    s = RunSettings("cifar10", 48, "dhn-q", lr=1e-3, lambda_=0.0, alpha=0.2, similar_weight="balanced", iters=10,
                    seed=0, views=2, backbone_lr_mult=0.0, upper="1")
    assert s.check() is s
    with pytest.raises(TrainError, match=r"^--similar-weight 0: a positive number or 'balanced'$"):
        RunSettings("cifar10", 48, "dhn", similar_weight=0).check()
    with pytest.raises(TrainError, match=r"^--views 3: 1, 2 or 10 views a training image$"):
        RunSettings("cifar10", 48, "dhn", views=3).check()
