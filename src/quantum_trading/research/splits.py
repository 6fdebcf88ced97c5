"""Train/test splits for honest out-of-sample evaluation: walk-forward (rolling or anchored)
and combinatorial purged cross-validation (CPCV, López de Prado 2018, ch. 7 and 12).

Conventions
-----------
* Splits are over **bar positions** ``0 … n_obs − 1`` of a time-ordered dataset (pass the
  number of bars or anything with a length: an index, a DataFrame). Positions are sorted
  ``int64`` arrays; select rows with ``df.iloc[split.train]``.
* **Labels.** The label (target, trade outcome) of bar ``t`` is known only at the close of
  bar ``L_t ≥ t``: it uses bars ``[t, L_t]``. ``label_horizon = h`` means ``L_t =
  min(t + h, n_obs − 1)`` (a trade entered at ``t`` and closed ``h`` bars later); any other
  ``L`` can be given as ``label_end`` (positions, or a Series of end times on the bar index,
  as López de Prado's ``t1``).
* **Purging.** A training bar is *purged* when its label interval ``[t, L_t]`` overlaps the
  span ``[a, e]`` of a contiguous test block ``[a, b]``, ``e = max L`` over the block: its
  label would share information with the test labels.
* **Embargo** (``embargo`` bars) keeps training labels a little further from the test, for
  serial correlation beyond the label: in CPCV the ``embargo`` bars after ``e`` are dropped
  (training after a test block); in walk-forward, where training always precedes the test,
  bars whose label ends within ``embargo`` bars before ``a`` are dropped, so that train and
  test are separated by ``h + embargo`` bars.
* Every :class:`Split` records exactly which bars it touches (``train ∪ test``) and which it
  set aside (``purged``, ``embargoed``); the rest of the bars are outside its window.

>>> folds = walk_forward_splits(10, train_size=4, test_size=2, label_horizon=1)
>>> [(f.train.tolist(), f.test.tolist(), f.purged.tolist()) for f in folds]
[([0, 1, 2], [4, 5], [3]), ([2, 3, 4], [6, 7], [5]), ([4, 5, 6], [8, 9], [7])]
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "CPCVSplits",
    "Split",
    "cpcv_n_paths",
    "cpcv_n_splits",
    "cpcv_splits",
    "walk_forward_splits",
]


def _frozen(positions: np.ndarray) -> np.ndarray:
    arr = np.array(positions, dtype=np.int64).reshape(-1)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Split:
    """One train/test split over bar positions ``0 … n_obs − 1``.

    Unpacks as ``train, test = split`` (scikit-learn style). All arrays are sorted, disjoint,
    read-only ``int64`` positions.

    Attributes
    ----------
    train, test:
        Bars to fit on and to evaluate on.
    purged:
        Bars of the training window left out because their label overlaps the test.
    embargoed:
        Bars left out by the embargo (not already purged).
    n_obs:
        Number of bars of the dataset.
    fold:
        Position of the split in its sequence (0-based).
    test_groups:
        CPCV: the groups whose bars form the test set; ``()`` for walk-forward.
    """

    train: np.ndarray
    test: np.ndarray
    purged: np.ndarray
    embargoed: np.ndarray
    n_obs: int
    fold: int
    test_groups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("train", "test", "purged", "embargoed"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.train
        yield self.test

    @property
    def touched(self) -> np.ndarray:
        """Every bar the split reads: ``train ∪ test``, sorted."""
        return _frozen(np.union1d(self.train, self.test))

    @property
    def test_blocks(self) -> list[tuple[int, int]]:
        """The test set as contiguous half-open ranges ``[start, stop)`` of bars."""
        return [(int(a), int(b) + 1) for a, b in _runs(self.test)]


def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs ``(first, last)`` (inclusive) of sorted positions."""
    if positions.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(positions) != 1)
    starts = np.r_[positions[0], positions[cuts + 1]]
    ends = np.r_[positions[cuts], positions[-1]]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def _n_obs(data: int | Sequence | pd.Index | pd.DataFrame | pd.Series | np.ndarray) -> int:
    if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
        return _count("n_obs", data, 1)
    try:
        return _count("n_obs (the length of the data)", len(data), 1)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"n_obs must be a number of bars or data with a length, "
                         f"not {type(data).__name__}") from None


