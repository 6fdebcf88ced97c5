"""All indicator kernels in one place (numba, ``@njit(cache=True)``, arrays in and out).

The kernels live in :mod:`.averages_nb`, :mod:`.oscillators_nb`, :mod:`.volatility_nb` and
:mod:`.rolling_nb`; this module re-exports them for callers that work on numpy arrays directly
(e.g. other kernels, or strategies that skip pandas). Each takes float64 arrays and plain ints
or floats, does no argument checking (the pandas API in :mod:`.indicators` does), and follows
the NaN contract described in :mod:`quantum_trading.features`.
"""

from __future__ import annotations

from quantum_trading.features.averages_nb import ema_nb, macd_nb, sma_nb, wma_nb
from quantum_trading.features.oscillators_nb import adx_nb, obv_nb, rsi_nb, stoch_nb
from quantum_trading.features.rolling_nb import (
    donchian_nb,
    rolling_quantiles_nb,
    rolling_vwap_nb,
)
from quantum_trading.features.volatility_nb import (
    atr_nb,
    bbands_nb,
    realised_volatility_nb,
    rolling_zscore_nb,
    true_range_nb,
)

__all__ = [
    "adx_nb",
    "atr_nb",
    "bbands_nb",
    "donchian_nb",
    "ema_nb",
    "macd_nb",
    "obv_nb",
    "realised_volatility_nb",
    "rolling_quantiles_nb",
    "rolling_vwap_nb",
    "rolling_zscore_nb",
    "rsi_nb",
    "sma_nb",
    "stoch_nb",
    "true_range_nb",
    "wma_nb",
]
