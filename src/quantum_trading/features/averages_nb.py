"""Moving-average kernels (numba): SMA, EMA, WMA and MACD.

Kernels take and return float64 numpy arrays (plus ints/floats) and follow the NaN contract of
:mod:`quantum_trading.features`: each maximal run of finite values is computed as if it were a
series of its own, so a non-finite input restarts the warm-up on the next finite value. Warm-up
lengths and seeding match TA-Lib (unstable period 0); arithmetic may differ from TA-Lib's by a
few ulps (fused multiply-add, reciprocal multiplies), far below the 1e-9 relative parity bound.

The cheapest kernels make an optimistic pass that skips the per-bar finiteness test and only
sums the inputs on the side (``checked=False``); if that sum is not finite, some input was not
either, and a second, checked pass recomputes everything under the NaN contract. Both passes
do the same arithmetic, so the result never depends on which one produced it.

Every kernel takes an optional ``out`` array (``(len(x),)``, or ``(k, len(x))`` for ``k``
outputs) so callers can pass memory numpy allocated (numpy backs large arrays with huge pages,
which makes first writes several times cheaper than into numba-allocated memory).

Running sums are recomputed from the window every ``max(period, RESEED_EVERY)`` bars so that
rounding drift, or the residue of one huge value, cannot accumulate over long histories.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["RESEED_EVERY", "ema_nb", "ema_next_nb", "macd_nb", "sma_nb", "wma_nb"]

RESEED_EVERY = 1024
"""Bars between exact recomputations of a running window sum (at least ``period``)."""

# Fused multiply-add only: NaN/inf semantics stay IEEE (isfinite checks must keep working).
_FMA = {"contract"}


@njit(cache=True)
def _window_sum_nb(x: np.ndarray, start: int, stop: int) -> float:
    """Plain left-to-right sum of ``x[start:stop]``."""
    total = 0.0
    for j in range(start, stop):
        total += x[j]
    return total


@njit(cache=True)
def sma_nb(x: np.ndarray, period: int, out: np.ndarray | None = None) -> np.ndarray:
    """Simple moving average of the last ``period`` values (TA-Lib SMA, lookback period-1)."""
    if out is None:
        out = np.empty(x.shape[0])
    if not _sma_pass_nb(x, period, out, False):
        _sma_pass_nb(x, period, out, True)
    return out


@njit(cache=True)
def _sma_pass_nb(x: np.ndarray, period: int, out: np.ndarray, checked: bool) -> bool:
    """One SMA pass; see the module docstring for ``checked`` and the result."""
    n = x.shape[0]
    inv = 1.0 / period
    reseed = max(period, RESEED_EVERY)
    count = 0
    since = 0
    total = 0.0
    checksum = 0.0
    for i in range(n):
        v = x[i]
        checksum += v
        if checked and not np.isfinite(v):
            out[i] = np.nan
            count = 0
            total = 0.0
            continue
        count += 1
        if count < period:
            total += v
            out[i] = np.nan
            continue
        if count == period:
            total += v
            since = 0
        else:
            since += 1
            if since == reseed:
                since = 0
                total = _window_sum_nb(x, i - period + 1, i + 1)
            else:
                total += v - x[i - period]
        out[i] = total * inv
    return np.isfinite(checksum)


@njit(cache=True, fastmath=_FMA)
def ema_next_nb(prev: float, v: float, decay: float, k: float) -> float:
    """One EMA update, ``prev·decay + v·k`` (fused multiply-add as compiled): the step of
    :func:`ema_nb`, also called one value at a time by the live trader's stepped strategies
    (:class:`~quantum_trading.strategies.library.stepping.EmaStep`), so both round alike."""
    return prev * decay + v * k


@njit(cache=True, fastmath=_FMA)
def ema_nb(x: np.ndarray, period: int, out: np.ndarray | None = None) -> np.ndarray:
    """Exponential moving average, ``k = 2 / (period + 1)``, seeded with the SMA of the first
    ``period`` values (TA-Lib EMA, lookback period-1)."""
    n = x.shape[0]
    if out is None:
        out = np.empty(n)
    k = 2.0 / (period + 1)
    decay = 1.0 - k
    count = 0
    total = 0.0
    prev = 0.0
    for i in range(n):
        v = x[i]
        if not np.isfinite(v):
            out[i] = np.nan
            count = 0
            total = 0.0
            continue
        count += 1
        if count < period:
            total += v
            out[i] = np.nan
        elif count == period:
            total += v
            prev = total / period
            out[i] = prev
        else:
            prev = ema_next_nb(prev, v, decay, k)
            out[i] = prev
    return out


@njit(cache=True)
def _weighted_sum_nb(x: np.ndarray, start: int, stop: int) -> float:
    """``sum((j + 1) * x[start + j])``: the WMA numerator with the newest value weighted most."""
    total = 0.0
    for j in range(stop - start):
        total += x[start + j] * (j + 1)
    return total


@njit(cache=True)
def wma_nb(x: np.ndarray, period: int, out: np.ndarray | None = None) -> np.ndarray:
    """Linearly weighted moving average, weights 1..period with the newest bar weighted
    ``period`` (TA-Lib WMA, lookback period-1)."""
    if out is None:
        out = np.empty(x.shape[0])
    if not _wma_pass_nb(x, period, out, False):
        _wma_pass_nb(x, period, out, True)
    return out


@njit(cache=True)
def _wma_pass_nb(x: np.ndarray, period: int, out: np.ndarray, checked: bool) -> bool:
    """One WMA pass; see the module docstring for ``checked`` and the result."""
    n = x.shape[0]
    inv_divider = 1.0 / (period * (period + 1) / 2.0)
    reseed = max(period, RESEED_EVERY)
    count = 0
    since = 0
    plain = 0.0  # sum of the window ending at the previous bar (or the partial window)
    weighted = 0.0  # weighted sum of the window ending at the previous bar
    checksum = 0.0
    for i in range(n):
        v = x[i]
        checksum += v
        if checked and not np.isfinite(v):
            out[i] = np.nan
            count = 0
            plain = 0.0
            weighted = 0.0
            continue
        count += 1
        if count < period:
            plain += v
            weighted += v * count
            out[i] = np.nan
            continue
        if count == period:
            plain += v
            weighted += v * period
            since = 0
        else:
            since += 1
            if since == reseed:
                since = 0
                plain = _window_sum_nb(x, i - period + 1, i + 1)
                weighted = _weighted_sum_nb(x, i - period + 1, i + 1)
            else:
                # W_t = W_{t-1} - S_{t-1} + period * x_t ;  S_t = S_{t-1} + x_t - x_{t-period}
                step = v * period - plain
                plain += v - x[i - period]
                weighted += step
        out[i] = weighted * inv_divider
    return np.isfinite(checksum)


@njit(cache=True, fastmath=_FMA)
def macd_nb(
    x: np.ndarray,
    fast_period: int,
    slow_period: int,
    signal_period: int,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line, signal line and histogram, aligned as TA-Lib's MACD.

    Both EMAs produce their first value at bar ``slow_period - 1`` of a run: the slow EMA is
    seeded with the SMA of the first ``slow_period`` values, the fast EMA with the SMA of the
    ``fast_period`` values ending at that same bar. The signal EMA (of the MACD line) is seeded
    likewise, and all three outputs start at bar ``slow_period + signal_period - 2``.
    ``fast_period > slow_period`` is swapped, as TA-Lib does. ``out``, if given, is a
    ``(3, len(x))`` array whose rows receive ``(macd, signal, hist)``.
    """
    if fast_period > slow_period:
        fast_period, slow_period = slow_period, fast_period
    n = x.shape[0]
    if out is None:
        out = np.empty((3, n))
    macd = out[0]
    signal = out[1]
    hist = out[2]
    k_fast = 2.0 / (fast_period + 1)
    k_slow = 2.0 / (slow_period + 1)
    k_sig = 2.0 / (signal_period + 1)
    d_fast = 1.0 - k_fast
    d_slow = 1.0 - k_slow
    d_sig = 1.0 - k_sig
    fast_start = slow_period - fast_period  # run offset of the fast EMA's first seed value
    first_out = slow_period + signal_period - 2
    count = 0
    sum_fast = 0.0
    sum_slow = 0.0
    sum_sig = 0.0
    ema_fast = 0.0
    ema_slow = 0.0
    ema_sig = 0.0
    for i in range(n):
        v = x[i]
        if not np.isfinite(v):
            macd[i] = np.nan
            signal[i] = np.nan
            hist[i] = np.nan
            count = 0
            sum_fast = 0.0
            sum_slow = 0.0
            sum_sig = 0.0
            continue
        count += 1
        k = count - 1  # offset of this bar in its run
        if k < slow_period - 1:
            sum_slow += v
            if k >= fast_start:
                sum_fast += v
            macd[i] = np.nan
            signal[i] = np.nan
            hist[i] = np.nan
            continue
        if k == slow_period - 1:
            sum_slow += v
            sum_fast += v
            ema_slow = sum_slow / slow_period
            ema_fast = sum_fast / fast_period
        else:
            ema_slow = ema_slow * d_slow + v * k_slow
            ema_fast = ema_fast * d_fast + v * k_fast
        line = ema_fast - ema_slow
        if k < first_out:
            sum_sig += line
            macd[i] = np.nan
            signal[i] = np.nan
            hist[i] = np.nan
            continue
        if k == first_out:
            sum_sig += line
            ema_sig = sum_sig / signal_period
        else:
            ema_sig = ema_sig * d_sig + line * k_sig
        macd[i] = line
        signal[i] = ema_sig
        hist[i] = line - ema_sig
    return macd, signal, hist
