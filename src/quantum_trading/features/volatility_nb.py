"""Volatility kernels (numba): true range, ATR, Bollinger Bands, rolling z-score and realised
volatility.

Rolling means and variances use sums of deviations from a shift ``K`` that is re-centred on
the window mean (the sums then recomputed exactly) every ``max(period, RECENTRE_EVERY)`` bars,
and at once whenever the window's spread becomes tiny next to its distance from ``K``
(``CANCELLATION_LIMIT``). So there is no catastrophic cancellation of ``E[x^2] - E[x]^2``:
the variance keeps about 11 significant digits, and there is no drift over long histories.
A window whose values are all equal has a variance of exactly 0 and a mean equal to it.

All kernels follow the NaN contract of :mod:`quantum_trading.features`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "CANCELLATION_LIMIT",
    "RECENTRE_EVERY",
    "atr_nb",
    "bbands_nb",
    "realised_volatility_nb",
    "rolling_zscore_nb",
    "true_range_nb",
]

_FMA = {"contract"}


@njit(cache=True)
def true_range_nb(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """``max(high, prev close) - min(low, prev close)`` (TA-Lib TRANGE, lookback 1)."""
    if out is None:
        out = np.empty(high.shape[0])
    if not _true_range_pass_nb(high, low, close, out, False):
        _true_range_pass_nb(high, low, close, out, True)
    return out


@njit(cache=True)
def _true_range_pass_nb(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, out: np.ndarray, checked: bool
) -> bool:
    """One true-range pass; see :mod:`.averages_nb` for ``checked`` and the result."""
    n = high.shape[0]
    count = 0
    prev_c = 0.0
    check_hl = 0.0  # NaN or inf as soon as a high or low is (inf - inf is NaN)
    check_c = 0.0
    for i in range(n):
        h = high[i]
        lo = low[i]
        c = close[i]
        check_hl += h - lo
        check_c += c
        if checked and not (np.isfinite(h) and np.isfinite(lo) and np.isfinite(c)):
            out[i] = np.nan
            count = 0
            continue
        count += 1
        if count == 1:
            out[i] = np.nan
        else:
            out[i] = max(h - lo, abs(h - prev_c), abs(lo - prev_c))
        prev_c = c
    return np.isfinite(check_hl + check_c)


@njit(cache=True)
def atr_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    period: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Wilder's average true range (TA-Lib ATR, lookback ``period``).

    The first value is the mean of the first ``period`` true ranges; later values use Wilder's
    smoothing. ``period == 1`` gives the true range itself.
    """
    if out is None:
        out = np.empty(high.shape[0])
    if not _atr_pass_nb(high, low, close, period, out, False):
        _atr_pass_nb(high, low, close, period, out, True)
    return out


@njit(cache=True, fastmath=_FMA)
def _atr_pass_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    period: int,
    out: np.ndarray,
    checked: bool,
) -> bool:
    """One ATR pass; see :mod:`.averages_nb` for ``checked`` and the result."""
    n = high.shape[0]
    inv = 1.0 / period
    decay = (period - 1) / period
    count = 0
    prev_c = 0.0
    total = 0.0
    check_hl = 0.0
    check_c = 0.0
    for i in range(n):
        h = high[i]
        lo = low[i]
        c = close[i]
        check_hl += h - lo
        check_c += c
        if checked and not (np.isfinite(h) and np.isfinite(lo) and np.isfinite(c)):
            out[i] = np.nan
            count = 0
            continue
        count += 1
        if count == 1:
            prev_c = c
            total = 0.0
            out[i] = np.nan
            continue
        tr = max(h - lo, abs(h - prev_c), abs(lo - prev_c))
        prev_c = c
        if count <= period + 1:
            total += tr
            if count < period + 1:
                out[i] = np.nan
                continue
            total = total / period
        else:
            total = total * decay + tr * inv
        out[i] = total
    return np.isfinite(check_hl + check_c)


_BANDS = 0
_ZSCORE = 1
_STD = 2

RECENTRE_EVERY = 128
"""Bars between re-centrings of the rolling-variance shift (at least ``period``)."""

CANCELLATION_LIMIT = 1e5
"""Re-centre at once when the sum of squared deviations from the shift exceeds the window's
own ``M2`` by this factor (about 5 of 16 digits would cancel), keeping ``M2`` to ~1e-11."""


@njit(cache=True)
def _rolling_moments_nb(
    y: np.ndarray,
    p: int,
    mode: int,
    ddof: int,
    nbdev_up: float,
    nbdev_dn: float,
    scale: float,
    out: np.ndarray,
) -> None:
    """:func:`_moments_pass_nb`: optimistic pass first, checked pass if an input is not finite."""
    if not _moments_pass_nb(y, p, mode, ddof, nbdev_up, nbdev_dn, scale, out, False):
        _moments_pass_nb(y, p, mode, ddof, nbdev_up, nbdev_dn, scale, out, True)


