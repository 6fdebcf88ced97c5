"""Technical indicators on pandas Series, computed by numba kernels.

Functions take ``pd.Series`` inputs (sharing one index when there are several) and return a
Series, or a DataFrame with named columns for several outputs, on the same index. The kernels
(``*_nb``, arrays in and out) are in :mod:`quantum_trading.features.indicators_nb`.

Timing
------
The value at bar ``t`` uses bars ``<= t`` only: it is known at bar ``t``'s close, and an order
decided on it fills at bar ``t + 1``'s open at the earliest. Every indicator passes the
causality check: computed on ``data[:t]`` it equals the first ``t`` values computed on all data.

Warm-up
-------
Indicators that TA-Lib has (SMA, EMA, WMA, RSI, MACD, BBANDS, TRANGE, ATR, OBV, ADX, PLUS_DI,
MINUS_DI, STOCH, MAX/MIN) have TA-Lib's leading-NaN count and seeding with TA-Lib's default
unstable period of 0 (EMA seeded with the SMA of its first ``period`` values, Wilder's RSI/ATR/
ADX seeded with plain averages, MACD's fast EMA aligned to start with the slow one), and agree
with TA-Lib to about 1e-12 of the series' scale (tests require 1e-9).

NaN contract
------------
1. Leading NaNs are skipped: the warm-up starts at the first finite value, so an indicator of
   an indicator works (``rsi(ema(close, 20))``).
2. A non-finite input (NaN, +inf or -inf) after that makes the output NaN at that bar and in
   every window that contains it; recursive indicators (EMA, MACD, RSI, ATR, ADX, OBV,
   Stochastic smoothing ...) restart their warm-up on the following finite data, exactly as if
   the series began there.

Put together: each maximal run of finite inputs is computed as if it were a series of its
own, and outputs at non-finite inputs are NaN. For indicators of several inputs, a bar is
finite when all of them are; for realised volatility a non-positive close also counts as
non-finite. (TA-Lib differs here: one NaN poisons every later value of its running sums and
recursions, e.g. SMA and EMA, while MAX/MIN step over it as if it were not there.)
"""

from __future__ import annotations

from quantum_trading.features.indicators import (
    adx,
    ema,
    macd,
    obv,
    rolling_vwap,
    rsi,
    sma,
    stochastic,
    wma,
)
from quantum_trading.features.thresholds import adaptive_thresholds, rolling_quantile
from quantum_trading.features.volatility import (
    atr,
    bollinger_bands,
    donchian_channel,
    realised_volatility,
    rolling_zscore,
    true_range,
)

__all__ = [
    "adaptive_thresholds",
    "adx",
    "atr",
    "bollinger_bands",
    "donchian_channel",
    "ema",
    "macd",
    "obv",
    "realised_volatility",
    "rolling_quantile",
    "rolling_vwap",
    "rolling_zscore",
    "rsi",
    "sma",
    "stochastic",
    "true_range",
    "wma",
]
