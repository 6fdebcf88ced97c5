"""Numba kernels of trading costs: fees, half-spread, slippage and square-root impact.

A market fill of ``q`` units (signed) at reference price ``p`` (the bar's open, or a stop
level) costs, each accounted separately:

* half-spread ``|q|·p·half_spread``, slippage ``|q|·p·slippage`` and impact
  ``|q|·p·impact`` where ``impact = min(k·σ·sqrt(|q|·p / volume_usd), max_impact)``;
  all three are inside the fill price ``p·(1 ± (half_spread + slippage + impact))``
  (+ for buys), so they are already inside realised PnL;
* the fee ``|q|·fill_price·fee_rate`` (taker for market orders and stops, maker for
  take-profit limits), paid from cash.

``σ`` (per-bar standard deviation of log returns) and ``volume_usd`` (notional volume of the
previous bar) must be known before the fill: :func:`impact_inputs_nb` computes both from
bars strictly before the fill bar, and :func:`impact_inputs_at_nb` does the same for one bar
so that the one-step API gets identical numbers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "flex_nb",
    "impact_frac_nb",
    "impact_inputs_at_nb",
    "impact_inputs_nb",
    "market_fill_price_nb",
]


@njit(cache=True, inline="always", _nrt=False)
def flex_nb(a: np.ndarray, t: int, i: int) -> float:
    """``a[t, i]`` with broadcasting of length-1 axes (vectorbt's flexible indexing)."""
    r = t if a.shape[0] > 1 else 0
    c = i if a.shape[1] > 1 else 0
    return a[r, c]


@njit(cache=True, _nrt=False)
def impact_frac_nb(
    notional_usd: float, sigma: float, volume_usd: float, k: float, max_frac: float
) -> float:
    """Square-root impact as a fraction of price: ``k·σ·sqrt(notional / volume_usd)``.

    Zero when ``k`` is 0 or σ / volume are missing (NaN) or not positive; capped at
    ``max_frac``.

    >>> round(impact_frac_nb(10_000.0, 0.01, 1_000_000.0, 1.0, 0.05), 6)
    0.001
    """
    if k <= 0.0 or not (sigma > 0.0) or not (volume_usd > 0.0) or notional_usd <= 0.0:
        return 0.0
    f = k * sigma * math.sqrt(notional_usd / volume_usd)
    return f if f < max_frac else max_frac


@njit(cache=True, _nrt=False)
def market_fill_price_nb(side: int, ref_price: float, cost_frac: float) -> float:
    """Fill price of a market order: ``ref·(1 + cost)`` for buys, ``ref·(1 − cost)`` for sells."""
    return ref_price * (1.0 + side * cost_frac)


@njit(cache=True, _nrt=False)
def _window_sigma_nb(close: np.ndarray, i: int, end: int, window: int) -> float:
    # sample std (ddof=1) of log returns ln(c[k]/c[k-1]) for k in [end-window, end)
    start = end - window
    if start < 1:
        start = 1
    m = end - start
    if m < 2:
        return np.nan
    mean = 0.0
    for k in range(start, end):
        mean += math.log(close[k, i] / close[k - 1, i])
    mean /= m
    ss = 0.0
    for k in range(start, end):
        d = math.log(close[k, i] / close[k - 1, i]) - mean
        ss += d * d
    return math.sqrt(ss / (m - 1))


@njit(cache=True, _nrt=False)
def impact_inputs_at_nb(
    close: np.ndarray, volume: np.ndarray, end: int, window: int,
    sigma_out: np.ndarray, volume_usd_out: np.ndarray,
) -> None:
    """σ and notional volume for the bar at row ``end``, from rows ``< end`` only.

    ``sigma_out[i]`` = sample std of the last ``window`` log returns before ``end`` (fewer
    in the warm-up, NaN with fewer than 2); ``volume_usd_out[i]`` = ``volume·close`` of row
    ``end − 1`` (NaN at ``end == 0``).
    """
    for i in range(close.shape[1]):
        sigma_out[i] = _window_sigma_nb(close, i, end, window)
        volume_usd_out[i] = volume[end - 1, i] * close[end - 1, i] if end >= 1 else np.nan


@njit(cache=True)
def impact_inputs_nb(close: np.ndarray, volume: np.ndarray, window: int):
    """``(sigma, volume_usd)`` ``[T, N]`` for every bar, each from earlier bars only.

    >>> c = np.array([[100.0], [101.0], [100.0], [102.0]]); v = np.ones_like(c)
    >>> s, vu = impact_inputs_nb(c, v, 20)
    >>> bool(np.isnan(s[2, 0])), bool(s[3, 0] > 0), float(vu[1, 0])
    (True, True, 100.0)
    """
    n_bars, n = close.shape
    sigma = np.empty((n_bars, n))
    vol = np.empty((n_bars, n))
    for t in range(n_bars):
        impact_inputs_at_nb(close, volume, t, window, sigma[t], vol[t])
    return sigma, vol