@njit(cache=True)
def _moments_pass_nb(
    y: np.ndarray,
    p: int,
    mode: int,
    ddof: int,
    nbdev_up: float,
    nbdev_dn: float,
    scale: float,
    out: np.ndarray,
    checked: bool,
) -> bool:
    """One pass of rolling mean/variance over ``p`` values of ``y``, written as ``mode`` says.

    ``_BANDS``: ``out`` rows = upper, middle, lower, %b, bandwidth (population variance).
    ``_ZSCORE``: ``out[0]`` = ``(y - mean) / std`` with ``ddof``, NaN for a constant window.
    ``_STD``: ``out[0]`` = ``std * scale`` with ``ddof``.
    NaN at non-finite values and in the first ``p - 1`` bars of each run of finite values.
    ``checked`` and the result are as in :mod:`.averages_nb`.
    """
    n = y.shape[0]
    rows = out.shape[0]
    inv = 1.0 / p
    inv_dof = 1.0 / (p - ddof)
    recentre = max(p, RECENTRE_EVERY)
    count = 0  # bars in the current run
    same = 0  # length of the run of equal values ending at the current bar
    since = 0  # bars since the last re-centring
    shift = 0.0
    s1 = 0.0  # sum of (y - shift) over the window
    s2 = 0.0  # sum of (y - shift)^2 over the window
    prev = 0.0
    checksum = 0.0
    for i in range(n):
        v = y[i]
        checksum += v
        if checked and not np.isfinite(v):
            for r in range(rows):
                out[r, i] = np.nan
            count = 0
            continue
        if count == 0:
            shift = v
            s1 = 0.0
            s2 = 0.0
            same = 1
        else:
            same = same + 1 if v == prev else 1
        prev = v
        count += 1
        d = v - shift
        if count <= p:
            s1 += d
            s2 += d * d
            if count < p:
                for r in range(rows):
                    out[r, i] = np.nan
                continue
            since = 0
        else:
            since += 1
            if since == recentre:
                # Re-centre on the window mean and recompute the sums exactly.
                since = 0
                t = 0.0
                for j in range(i - p + 1, i + 1):
                    t += y[j]
                shift = t * inv
                s1 = 0.0
                s2 = 0.0
                for j in range(i - p + 1, i + 1):
                    dj = y[j] - shift
                    s1 += dj
                    s2 += dj * dj
            else:
                o = y[i - p] - shift
                s1 += d - o
                s2 += d * d - o * o
        if same >= p:
            mean = v
            m2 = 0.0
        else:
            m2 = s2 - s1 * s1 * inv
            if m2 * CANCELLATION_LIMIT < s2:
                # The window's spread is tiny next to its distance from the shift: too many
                # digits would cancel. Re-centre now and recompute the sums exactly.
                since = 0
                t = 0.0
                for j in range(i - p + 1, i + 1):
                    t += y[j]
                shift = t * inv
                s1 = 0.0
                s2 = 0.0
                for j in range(i - p + 1, i + 1):
                    dj = y[j] - shift
                    s1 += dj
                    s2 += dj * dj
                m2 = s2 - s1 * s1 * inv
            mean = shift + s1 * inv
            m2 = m2 if m2 > 0.0 else 0.0
        if mode == _BANDS:
            sd = math.sqrt(m2 * inv)
            up = mean + nbdev_up * sd
            lo = mean - nbdev_dn * sd
            span = up - lo
            out[0, i] = up
            out[1, i] = mean
            out[2, i] = lo
            out[3, i] = (v - lo) / span if span != 0.0 else np.nan
            out[4, i] = span / mean if mean != 0.0 else np.nan
        elif mode == _ZSCORE:
            out[0, i] = (v - mean) / math.sqrt(m2 * inv_dof) if m2 > 0.0 else np.nan
        else:
            out[0, i] = math.sqrt(m2 * inv_dof) * scale
    return np.isfinite(checksum)


@njit(cache=True)
def bbands_nb(
    x: np.ndarray,
    period: int,
    nbdev_up: float,
    nbdev_dn: float,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger Bands on the SMA with the population (ddof=0) standard deviation.

    Returns ``(upper, middle, lower, percent_b, bandwidth)`` (the rows of ``out``, shape
    ``(5, n)``, if given): ``percent_b = (x - lower) / (upper - lower)`` (NaN when the bands
    coincide) and ``bandwidth = (upper - lower) / middle`` (NaN when the middle band is 0).
    Lookback ``period - 1`` (TA-Lib BBANDS with an SMA).
    """
    n = x.shape[0]
    if out is None:
        out = np.empty((5, n))
    _rolling_moments_nb(x, period, _BANDS, 0, nbdev_up, nbdev_dn, 1.0, out)
    return out[0], out[1], out[2], out[3], out[4]


@njit(cache=True)
def rolling_zscore_nb(
    x: np.ndarray, period: int, ddof: int, out: np.ndarray | None = None
) -> np.ndarray:
    """``(x - rolling mean) / rolling std`` over the last ``period`` values, the standard
    deviation with ``ddof`` delta degrees of freedom; NaN when the window is constant.
    Lookback ``period - 1``."""
    n = x.shape[0]
    if out is None:
        out = np.empty(n)
    _rolling_moments_nb(x, period, _ZSCORE, ddof, 0.0, 0.0, 1.0, out.reshape((1, n)))
    return out


@njit(cache=True)
def realised_volatility_nb(
    close: np.ndarray, period: int, ddof: int, scale: float, out: np.ndarray | None = None
) -> np.ndarray:
    """Rolling standard deviation of the last ``period`` log returns ``ln(c_t / c_{t-1})``,
    times ``scale`` (``sqrt(periods_per_year)`` to annualise, 1 for per-bar units).

    A non-positive close counts as non-finite. Lookback ``period``: the first value needs
    ``period + 1`` closes.
    """
    n = close.shape[0]
    if out is None:
        out = np.empty(n)
    ret = np.empty(n)
    prev = np.nan
    for i in range(n):
        c = close[i]
        if np.isfinite(c) and c > 0.0:
            ret[i] = math.log(c / prev) if np.isfinite(prev) else np.nan
            prev = c
        else:
            ret[i] = np.nan
            prev = np.nan
    if n == 0:
        return out
    # ret[0] is always NaN (no previous close): leave it out so that the optimistic pass of
    # _rolling_moments_nb can succeed on clean data.
    out[0] = np.nan
    rest = out[1:].reshape((1, n - 1))
    _rolling_moments_nb(ret[1:], period, _STD, ddof, 0.0, 0.0, scale, rest)
    return out
