"""Numba kernels for the input checks of :mod:`quantum_trading.sim.inputs` (one pass each).

They only find problems; :mod:`~quantum_trading.sim.inputs` turns them into
:class:`~quantum_trading.errors.DataError` messages naming the row and column.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["bar_problem_nb", "first_unsorted_nb", "funding_mask_nb", "ohlc_problem_nb", "usual_step_nb"]

OK = 0
NOT_FINITE = 1
NOT_POSITIVE = 2
HIGH_BELOW = 3
LOW_ABOVE = 4
NEGATIVE_VOLUME = 5


@njit(cache=True)
def ohlc_problem_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                    v: np.ndarray, check_volume: bool):
    """First problem in OHLC(V) rows: ``(code, row, column 0-4)``; code 0 = none.

    Columns: 0 open, 1 high, 2 low, 3 close, 4 volume.
    """
    for t in range(o.shape[0]):
        row = (o[t], h[t], lo[t], c[t])
        for k in range(4):
            x = row[k]
            if not np.isfinite(x):
                return NOT_FINITE, t, k
            if x <= 0.0:
                return NOT_POSITIVE, t, k
        if h[t] < o[t] or h[t] < c[t]:
            return HIGH_BELOW, t, 1
        if lo[t] > o[t] or lo[t] > c[t]:
            return LOW_ABOVE, t, 2
        if check_volume:
            if not np.isfinite(v[t]):
                return NOT_FINITE, t, 4
            if v[t] < 0.0:
                return NEGATIVE_VOLUME, t, 4
    return OK, -1, -1


@njit(cache=True)
def first_unsorted_nb(ns: np.ndarray) -> int:
    """First position whose timestamp is not after the previous one (−1 if sorted)."""
    for t in range(1, ns.shape[0]):
        if ns[t] <= ns[t - 1]:
            return t
    return -1


@njit(cache=True)
def usual_step_nb(ns: np.ndarray) -> int:
    """The step between rows when more than half the steps equal the first one, else 0."""
    n = ns.shape[0]
    if n < 2:
        return 0
    step = ns[1] - ns[0]
    same = 0
    for t in range(1, n):
        if ns[t] - ns[t - 1] == step:
            same += 1
    return step if 2 * same > n - 1 else 0


@njit(cache=True)
def funding_mask_nb(ns: np.ndarray, timeframe_ns: int, period_ns: int) -> np.ndarray:
    """Bars whose ``[open, open + timeframe)`` contains a multiple of ``period_ns``."""
    out = np.empty(ns.shape[0], dtype=np.bool_)
    for t in range(ns.shape[0]):
        first = -((-ns[t]) // period_ns) * period_ns
        out[t] = first < ns[t] + timeframe_ns
    return out


@njit(cache=True)
def bar_problem_nb(ohlc: np.ndarray) -> bool:
    """Whether one bar's ``[4, N]`` open/high/low/close rows are unusable (not finite, not
    positive, or ``low <= open, close <= high`` violated)."""
    for i in range(ohlc.shape[1]):
        o, h, lo, c = ohlc[0, i], ohlc[1, i], ohlc[2, i], ohlc[3, i]
        if not (np.isfinite(o) and np.isfinite(h) and np.isfinite(lo) and np.isfinite(c)):
            return True
        if lo <= 0.0 or h < o or h < c or lo > o or lo > c:
            return True
    return False
