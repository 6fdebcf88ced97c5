"""Walk-forward and CPCV splits (research.splits): leakage, purging, embargo, paths."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trading.research import splits
from quantum_trading.research.splits import (
    Split,
    cpcv_n_paths,
    cpcv_n_splits,
    cpcv_splits,
    walk_forward_splits,
)

FAST = settings(max_examples=150, deadline=None)


def test_doctests() -> None:
    result = doctest.testmod(splits, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def _as_set(a: np.ndarray) -> set[int]:
    return {int(x) for x in a}


def _check_split_records(split: Split) -> None:
    """Arrays sorted, disjoint, read-only; ``touched`` is exactly train ∪ test."""
    parts = [split.train, split.test, split.purged, split.embargoed]
    for arr in parts:
        assert arr.dtype == np.int64 and not arr.flags.writeable
        assert np.all(np.diff(arr) > 0)
        assert arr.size == 0 or (arr[0] >= 0 and arr[-1] < split.n_obs)
    assert sum(a.size for a in parts) == len(set().union(*map(_as_set, parts)))
    assert _as_set(split.touched) == _as_set(split.train) | _as_set(split.test)
    train, test = split
    assert train is split.train and test is split.test


# --------------------------------------------------------------------------------------------
# Walk-forward
# --------------------------------------------------------------------------------------------

def test_walk_forward_rolling_and_anchored_by_hand() -> None:
    rolling = walk_forward_splits(20, train_size=8, test_size=4)
    assert [(f.train.tolist(), f.test.tolist()) for f in rolling] == [
        (list(range(0, 8)), [8, 9, 10, 11]),
        (list(range(4, 12)), [12, 13, 14, 15]),
        (list(range(8, 16)), [16, 17, 18, 19]),
    ]
    anchored = walk_forward_splits(pd.RangeIndex(20), train_size=8, test_size=4, step=6,
                                   anchored=True)
    assert [(f.train.tolist(), f.test.tolist()) for f in anchored] == [
        (list(range(0, 8)), [8, 9, 10, 11]),
        (list(range(0, 14)), [14, 15, 16, 17]),
    ]
    assert [f.fold for f in anchored] == [0, 1] and anchored[0].test_groups == ()
    # purge h = 2 and embargo 1: the last 3 bars before each test are set aside
    gapped = walk_forward_splits(20, train_size=8, test_size=4, label_horizon=2, embargo=1)
    assert gapped[1].train.tolist() == [4, 5, 6, 7, 8]
    assert gapped[1].embargoed.tolist() == [9]
    assert gapped[1].purged.tolist() == [10, 11]
    assert gapped[1].test.tolist() == [12, 13, 14, 15]
    assert gapped[1].test_blocks == [(12, 16)]


@st.composite
def _walk_forward_cases(draw):
    n = draw(st.integers(2, 300))
    train = draw(st.integers(1, n - 1))
    test = draw(st.integers(1, n - train))
    step = draw(st.one_of(st.none(), st.integers(1, 50)))
    anchored = draw(st.booleans())
    h = draw(st.integers(0, max(0, min(train - 1, 10))))
    embargo = draw(st.integers(0, max(0, train - 1 - h)))
    return n, train, test, step, anchored, h, embargo


@FAST
@given(_walk_forward_cases())
def test_walk_forward_never_leaks(case) -> None:
    n, train_size, test_size, step, anchored, h, embargo = case
    folds = walk_forward_splits(n, train_size=train_size, test_size=test_size, step=step,
                                anchored=anchored, label_horizon=h, embargo=embargo)
    step = test_size if step is None else step
    assert len(folds) == (n - train_size - test_size) // step + 1
    for k, f in enumerate(folds):
        _check_split_records(f)
        start = train_size + k * step
        assert f.fold == k
        assert f.test.tolist() == list(range(start, start + test_size))
        lo = 0 if anchored else start - train_size
        # train, purged and embargoed bars tile the training window exactly
        window = set(range(lo, start))
        assert _as_set(f.train) | _as_set(f.purged) | _as_set(f.embargoed) == window
        # purged: labels [t, t + h] that reach the test; embargoed: the embargo bars before
        assert _as_set(f.purged) == window & set(range(start - h, start))
        assert _as_set(f.embargoed) == window & set(range(start - h - embargo, start - h))
        # no test bar in train, and a gap of h + embargo bars between them
        assert not _as_set(f.train) & _as_set(f.test)
        assert f.test[0] - f.train[-1] > h + embargo
        assert f.train[-1] + h < f.test[0]          # no training label reaches the test


@FAST
@given(st.data())
def test_walk_forward_purges_by_label_end(data) -> None:
    """With arbitrary label ends, a training label never ends within ``embargo`` bars of
    the test start, and exactly the bars that violate it are set aside."""
    n = data.draw(st.integers(20, 120))
    ends = np.array([data.draw(st.integers(i, min(n - 1, i + 3))) for i in range(n)])
    embargo = data.draw(st.integers(0, 3))
    folds = walk_forward_splits(n, train_size=n // 2, test_size=max(1, n // 6),
                                label_end=ends, embargo=embargo)
    for f in folds:
        _check_split_records(f)
        a = int(f.test[0])
        window = set(range(a - n // 2, a))
        purged = {i for i in window if ends[i] >= a}
        embargoed = {i for i in window if ends[i] >= a - embargo} - purged
        assert _as_set(f.purged) == purged
        assert _as_set(f.embargoed) == embargoed
        assert _as_set(f.train) == window - purged - embargoed
        assert np.all(ends[f.train] < a - embargo)


def test_walk_forward_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="train_size"):
        walk_forward_splits(10, train_size=0, test_size=2)
    with pytest.raises(ValueError, match="test_size"):
        walk_forward_splits(10, train_size=2, test_size=2.5)
    with pytest.raises(ValueError, match="step"):
        walk_forward_splits(10, train_size=2, test_size=2, step=0)
    with pytest.raises(ValueError, match="no fold fits"):
        walk_forward_splits(10, train_size=8, test_size=3)
    with pytest.raises(ValueError, match="no training bar"):
        walk_forward_splits(10, train_size=3, test_size=2, label_horizon=2, embargo=1)
    with pytest.raises(ValueError, match="n_obs"):
        walk_forward_splits(0, train_size=1, test_size=1)
    with pytest.raises(ValueError, match="not both"):
        walk_forward_splits(10, train_size=4, test_size=2, label_horizon=1,
                            label_end=np.arange(10))


# --------------------------------------------------------------------------------------------
# CPCV
# --------------------------------------------------------------------------------------------

def test_cpcv_counts_formula() -> None:
    assert (cpcv_n_splits(6, 2), cpcv_n_paths(6, 2)) == (15, 5)
    assert (cpcv_n_splits(10, 2), cpcv_n_paths(10, 2)) == (45, 9)
    for n_groups in range(2, 11):
        for k in range(1, n_groups):
            assert cpcv_n_paths(n_groups, k) * n_groups == k * cpcv_n_splits(n_groups, k)


def test_cpcv_by_hand() -> None:
    """N = 6, k = 2 on 60 bars (López de Prado's figure 12.1 layout), h = 2, embargo 1."""
    cv = cpcv_splits(60, n_groups=6, n_test_groups=2, label_horizon=2, embargo=1)
    assert len(cv) == 15 and cv.n_paths == 5 and cv.n_groups == 6
    assert [g.tolist() for g in cv.groups] == [list(range(10 * g, 10 * g + 10))
                                              for g in range(6)]
    s = cv[5]                                   # test groups (1, 2): one block, bars 10–29
    assert s.test_groups == (1, 2) and s.test_blocks == [(10, 30)]
    assert s.purged.tolist() == [8, 9, 30, 31]  # labels reaching bar 10; starts in [10, 31]
    assert s.embargoed.tolist() == [32]         # one bar after the test labels' span
    assert s.train.tolist() == [*range(8), *range(33, 60)]
    # the path map: group g on path p comes from the p-th split that tests g
    assert cv.paths[:, 0].tolist() == [0, 1, 2, 3, 4]        # (0,1) (0,2) … (0,5)
    assert cv.paths[:, 5].tolist() == [4, 8, 11, 13, 14]     # (0,5) (1,5) … (4,5)


def test_cpcv_embargo_frac_and_time_label_ends() -> None:
    idx = pd.date_range("2024-01-01", periods=100, freq="1h", tz="UTC")
    by_frac = cpcv_splits(idx, n_groups=5, n_test_groups=2, label_horizon=3,
                          embargo_frac=0.05)
    by_bars = cpcv_splits(100, n_groups=5, n_test_groups=2, label_horizon=3, embargo=5)
    assert by_frac.embargo == 5
    t1 = pd.Series(idx[np.minimum(np.arange(100) + 3, 99)], index=idx)  # López de Prado's t1
    by_time = cpcv_splits(100, n_groups=5, n_test_groups=2, label_end=t1, embargo=5)
    for a, b, c in zip(by_frac, by_bars, by_time, strict=True):
        for name in ("train", "test", "purged", "embargoed"):
            assert getattr(a, name).tolist() == getattr(b, name).tolist()
            assert getattr(c, name).tolist() == getattr(b, name).tolist()


@st.composite
def _cpcv_cases(draw):
    n_groups = draw(st.integers(2, 7))
    k = draw(st.integers(1, n_groups - 1))
    n = draw(st.integers(n_groups, 90))
    embargo = draw(st.integers(0, 6))
    if draw(st.booleans()):
        h = draw(st.integers(0, 8))
        ends = np.minimum(np.arange(n) + h, n - 1)
        kwargs = {"label_horizon": h}
    else:
        ends = np.array([draw(st.integers(i, min(n - 1, i + 10))) for i in range(n)])
        kwargs = {"label_end": ends}
    return n, n_groups, k, embargo, ends, kwargs


@FAST
@given(_cpcv_cases())
def test_cpcv_purging_embargo_and_paths(case) -> None:
    n, n_groups, k, embargo, ends, kwargs = case
    cv = cpcv_splits(n, n_groups=n_groups, n_test_groups=k, embargo=embargo, **kwargs)
    assert len(cv) == math.comb(n_groups, k)
    assert cv.n_paths == math.comb(n_groups - 1, k - 1)
    assert cv.n_paths * n_groups == k * len(cv)             # φ = k/N · C(N, k)
    # groups: contiguous, in order, sizes differ by at most one, cover every bar
    sizes = [g.size for g in cv.groups]
    assert max(sizes) - min(sizes) <= 1
    assert np.concatenate(cv.groups).tolist() == list(range(n))
    bars = set(range(n))
    for s in cv:
        _check_split_records(s)
        assert len(s.test_groups) == k
        test = set().union(*(_as_set(cv.groups[g]) for g in s.test_groups))
        assert _as_set(s.test) == test
        # purged: exactly the non-test bars whose label [i, L_i] overlaps a test label
        purged = {i for i in bars - test
                  if any(i <= ends[j] and ends[i] >= j for j in test)}
        # embargoed: the next `embargo` bars after a test label's end, not purged
        embargoed = {i for i in bars - test - purged
                     if any(ends[j] < i <= ends[j] + embargo for j in test)}
        assert _as_set(s.purged) == purged
        assert _as_set(s.embargoed) == embargoed
        assert _as_set(s.train) == bars - test - purged - embargoed
        # no surviving training label overlaps any test label
        for i in s.train:
            assert all(ends[i] < j or i > ends[j] for j in test)
    # paths: each (split, test group) pair feeds exactly one path; each path covers all bars
    pairs = {(int(cv.paths[p, g]), g) for p in range(cv.n_paths) for g in range(n_groups)}
    assert pairs == {(si, g) for si, s in enumerate(cv) for g in s.test_groups}
    stitched = cv.stitch([s.test for s in cv])
    assert stitched.shape == (cv.n_paths, n)
    assert (stitched == np.arange(n)).all()                 # every bar on every path
    coverage = np.zeros(n, dtype=int)
    for p in range(cv.n_paths):
        for g in range(n_groups):
            coverage[cv.groups[g]] += 1
            assert g in cv[int(cv.paths[p, g])].test_groups
    assert (coverage == cv.n_paths).all()                   # each bar in exactly φ paths


def test_cpcv_stitch_values_and_frame() -> None:
    cv = cpcv_splits(30, n_groups=5, n_test_groups=2)
    oos = [pd.Series(100.0 * si + s.test) for si, s in enumerate(cv)]  # tag: split id
    paths = cv.stitch(oos)
    for p in range(cv.n_paths):
        for g, group in enumerate(cv.groups):
            assert (paths[p, group] == 100.0 * cv.paths[p, g] + group).all()
    idx = pd.date_range("2024-01-01", periods=30, freq="1D", tz="UTC")
    frame = cv.stitch(oos, index=idx)
    assert frame.shape == (30, cv.n_paths) and frame.index.equals(idx)
    np.testing.assert_array_equal(frame.to_numpy().T, paths)
    with pytest.raises(ValueError, match="splits"):
        cv.stitch(oos[:-1])
    with pytest.raises(ValueError, match="test bars"):
        cv.stitch([np.zeros(3)] * len(cv))
    with pytest.raises(ValueError, match="index"):
        cv.stitch(oos, index=idx[:-1])


def test_cpcv_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_groups"):
        cpcv_splits(10, n_groups=1, n_test_groups=1)
    with pytest.raises(ValueError, match="n_test_groups"):
        cpcv_splits(10, n_groups=4, n_test_groups=4)
    with pytest.raises(ValueError, match="groups"):
        cpcv_splits(3, n_groups=4, n_test_groups=1)
    with pytest.raises(ValueError, match="embargo_frac"):
        cpcv_splits(10, n_groups=4, n_test_groups=1, embargo_frac=1.5)
    with pytest.raises(ValueError, match="not both"):
        cpcv_splits(10, n_groups=4, n_test_groups=1, embargo=1, embargo_frac=0.1)
    with pytest.raises(ValueError, match=r"label_end\[3\]"):
        cpcv_splits(5, n_groups=2, n_test_groups=1, label_end=[0, 1, 2, 2, 4])
    with pytest.raises(ValueError, match="5 bars"):
        cpcv_splits(5, n_groups=2, n_test_groups=1, label_end=[0, 1, 2])
    with pytest.raises(ValueError, match="integer"):
        cpcv_splits(5, n_groups=2, n_test_groups=1, label_end=[0, 1.5, 2, 3, 4])
    with pytest.raises(ValueError, match="label_horizon"):
        cpcv_splits(5, n_groups=2, n_test_groups=1, label_horizon=-1)