def _label_end(n_obs: int, label_horizon: int, label_end: object) -> np.ndarray:
    """``L_t``: the position of the last bar each bar's label uses."""
    label_horizon = _count("label_horizon", label_horizon, 0)
    positions = np.arange(n_obs, dtype=np.int64)
    if label_end is None:
        return np.minimum(positions + label_horizon, n_obs - 1)
    if label_horizon:
        raise ValueError("give label_horizon or label_end, not both")
    if isinstance(label_end, pd.Series) and not pd.api.types.is_numeric_dtype(label_end):
        if label_end.isna().any() or not label_end.index.is_monotonic_increasing:
            raise ValueError("label_end as a Series needs end times without NaT on a sorted "
                             "bar index")
        ends = np.asarray(label_end.index.searchsorted(label_end.to_numpy(), side="right")) - 1
    else:
        raw = np.asarray(label_end)
        if raw.dtype.kind not in "iu" and not (
            raw.dtype.kind == "f" and np.isfinite(raw).all() and (raw == np.round(raw)).all()
        ):
            raise ValueError("label_end must hold integer bar positions (or be a Series of end "
                             "times indexed by bar time)")
        ends = raw.astype(np.int64)
    ends = ends.reshape(-1)
    if ends.size != n_obs:
        raise ValueError(f"label_end has {ends.size} values for {n_obs} bars")
    bad = np.flatnonzero((ends < positions) | (ends > n_obs - 1))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"label_end[{i}] = {int(ends[i])} must lie in [{i}, {n_obs - 1}] "
                         f"(a label ends at or after its own bar, within the data)")
    return ends


