"""Bad input to dhn.metrics: one clear ValueError naming what is wrong and the fix."""
import numpy as np
import pytest

from dhn import metrics

Q = np.array([[1, -1, 1, 1]], np.int8)
QL = np.array([[1, 0]])
DB = np.array([[1, 1, 1, 1], [-1, -1, 1, 1], [1, -1, -1, 1]], np.int8)
DL = np.array([[1, 0], [0, 1], [1, 1]])


def test_code_and_label_counts_must_match():
    with pytest.raises(ValueError, match=r"3 database codes but 2 database labels"):
        metrics.map_at_r(Q, QL, DB, DL[:2])
    with pytest.raises(ValueError, match=r"1 query codes but 2 query labels"):
        metrics.evaluate(Q, np.vstack([QL, QL]), DB, DL, ns=[1])


def test_binary_codes_must_be_pm1():
    with pytest.raises(ValueError, match=r"database codes must be ±1 .*binarize"):
        metrics.map_at_r(Q, QL, DB * 0.5, DL)
    with pytest.raises(ValueError, match=r"query codes must be ±1"):
        metrics.map_at_r(np.zeros_like(Q), QL, DB, DL)
    with pytest.raises(ValueError, match=r"±1"):
        metrics.precision_within_radius(Q, QL, DB > 0, DL)   # 0/1 bits are not ±1 codes


def test_R_larger_than_the_database():
    with pytest.raises(ValueError, match=r"R=4 must be an integer in 1\.\.3 \(the database size"):
        metrics.map_at_r(Q, QL, DB, DL, R=4)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"must be an integer in 1\.\.3"):
            metrics.map_at_r(Q, QL, DB, DL, R=bad)
    with pytest.raises(ValueError, match=r"N=10 must be an integer in 1\.\.3"):
        metrics.precision_at_n(Q, QL, DB, DL)   # the default cut-offs go up to 1,000


def test_shapes_and_labels():
    with pytest.raises(ValueError, match=r"4 bits but database codes 3"):
        metrics.map_at_r(Q, QL, DB[:, :3], DL)
    with pytest.raises(ValueError, match=r"multi-hot.*np\.eye\(C\)\[y\]"):
        metrics.map_at_r(Q, QL, DB, np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"must be 0/1 multi-hot"):
        metrics.map_at_r(Q, QL, DB, DL * 2)
    with pytest.raises(ValueError, match=r"2 classes but database labels 3"):
        metrics.map_at_r(Q, QL, DB, np.hstack([DL, DL[:, :1]]))
    with pytest.raises(ValueError, match=r"2-D N×K"):
        metrics.map_at_r(Q[0], QL, DB, DL)
    with pytest.raises(ValueError, match=r"ranking must be one of"):
        metrics.map_at_r(Q, QL, DB, DL, ranking="euclidean")
    with pytest.raises(ValueError, match=r"radius=-1 must be a non-negative integer"):
        metrics.precision_within_radius(Q, QL, DB, DL, radius=-1)


def test_real_codes_must_be_finite():
    bad = DB.astype(np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"finite"):
        metrics.map_at_r(Q.astype(np.float32), QL, bad, DL, ranking="inner_product")
    with pytest.raises(ValueError, match=r"NaN or inf"):
        metrics.binarize(bad)
