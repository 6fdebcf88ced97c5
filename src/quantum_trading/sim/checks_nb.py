"""Numba kernels for the input checks of :mod:`quantum_trading.sim.inputs` (one pass each).

They only find problems; :mod:`~quantum_trading.sim.inputs` turns them into
:class:`~quantum_trading.errors.DataError` messages naming the row and column.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "any_inf_nb",
    "bar_problem_nb",
    "bars_problem_nb",
    "default_funding_rates_nb",
    "first_unsorted_nb",
    "funding_mask_nb",
    "ohlc_problem_nb",
    "usual_step_nb",
]

OK = 0
NOT_FINITE = 1
NOT_POSITIVE = 2
HIGH_BELOW = 3
LOW_ABOVE = 4
NEGATIVE_VOLUME = 5
NAT = 6  # missing timestamp (NaT) in the index
UNSORTED = 7  # timestamp not after the previous one
_NAT_INT = np.iinfo(np.int64).min


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


@njit(cache=True)
def bars_problem_nb(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                    v: np.ndarray, check_volume: bool):
    """Every check of one asset's bars in one pass: ``(code, row, column 0-4, usual_step)``.

    Index problems (NaT, not strictly increasing: column −1) are reported before price
    problems, each at its first row; prices as :func:`ohlc_problem_nb`. ``usual_step``: the
    step between rows when more than half the steps equal the first one, else 0 (as
    :func:`usual_step_nb`; ``ts`` in the index's own unit).
    """
    n = ts.shape[0]
    idx_row = -1
    idx_code = OK
    px_row = -1
    step = ts[1] - ts[0] if n >= 2 else 0
    same = 0
    for t in range(n):
        if ts[t] == _NAT_INT:
            idx_code, idx_row = NAT, t
            break
        if t > 0:
            d = ts[t] - ts[t - 1]
            if d <= 0:
                idx_code, idx_row = UNSORTED, t
                break
            if d == step:
                same += 1
        if px_row < 0:
            ot, ht, lt, ct = o[t], h[t], lo[t], c[t]
            # one test covers finite, > 0 and low <= open, close <= high (NaN compares False)
            if not (lt > 0.0 and lt <= ot and lt <= ct and ht >= ot and ht >= ct
                    and ht < np.inf) or (check_volume and not (0.0 <= v[t] < np.inf)):
                px_row = t
    if idx_row >= 0:
        return idx_code, idx_row, -1, 0
    usual = step if 2 * same > n - 1 else 0
    if px_row >= 0:
        code, _, col = ohlc_problem_nb(o[px_row:px_row + 1], h[px_row:px_row + 1],
                                       lo[px_row:px_row + 1], c[px_row:px_row + 1],
                                       v[px_row:px_row + 1], check_volume)
        return code, px_row, col, usual
    return OK, -1, -1, usual


@njit(cache=True)
def default_funding_rates_nb(ts: np.ndarray, unit_ns: int, timeframe_ns: int, period_ns: int,
                             rate: float) -> np.ndarray:
    """``[T, 1]``: ``rate`` on the bars whose ``[open, open + timeframe)`` contains a multiple of
    ``period_ns`` (ns since the epoch), NaN elsewhere; the same integer rule as
    :func:`funding_mask_nb`. ``ts``: sorted bar open times in units of ``unit_ns`` ns."""
    n = ts.shape[0]
    out = np.empty((n, 1))
    nxt = 0
    for t in range(n):
        x = ts[t] * unit_ns
        if t == 0 or x - nxt > 4 * period_ns:
            nxt = -((-x) // period_ns) * period_ns  # the first settlement at or after x
        while nxt < x:
            nxt += period_ns
        out[t, 0] = rate if nxt < x + timeframe_ns else np.nan
    return out


_ABS_MASK = np.uint64(0x7FFFFFFFFFFFFFFF)
_INF_BITS = np.uint64(0x7FF0000000000000)


@njit(cache=True)
def any_inf_nb(bits: np.ndarray) -> bool:
    """Whether float64 values, given as their bits (``a.reshape(-1).view(np.uint64)``), hold
    +inf or −inf (NaN allowed). Integer compares without an early exit: vectorised."""
    acc = 0
    for k in range(bits.shape[0]):
        acc |= (bits[k] & _ABS_MASK) == _INF_BITS
    return acc != 0