def _exclusions(test: np.ndarray, ends: np.ndarray, embargo: int,
                side: Literal["after", "before"]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(purged, embargoed)`` over all bars, for the given test mask."""
    n = test.size
    idx = np.arange(n)
    purged = np.zeros(n, dtype=bool)
    embargoed = np.zeros(n, dtype=bool)
    for a, b in _runs(np.flatnonzero(test)):
        span_end = int(ends[a:b + 1].max())
        purged |= (idx <= span_end) & (ends >= a)
        if embargo and side == "after":
            embargoed |= (idx > span_end) & (idx <= span_end + embargo)
        elif embargo:
            embargoed |= (idx < a) & (ends >= a - embargo)
    purged &= ~test
    embargoed &= ~(test | purged)
    return purged, embargoed


# --------------------------------------------------------------------------------------------
# Walk-forward
# --------------------------------------------------------------------------------------------

def walk_forward_splits(n_obs: int | Sequence | pd.Index | pd.DataFrame | pd.Series, *,
                        train_size: int, test_size: int, step: int | None = None,
                        anchored: bool = False, label_horizon: int = 0,
                        label_end: np.ndarray | pd.Series | None = None,
                        embargo: int = 0) -> tuple[Split, ...]:
    """Walk-forward folds: fit on a training window, test on the bars that follow it, move
    on by ``step`` bars.

    Fold ``k`` tests bars ``[s_k, s_k + test_size)`` with ``s_k = train_size + k · step``;
    its training window is ``[s_k − train_size, s_k)`` (rolling) or ``[0, s_k)``
    (``anchored``, growing). Only folds whose test window fits entirely are made. Within the
    window, bars whose label reaches into the test (``label_horizon`` / ``label_end``) are
    purged and bars whose label ends less than ``embargo`` bars before the test are
    embargoed: with a fixed horizon ``h``, the last ``h + embargo`` bars before the test.
    The test windows do not depend on purging, so results with and without it line up.

    Parameters
    ----------
    n_obs:
        Number of bars, or the data (anything with a length).
    train_size, test_size:
        Bars in the (first) training window and in each test window, ≥ 1.
    step:
        Bars between successive test starts (default ``test_size``: adjacent, disjoint tests).
    anchored:
        Keep the training start at bar 0 (expanding window) instead of rolling it.
    label_horizon, label_end:
        The label of bar ``t`` uses bars ``[t, t + label_horizon]``, or ``[t, label_end[t]]``.
    embargo:
        Extra bars of separation between the training labels and the test, ≥ 0.

    Returns
    -------
    tuple of Split
        In time order; ``fold`` numbers them.

    >>> f = walk_forward_splits(12, train_size=6, test_size=3, anchored=True,
    ...                         label_horizon=1, embargo=2)
    >>> [(s.train.tolist(), s.embargoed.tolist(), s.purged.tolist(), s.test.tolist()) for s in f]
    [([0, 1, 2], [3, 4], [5], [6, 7, 8]), ([0, 1, 2, 3, 4, 5], [6, 7], [8], [9, 10, 11])]
    """
    n = _n_obs(n_obs)
    train_size = _count("train_size", train_size, 1)
    test_size = _count("test_size", test_size, 1)
    step = test_size if step is None else _count("step", step, 1)
    embargo = _count("embargo", embargo, 0)
    ends = _label_end(n, label_horizon, label_end)
    if train_size + test_size > n:
        raise ValueError(f"train_size + test_size = {train_size + test_size} exceeds the "
                         f"{n} bars: no fold fits")
    folds = []
    idx = np.arange(n)
    for k, start in enumerate(range(train_size, n - test_size + 1, step)):
        test = (idx >= start) & (idx < start + test_size)
        window = (idx >= (0 if anchored else start - train_size)) & (idx < start)
        purged, embargoed = _exclusions(test, ends, embargo, "before")
        purged &= window
        embargoed &= window
        train = window & ~purged & ~embargoed
        if not train.any():
            raise ValueError(f"fold {k} has no training bar left after purging and embargo; "
                             f"make train_size larger than label_horizon + embargo")
        folds.append(Split(train=np.flatnonzero(train), test=np.flatnonzero(test),
                           purged=np.flatnonzero(purged), embargoed=np.flatnonzero(embargoed),
                           n_obs=n, fold=k))
    return tuple(folds)


# --------------------------------------------------------------------------------------------
# Combinatorial purged cross-validation
# --------------------------------------------------------------------------------------------

def cpcv_n_splits(n_groups: int, n_test_groups: int) -> int:
    """Number of CPCV splits: ``C(N, k)``.

    >>> cpcv_n_splits(6, 2)
    15
    """
    return math.comb(n_groups, n_test_groups)


def cpcv_n_paths(n_groups: int, n_test_groups: int) -> int:
    """Number of CPCV backtest paths: ``φ = k / N · C(N, k) = C(N − 1, k − 1)``.

    >>> cpcv_n_paths(6, 2)
    5
    """
    return math.comb(n_groups - 1, n_test_groups - 1)


@dataclass(frozen=True, eq=False)
class CPCVSplits:
    """The ``C(N, k)`` splits of combinatorial purged cross-validation and the map from
    splits to the ``φ = C(N − 1, k − 1)`` backtest paths.

    A sequence of :class:`Split` (``len``, iteration, indexing). Path ``p`` is a complete
    out-of-sample history: group ``g`` of it comes from the test set of split
    ``paths[p, g]``, so every bar lies on every path exactly once (in ``φ`` paths in all),
    and every (split, test group) pair feeds exactly one path.

    Attributes
    ----------
    splits:
        The splits, in the order of ``itertools.combinations(range(N), k)`` of test groups.
    groups:
        The ``N`` contiguous groups of bar positions (sizes differ by at most one bar).
    paths:
        ``int64`` array ``(φ, N)``: the split that supplies group ``g`` on path ``p``
        (for each group, the splits testing it, in order, give paths 0, 1, …).
    n_obs, n_test_groups, embargo:
        Number of bars, ``k``, and the embargo in bars.
    """

    splits: tuple[Split, ...]
    groups: tuple[np.ndarray, ...]
    paths: np.ndarray
    n_obs: int
    n_test_groups: int
    embargo: int

    def __len__(self) -> int:
        return len(self.splits)

    def __iter__(self) -> Iterator[Split]:
        return iter(self.splits)

    def __getitem__(self, i: int) -> Split:
        return self.splits[i]

    @property
    def n_groups(self) -> int:
        """``N``, the number of groups."""
        return len(self.groups)

    @property
    def n_paths(self) -> int:
        """``φ``, the number of backtest paths."""
        return int(self.paths.shape[0])

    def stitch(self, oos: Sequence[np.ndarray | pd.Series],
               index: pd.Index | None = None) -> np.ndarray | pd.DataFrame:
        """Assemble out-of-sample values into the ``φ`` backtest paths.

        Parameters
        ----------
        oos:
            One 1-D array per split, aligned with that split's ``test`` positions (e.g. the
            per-bar strategy returns of the model fitted on ``train``, on the test bars).
        index:
            Optional bar index (length ``n_obs``): the result becomes a DataFrame with one
            column per path.

        Returns
        -------
        np.ndarray or pd.DataFrame
            ``(φ, n_obs)`` array, row ``p`` = path ``p``; or ``n_obs × φ`` DataFrame.

        >>> cv = cpcv_splits(6, n_groups=3, n_test_groups=2)
        >>> cv.stitch([s.test * 10 for s in cv]).tolist()
        [[0, 10, 20, 30, 40, 50], [0, 10, 20, 30, 40, 50]]
        """
        if len(oos) != len(self.splits):
            raise ValueError(f"oos has {len(oos)} arrays for {len(self.splits)} splits")
        values = []
        for s, (split, arr) in enumerate(zip(self.splits, oos, strict=True)):
            a = np.asarray(arr)
            if a.ndim != 1 or a.size != split.test.size:
                raise ValueError(f"oos[{s}] has shape {a.shape}; split {s} has "
                                 f"{split.test.size} test bars")
            values.append(a)
        out = np.empty((self.n_paths, self.n_obs), dtype=np.result_type(*values))
        for p in range(self.n_paths):
            for g, group in enumerate(self.groups):
                s = int(self.paths[p, g])
                out[p, group] = values[s][np.searchsorted(self.splits[s].test, group)]
        if index is None:
            return out
        if len(index) != self.n_obs:
            raise ValueError(f"index has {len(index)} entries for {self.n_obs} bars")
        return pd.DataFrame(out.T, index=index,
                            columns=pd.RangeIndex(self.n_paths, name="path"))


def cpcv_splits(n_obs: int | Sequence | pd.Index | pd.DataFrame | pd.Series, *,
                n_groups: int, n_test_groups: int, label_horizon: int = 0,
                label_end: np.ndarray | pd.Series | None = None, embargo: int = 0,
                embargo_frac: float = 0.0) -> CPCVSplits:
    """Combinatorial purged cross-validation (López de Prado 2018, §12.4).

    The bars are cut into ``N = n_groups`` contiguous groups; each of the ``C(N, k)``
    choices of ``k = n_test_groups`` groups is a test set, the rest train. Training bars
    whose label interval overlaps a test block's label span are purged, and the
    ``embargo`` bars after each test block's label span are embargoed (see the module
    notes). The splits combine into ``φ = k/N · C(N, k)`` complete out-of-sample paths
    (:meth:`CPCVSplits.stitch`).

    Parameters
    ----------
    n_obs:
        Number of bars (≥ ``n_groups``), or the data (anything with a length).
    n_groups, n_test_groups:
        ``N ≥ 2`` and ``1 ≤ k < N``.
    label_horizon, label_end:
        The label of bar ``t`` uses bars ``[t, t + label_horizon]``, or ``[t, label_end[t]]``.
    embargo, embargo_frac:
        Embargo after each test block, in bars, or as a fraction of ``n_obs`` (López de
        Prado's ``pctEmbargo``: ``⌊n_obs · embargo_frac⌋`` bars); give at most one.

    Returns
    -------
    CPCVSplits

    >>> cv = cpcv_splits(12, n_groups=4, n_test_groups=2, label_horizon=1, embargo=1)
    >>> len(cv), cv.n_paths
    (6, 3)
    >>> s = cv[1]                       # test groups 0 and 2
    >>> s.test_groups, s.test.tolist(), s.purged.tolist(), s.embargoed.tolist()
    ((0, 2), [0, 1, 2, 6, 7, 8], [3, 5, 9], [4, 10])
    >>> s.train.tolist()
    [11]
    """
    n = _n_obs(n_obs)
    n_groups = _count("n_groups", n_groups, 2)
    k = _count("n_test_groups", n_test_groups, 1)
    if k >= n_groups:
        raise ValueError(f"n_test_groups must be below n_groups ({n_groups}), not {k}")
    if n < n_groups:
        raise ValueError(f"{n} bars cannot form n_groups={n_groups} groups")
    embargo = _count("embargo", embargo, 0)
    if not (isinstance(embargo_frac, numbers.Real) and 0.0 <= embargo_frac < 1.0):
        raise ValueError(f"embargo_frac must be a fraction in [0, 1), not {embargo_frac!r}")
    if embargo and embargo_frac:
        raise ValueError("give embargo (bars) or embargo_frac, not both")
    if embargo_frac:
        embargo = int(n * embargo_frac)
    ends = _label_end(n, label_horizon, label_end)
    groups = tuple(_frozen(g) for g in np.array_split(np.arange(n), n_groups))
    combos = list(itertools.combinations(range(n_groups), k))
    splits = []
    for s, chosen in enumerate(combos):
        test = np.zeros(n, dtype=bool)
        for g in chosen:
            test[groups[g]] = True
        purged, embargoed = _exclusions(test, ends, embargo, "after")
        train = ~(test | purged | embargoed)
        splits.append(Split(train=np.flatnonzero(train), test=np.flatnonzero(test),
                            purged=np.flatnonzero(purged), embargoed=np.flatnonzero(embargoed),
                            n_obs=n, fold=s, test_groups=tuple(chosen)))
    paths = np.empty((cpcv_n_paths(n_groups, k), n_groups), dtype=np.int64)
    for g in range(n_groups):
        paths[:, g] = [s for s, chosen in enumerate(combos) if g in chosen]
    paths.setflags(write=False)
    return CPCVSplits(splits=tuple(splits), groups=groups, paths=paths, n_obs=n,
                      n_test_groups=k, embargo=embargo)
