"""Volatility and range indicators: the pandas API over the numba kernels.

True range, ATR, Bollinger Bands (with %b and bandwidth), the Donchian channel, the rolling
z-score and realised volatility. Timing, warm-up and the NaN contract are described in
:mod:`quantum_trading.features`: the value at bar ``t`` uses bars ``<= t`` only.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from quantum_trading.features._validation import (
    as_frame,
    as_series,
    check_float,
    check_int,
    check_same_index,
    check_series,
)
from quantum_trading.features.rolling_nb import donchian_nb
from quantum_trading.features.volatility_nb import (
    atr_nb,
    bbands_nb,
    realised_volatility_nb,
    rolling_zscore_nb,
    true_range_nb,
)

__all__ = [
    "atr",
    "bollinger_bands",
    "donchian_channel",
    "realised_volatility",
    "rolling_zscore",
    "true_range",
]

_MAX_PERIOD = 100_000


def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """True range: ``max(high, previous close) - min(low, previous close)``.

    Parameters
    ----------
    high, low, close:
        Bar prices, sharing one index.

    Returns
    -------
    pd.Series
        ``true_range`` in price units; NaN at the first bar (no previous close, as TA-Lib
        TRANGE). Uses bars t-1 and t, known at bar t's close.

    Examples
    --------
    >>> true_range(pd.Series([11.0, 12.0]), pd.Series([9.0, 10.5]), pd.Series([10.0, 12.0])).tolist()
    [nan, 2.0]
    """
    index = check_same_index(high=high, low=low, close=close)
    h = check_series(high, "high")
    lo = check_series(low, "low")
    c = check_series(close, "close")
    return as_series(true_range_nb(h, lo, c, np.empty(h.shape[0])), index, "true_range")


def atr(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14) -> pd.Series:
    """Wilder's average true range.

    Parameters
    ----------
    high, low, close:
        Bar prices, sharing one index.
    period:
        Wilder smoothing period in bars, 1 to 100,000 (default 14).

    Returns
    -------
    pd.Series
        ``atr_<period>`` in price units. The first value, at bar ``period``, is the mean of
        the first ``period`` true ranges; then ``atr_t = (atr_{t-1} (period - 1) + tr_t) /
        period`` (TA-Lib ATR). Uses bars <= t, known at bar t's close.

    Examples
    --------
    >>> c = pd.Series([10.0, 11.0, 12.0, 13.0])
    >>> atr(c + 1.0, c - 1.0, c, 2).tolist()
    [nan, nan, 2.0, 2.0]
    """
    index = check_same_index(high=high, low=low, close=close)
    h = check_series(high, "high")
    lo = check_series(low, "low")
    c = check_series(close, "close")
    period = check_int(period, "period", 1, _MAX_PERIOD)
    return as_series(atr_nb(h, lo, c, period, np.empty(h.shape[0])), index, f"atr_{period}")


def bollinger_bands(
    close: pd.Series, period: int = 5, nbdev_up: float = 2.0, nbdev_dn: float = 2.0
) -> pd.DataFrame:
    """Bollinger Bands around the SMA, with %b and bandwidth.

    Parameters
    ----------
    close:
        Prices.
    period:
        Window length in bars, 2 to 100,000. The default 5 is TA-Lib's; Bollinger's own
        is 20.
    nbdev_up, nbdev_dn:
        Multiples of the standard deviation above and below the middle band, >= 0
        (default 2).

    Returns
    -------
    pd.DataFrame
        ``bb_middle`` = SMA, ``bb_upper``/``bb_lower`` = middle ± nbdev × the population
        (ddof=0) standard deviation of the window, as TA-Lib BBANDS and ``ta``;
        ``bb_percent_b`` = ``(close - lower) / (upper - lower)`` (0 at the lower band, 1 at the
        upper; NaN when the bands coincide, i.e. the window is constant; same as ``ta``'s
        ``bollinger_pband``); ``bb_bandwidth`` = ``(upper - lower) / middle`` as a fraction
        (``ta``'s ``bollinger_wband`` is this × 100). NaN for the first ``period - 1`` bars.
        Uses bars t-period+1..t, known at bar t's close.

    Notes
    -----
    The standard deviation is computed from deviations about a shift re-centred on the
    window mean, so it does not suffer the cancellation of ``E[x²] - E[x]²``: it keeps about
    11 significant digits even in near-flat windows, and a constant window gives exactly 0
    (TA-Lib agrees to ~1e-12 of the price). pandas' one-pass rolling ``std``, which ``ta``
    uses, is less precise on prices (off by up to 4e-4 on BTC 1m bars with 5-bar windows),
    so ``ta``'s ``%b`` can differ from this one in narrow windows by up to ~1e-3.

    Examples
    --------
    >>> bb = bollinger_bands(pd.Series([1.0, 2.0, 3.0]), period=3, nbdev_up=1.0, nbdev_dn=1.0)
    >>> bb.iloc[-1].round(4).tolist()
    [2.8165, 2.0, 1.1835, 1.1124, 0.8165]
    """
    x = check_series(close, "close")
    period = check_int(period, "period", 2, _MAX_PERIOD)
    nbdev_up = check_float(nbdev_up, "nbdev_up", minimum=0.0)
    nbdev_dn = check_float(nbdev_dn, "nbdev_dn", minimum=0.0)
    out = np.empty((5, x.shape[0]))
    bbands_nb(x, period, nbdev_up, nbdev_dn, out)
    columns = ["bb_upper", "bb_middle", "bb_lower", "bb_percent_b", "bb_bandwidth"]
    return as_frame(out, close.index, columns)


def donchian_channel(high: pd.Series, low: pd.Series, period: int = 20) -> pd.DataFrame:
    """Donchian channel: highest high and lowest low of the last ``period`` bars.

    Parameters
    ----------
    high, low:
        Bar prices, sharing one index.
    period:
        Window length in bars, 1 to 100,000 (default 20, as ``ta``).

    Returns
    -------
    pd.DataFrame
        ``dc_upper`` (= TA-Lib ``MAX(high)``), ``dc_middle`` (their midpoint) and
        ``dc_lower`` (= ``MIN(low)``), in price units, as ``ta.volatility.DonchianChannel``
        (offset 0). NaN for the first ``period - 1`` bars. The window includes bar t itself:
        a breakout rule comparing ``close`` with the channel should use ``.shift(1)``.

    Examples
    --------
    >>> dc = donchian_channel(pd.Series([3.0, 5.0, 4.0]), pd.Series([1.0, 2.0, 0.0]), 2)
    >>> dc.iloc[-1].tolist()
    [5.0, 2.5, 0.0]
    """
    index = check_same_index(high=high, low=low)
    h = check_series(high, "high")
    lo = check_series(low, "low")
    period = check_int(period, "period", 1, _MAX_PERIOD)
    out = np.empty((3, h.shape[0]))
    donchian_nb(h, lo, period, out)
    return as_frame(out, index, ["dc_upper", "dc_middle", "dc_lower"])


def rolling_zscore(series: pd.Series, period: int = 20, ddof: int = 1) -> pd.Series:
    """Rolling z-score: ``(x - rolling mean) / rolling std`` over the last ``period`` values.

    Parameters
    ----------
    series:
        Any series (prices, spreads, funding rates, an indicator).
    period:
        Window length in bars, ``ddof + 1`` to 100,000 (default 20).
    ddof:
        Delta degrees of freedom of the standard deviation: 1 (default, pandas' ``std``) or 0
        (population, as Bollinger Bands).

    Returns
    -------
    pd.Series
        ``zscore_<period>``, unitless; NaN where the window is constant (std 0) and for the
        first ``period - 1`` bars. The window includes bar t: the value is known at bar t's
        close.

    Examples
    --------
    >>> rolling_zscore(pd.Series([1.0, 2.0, 3.0, 3.0, 3.0, 3.0]), 3).round(4).tolist()
    [nan, nan, 1.0, 0.5774, nan, nan]
    """
    x = check_series(series, "series")
    ddof = check_int(ddof, "ddof", 0, 1)
    period = check_int(period, "period", ddof + 1, _MAX_PERIOD)
    out = rolling_zscore_nb(x, period, ddof, np.empty(x.shape[0]))
    return as_series(out, series.index, f"zscore_{period}")


def realised_volatility(
    close: pd.Series,
    period: int = 20,
    periods_per_year: float | None = None,
    ddof: int = 1,
) -> pd.Series:
    """Realised volatility: rolling standard deviation of log returns.

    Parameters
    ----------
    close:
        Prices, > 0 (a non-positive close is treated like NaN).
    period:
        Number of returns in the window, ``ddof + 1`` to 100,000 (default 20).
    periods_per_year:
        Bars per year to annualise with ``sqrt(periods_per_year)``; crypto trades 24/7, so
        1h bars have 8,760 and 1m bars 525,600. None (default) leaves it per bar: there is
        deliberately no 252-day default.
    ddof:
        Delta degrees of freedom of the standard deviation (default 1, as pandas).

    Returns
    -------
    pd.Series
        ``rv_<period>`` as a fraction (0.02 = 2%) per bar, or per year when annualised. The
        value at bar t uses the returns ``ln(c_s / c_{s-1})`` for s in t-period+1..t, i.e.
        closes t-period..t, known at bar t's close; NaN for the first ``period`` bars.

    Examples
    --------
    >>> close = pd.Series([100.0, 101.0, 100.0, 101.0])
    >>> realised_volatility(close, 2).round(6).tolist()
    [nan, nan, 0.014072, 0.014072]
    >>> round(float(realised_volatility(close, 2, periods_per_year=8760).iloc[-1]), 4)
    1.3171
    """
    x = check_series(close, "close")
    ddof = check_int(ddof, "ddof", 0, 1)
    period = check_int(period, "period", ddof + 1, _MAX_PERIOD)
    scale = 1.0
    if periods_per_year is not None:
        scale = math.sqrt(
            check_float(periods_per_year, "periods_per_year", minimum=0.0, min_inclusive=False)
        )
    out = realised_volatility_nb(x, period, ddof, scale, np.empty(x.shape[0]))
    return as_series(out, close.index, f"rv_{period}")
