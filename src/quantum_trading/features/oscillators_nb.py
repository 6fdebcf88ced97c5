"""Momentum and volume kernels (numba): RSI, Stochastic, ADX/+DI/-DI and OBV.

Warm-up lengths, seeding and the degenerate cases follow TA-Lib (unstable period 0): RSI is 0
when the average gain and loss are both 0; %K is 0 when the high-low range is 0; +DI and -DI
are 0 when the smoothed true range is 0 and ADX then keeps its previous value. Wilder's
smoothing ``a <- (a * (n - 1) + x) / n`` is computed as ``a * (1 - 1/n) + x / n``, which differs
from TA-Lib's arithmetic by a few ulps only.

All kernels follow the NaN contract of :mod:`quantum_trading.features`; for multi-input kernels
a bar is finite when every input used at that bar is finite.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quantum_trading.features.rolling_nb import _hilo_run_nb

__all__ = ["adx_nb", "obv_nb", "rsi_nb", "stoch_nb"]

_FMA = {"contract"}


@njit(cache=True, fastmath=_FMA)
def rsi_nb(x: np.ndarray, period: int, out: np.ndarray | None = None) -> np.ndarray:
    """Wilder's RSI in [0, 100] (TA-Lib RSI, lookback ``period``).

    The first value averages the first ``period`` gains and losses; later values use Wilder's
    smoothing.
    """
    n = x.shape[0]
    if out is None:
        out = np.empty(n)
    inv = 1.0 / period
    decay = (period - 1) / period
    count = 0
    prev = 0.0
    gain = 0.0
    loss = 0.0
    for i in range(n):
        v = x[i]
        if not np.isfinite(v):
            out[i] = np.nan
            count = 0
            continue
        count += 1
        if count == 1:
            prev = v
            gain = 0.0
            loss = 0.0
            out[i] = np.nan
            continue
        diff = v - prev
        prev = v
        up = diff if diff > 0.0 else 0.0
        down = -diff if diff < 0.0 else 0.0
        if count <= period + 1:
            gain += up
            loss += down
            if count < period + 1:
                out[i] = np.nan
                continue
            gain *= inv
            loss *= inv
        else:
            gain = gain * decay + up * inv
            loss = loss * decay + down * inv
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total != 0.0 else 0.0
    return out


@njit(cache=True)
def obv_nb(close: np.ndarray, volume: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """On-balance volume, starting at the first bar's volume (TA-Lib OBV, lookback 0)."""
    n = close.shape[0]
    if out is None:
        out = np.empty(n)
    count = 0
    prev = 0.0
    total = 0.0
    for i in range(n):
        c = close[i]
        v = volume[i]
        if not (np.isfinite(c) and np.isfinite(v)):
            out[i] = np.nan
            count = 0
            continue
        count += 1
        if count == 1:
            total = v
        else:
            # Branch-free: the sign of the move (+1, -1 or 0) scales the volume.
            total += v * (int(c > prev) - int(c < prev))
        prev = c
        out[i] = total
    return out


