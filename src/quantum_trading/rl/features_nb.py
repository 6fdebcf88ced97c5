"""Small kernels for the RL observation features (numba, arrays in and out).

The indicators themselves (RSI, ATR, EMA, Bollinger Bands, z-scores, realised volatility) come
from :mod:`quantum_trading.features.indicators_nb`; here are only the two helpers they lack:
a rolling percentile rank and a carry-forward of settled funding rates. Both are causal: the
value at bar ``t`` uses bars ``<= t`` only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["carry_forward_nb", "rolling_rank_nb"]


@njit(cache=True)
def rolling_rank_nb(x: np.ndarray, period: int, out: np.ndarray) -> np.ndarray:
    """Percentile rank of ``x[t]`` among the last ``period`` values ``x[t-period+1 .. t]``:
    the fraction of them that are ``<= x[t]`` (in ``(0, 1]``).

    NaN while fewer than ``period`` finite values precede (inclusive) bar ``t`` without a
    non-finite value in between (a non-finite value restarts the window, as in the NaN contract
    of :mod:`quantum_trading.features`). ``O(T · period)``.
    """
    n = x.shape[0]
    run = 0  # finite values in a row up to t
    for t in range(n):
        v = x[t]
        if not math.isfinite(v):
            run = 0
            out[t] = np.nan
            continue
        run += 1
        if run < period:
            out[t] = np.nan
            continue
        below = 0
        for k in range(t - period + 1, t + 1):
            if x[k] <= v:
                below += 1
        out[t] = below / period
    return out


@njit(cache=True)
def carry_forward_nb(rates: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The last settled rate up to and including each bar (0 before the first): the funding
    rate last settled, known from its bar's open on. NaN and 0 mean no settlement at that
    bar, as in the simulator (``join_funding`` writes 0 between settlements)."""
    last = 0.0
    for t in range(rates.shape[0]):
        v = rates[t]
        if not math.isnan(v) and v != 0.0:
            last = v
        out[t] = last
    return out