@njit(cache=True, fastmath=_FMA)
def adx_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    period: int,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilder's ADX, +DI and -DI in [0, 100] (TA-Lib ADX / PLUS_DI / MINUS_DI).

    +DM/-DM and the true range are summed over the first ``period - 1`` bar-to-bar moves and
    then Wilder-smoothed; +DI/-DI start at bar ``period`` of a run (lookback ``period``), ADX,
    the Wilder average of DX = 100 |+DI - -DI| / (+DI + -DI), at bar ``2 * period - 1``.
    Returns ``(adx, plus_di, minus_di)``, the rows of ``out`` (shape ``(3, n)``) if given.
    """
    n = high.shape[0]
    if out is None:
        out = np.empty((3, n))
    adx = out[0]
    plus_di = out[1]
    minus_di = out[2]
    inv = 1.0 / period
    decay = (period - 1) / period
    count = 0
    prev_h = 0.0
    prev_l = 0.0
    prev_c = 0.0
    dm_p = 0.0
    dm_m = 0.0
    tr_s = 0.0
    sum_dx = 0.0
    adx_v = 0.0
    for i in range(n):
        h = high[i]
        lo = low[i]
        c = close[i]
        if not (np.isfinite(h) and np.isfinite(lo) and np.isfinite(c)):
            adx[i] = np.nan
            plus_di[i] = np.nan
            minus_di[i] = np.nan
            count = 0
            continue
        count += 1
        k = count - 1  # offset of this bar in its run
        if k == 0:
            dm_p = 0.0
            dm_m = 0.0
            tr_s = 0.0
            sum_dx = 0.0
            adx_v = 0.0
        else:
            diff_p = h - prev_h
            diff_m = prev_l - lo
            up = 0.0
            down = 0.0
            if diff_m > 0.0 and diff_p < diff_m:
                down = diff_m
            elif diff_p > 0.0 and diff_p > diff_m:
                up = diff_p
            tr = max(h - lo, abs(h - prev_c), abs(lo - prev_c))
            if k < period:
                dm_p += up
                dm_m += down
                tr_s += tr
            else:
                dm_p = dm_p * decay + up
                dm_m = dm_m * decay + down
                tr_s = tr_s * decay + tr
        prev_h = h
        prev_l = lo
        prev_c = c
        if k < period:
            adx[i] = np.nan
            plus_di[i] = np.nan
            minus_di[i] = np.nan
            continue
        if tr_s != 0.0:
            pdi = 100.0 * (dm_p / tr_s)
            mdi = 100.0 * (dm_m / tr_s)
            plus_di[i] = pdi
            minus_di[i] = mdi
            di_sum = pdi + mdi
            if di_sum != 0.0:
                dx = 100.0 * (abs(mdi - pdi) / di_sum)
                if k < 2 * period - 1:
                    sum_dx += dx
                elif k == 2 * period - 1:
                    sum_dx += dx
                else:
                    adx_v = adx_v * decay + dx * inv
        else:
            plus_di[i] = 0.0
            minus_di[i] = 0.0
        if k < 2 * period - 1:
            adx[i] = np.nan
        else:
            if k == 2 * period - 1:
                adx_v = sum_dx * inv
            adx[i] = adx_v
    return adx, plus_di, minus_di


@njit(cache=True)
def _sma_segment_nb(src: np.ndarray, s: int, e: int, p: int, dst: np.ndarray) -> None:
    """``dst[s:e]`` = SMA over ``p`` of ``src[s:e]`` (NaN for the first ``p - 1``)."""
    inv = 1.0 / p
    total = 0.0
    for i in range(s, e):
        total += src[i]
        if i - s >= p - 1:
            dst[i] = total * inv
            total -= src[i - p + 1]
        else:
            dst[i] = np.nan


@njit(cache=True)
def stoch_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    fastk_period: int,
    slowk_period: int,
    slowd_period: int,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Slow stochastic %K and %D in [0, 100] (TA-Lib STOCH with SMA smoothing).

    Fast %K = 100 (close - lowest low) / (highest high - lowest low) over ``fastk_period`` bars
    (0 when the range is 0); slow %K is its SMA over ``slowk_period``, %D the SMA of slow %K
    over ``slowd_period``. Both outputs start at bar
    ``fastk_period + slowk_period + slowd_period - 3`` of a run. Returns ``(slowk, slowd)``,
    the rows of ``out`` (shape ``(2, n)``) if given.
    """
    n = high.shape[0]
    if out is None:
        out = np.empty((2, n))
    slowk = out[0]
    slowd = out[1]
    hh = np.empty(n)
    ll = np.empty(n)
    no_middle = np.empty(0)
    buf = np.empty(4 * fastk_period)
    lookback = fastk_period + slowk_period + slowd_period - 3
    i = 0
    while i < n:
        if not (np.isfinite(high[i]) and np.isfinite(low[i]) and np.isfinite(close[i])):
            slowk[i] = np.nan
            slowd[i] = np.nan
            i += 1
            continue
        s = i
        e = i
        while e < n and np.isfinite(high[e]) and np.isfinite(low[e]) and np.isfinite(close[e]):
            e += 1
        i = e
        if e - s <= lookback:
            for j in range(s, e):
                slowk[j] = np.nan
                slowd[j] = np.nan
            continue
        _hilo_run_nb(high, low, s, e, fastk_period, hh, no_middle, ll, buf)
        # Fast %K into hh (each value is read before it is overwritten).
        k0 = s + fastk_period - 1
        for j in range(k0, e):
            rng = hh[j] - ll[j]
            hh[j] = (close[j] - ll[j]) / (rng / 100.0) if rng != 0.0 else 0.0
        _sma_segment_nb(hh, k0, e, slowk_period, slowk)
        k1 = k0 + slowk_period - 1
        _sma_segment_nb(slowk, k1, e, slowd_period, slowd)
        for j in range(s, s + lookback):
            slowk[j] = np.nan
            slowd[j] = np.nan
    return slowk, slowd
