"""Trend, momentum and volume indicators: the pandas API over the numba kernels.

Each function checks its arguments, converts the inputs to float64 arrays, runs one kernel and
returns a Series (or a DataFrame for several outputs) on the input's index. Timing, warm-up and
the NaN contract are described in :mod:`quantum_trading.features`; in short, the value at bar
``t`` uses bars ``<= t`` only, so it is known at bar ``t``'s close.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantum_trading.features._validation import (
    as_frame,
    as_series,
    check_int,
    check_same_index,
    check_series,
)
from quantum_trading.features.averages_nb import ema_nb, macd_nb, sma_nb, wma_nb
from quantum_trading.features.oscillators_nb import adx_nb, obv_nb, rsi_nb, stoch_nb
from quantum_trading.features.rolling_nb import rolling_vwap_nb

__all__ = ["adx", "ema", "macd", "obv", "rolling_vwap", "rsi", "sma", "stochastic", "wma"]

_MAX_PERIOD = 100_000  # TA-Lib's upper bound for every period


def sma(close: pd.Series, period: int = 30) -> pd.Series:
    """Simple moving average: the mean of the last ``period`` values.

    Parameters
    ----------
    close:
        Prices (or any series), in their own units.
    period:
        Window length in bars, 1 to 100,000 (TA-Lib's default 30).

    Returns
    -------
    pd.Series
        ``sma_<period>``, in the units of ``close``. The value at bar t uses bars t-period+1..t
        (known at bar t's close); the first ``period - 1`` values are NaN (TA-Lib SMA).

    Examples
    --------
    >>> sma(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0]), 3).tolist()
    [nan, nan, 2.0, 3.0, 4.0]
    """
    x = check_series(close, "close")
    period = check_int(period, "period", 1, _MAX_PERIOD)
    return as_series(sma_nb(x, period, np.empty(x.shape[0])), close.index, f"sma_{period}")


def ema(close: pd.Series, period: int = 30) -> pd.Series:
    """Exponential moving average with ``k = 2 / (period + 1)``, seeded like TA-Lib.

    Parameters
    ----------
    close:
        Prices (or any series).
    period:
        Span in bars, 1 to 100,000 (TA-Lib's default 30).

    Returns
    -------
    pd.Series
        ``ema_<period>``, in the units of ``close``. The first value (bar ``period - 1``) is
        the SMA of the first ``period`` values; then ``ema_t = ema_{t-1} + k (x_t -
        ema_{t-1})``. Uses bars <= t, known at bar t's close.

    Examples
    --------
    >>> ema(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0]), 3).tolist()
    [nan, nan, 2.0, 3.0, 4.0]
    """
    x = check_series(close, "close")
    period = check_int(period, "period", 1, _MAX_PERIOD)
    return as_series(ema_nb(x, period, np.empty(x.shape[0])), close.index, f"ema_{period}")


def wma(close: pd.Series, period: int = 30) -> pd.Series:
    """Linearly weighted moving average: weights 1..period, the newest bar weighted most.

    Parameters
    ----------
    close:
        Prices (or any series).
    period:
        Window length in bars, 1 to 100,000 (TA-Lib's default 30).

    Returns
    -------
    pd.Series
        ``wma_<period>``, in the units of ``close``; uses bars t-period+1..t (known at bar t's
        close); the first ``period - 1`` values are NaN (TA-Lib WMA).

    Examples
    --------
    >>> wma(pd.Series([1.0, 2.0, 3.0, 4.0]), 3).round(4).tolist()
    [nan, nan, 2.3333, 3.3333]
    """
    x = check_series(close, "close")
    period = check_int(period, "period", 1, _MAX_PERIOD)
    return as_series(wma_nb(x, period, np.empty(x.shape[0])), close.index, f"wma_{period}")


def macd(
    close: pd.Series, fast_period: int = 12, slow_period: int = 26, signal_period: int = 9
) -> pd.DataFrame:
    """Moving average convergence/divergence, aligned exactly as TA-Lib's MACD.

    Parameters
    ----------
    close:
        Prices.
    fast_period:
        Fast EMA span in bars, 1 to 100,000, below ``slow_period`` (default 12).
    slow_period:
        Slow EMA span in bars, 2 to 100,000 (default 26).
    signal_period:
        Span of the signal EMA of the MACD line, 1 to 100,000 (default 9).

    Returns
    -------
    pd.DataFrame
        Columns ``macd`` (fast EMA - slow EMA, price units), ``macd_signal`` (EMA of
        ``macd``) and ``macd_hist`` (``macd - macd_signal``). Both EMAs start at bar
        ``slow_period - 1``, the fast one seeded with the SMA of the ``fast_period`` bars
        ending there; all three columns are NaN for the first
        ``slow_period + signal_period - 2`` bars. Uses bars <= t, known at bar t's close.

    Examples
    --------
    >>> out = macd(pd.Series([float(v) for v in range(1, 11)]), 2, 4, 3)
    >>> out.columns.tolist()
    ['macd', 'macd_signal', 'macd_hist']
    >>> out["macd"].round(6).tolist()[4:]
    [nan, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    x = check_series(close, "close")
    slow_period = check_int(slow_period, "slow_period", 2, _MAX_PERIOD)
    fast_period = check_int(fast_period, "fast_period", 1, slow_period - 1)
    signal_period = check_int(signal_period, "signal_period", 1, _MAX_PERIOD)
    out = np.empty((3, x.shape[0]))
    macd_nb(x, fast_period, slow_period, signal_period, out)
    return as_frame(out, close.index, ["macd", "macd_signal", "macd_hist"])


def rsi(close: pd.Series, period: int = 14) -> pd.Series:
    """Wilder's relative strength index, in [0, 100].

    Parameters
    ----------
    close:
        Prices.
    period:
        Wilder smoothing period in bars, 2 to 100,000 (default 14).

    Returns
    -------
    pd.Series
        ``rsi_<period>``: ``100 * avg_gain / (avg_gain + avg_loss)``; 0 when both averages
        are 0 (TA-Lib's convention). The first value, at bar ``period``, averages the first
        ``period`` changes; later values use Wilder's smoothing. Uses bars <= t, known at
        bar t's close.

    Examples
    --------
    >>> rsi(pd.Series([1.0, 2.0, 3.0, 2.0, 3.0]), 2).round(2).tolist()
    [nan, nan, 100.0, 50.0, 75.0]
    """
    x = check_series(close, "close")
    period = check_int(period, "period", 2, _MAX_PERIOD)
    return as_series(rsi_nb(x, period, np.empty(x.shape[0])), close.index, f"rsi_{period}")


def stochastic(
    high: pd.Series,
    low: pd.Series,
    close: pd.Series,
    fastk_period: int = 5,
    slowk_period: int = 3,
    slowd_period: int = 3,
) -> pd.DataFrame:
    """Slow stochastic oscillator %K/%D in [0, 100] (TA-Lib STOCH with SMA smoothing).

    Parameters
    ----------
    high, low, close:
        Bar prices, sharing one index.
    fastk_period:
        Bars in the highest-high / lowest-low window, 1 to 100,000 (default 5).
    slowk_period:
        SMA period smoothing fast %K into ``stoch_k``, 1 to 100,000 (default 3).
    slowd_period:
        SMA period smoothing ``stoch_k`` into ``stoch_d``, 1 to 100,000 (default 3).

    Returns
    -------
    pd.DataFrame
        Columns ``stoch_k`` (TA-Lib's slowk) and ``stoch_d`` (slowd). Fast %K is
        ``100 (close - lowest low) / (highest high - lowest low)``, 0 when the range is 0.
        Both columns are NaN for the first ``fastk_period + slowk_period + slowd_period - 3``
        bars. Uses bars <= t, known at bar t's close.

    Examples
    --------
    >>> h = pd.Series([2.0, 3.0, 4.0, 5.0])
    >>> stochastic(h, h - 2.0, h - 1.0, 2, 1, 1)["stoch_k"].round(2).tolist()
    [nan, 66.67, 66.67, 66.67]
    """
    index = check_same_index(high=high, low=low, close=close)
    h = check_series(high, "high")
    lo = check_series(low, "low")
    c = check_series(close, "close")
    fastk_period = check_int(fastk_period, "fastk_period", 1, _MAX_PERIOD)
    slowk_period = check_int(slowk_period, "slowk_period", 1, _MAX_PERIOD)
    slowd_period = check_int(slowd_period, "slowd_period", 1, _MAX_PERIOD)
    out = np.empty((2, h.shape[0]))
    stoch_nb(h, lo, c, fastk_period, slowk_period, slowd_period, out)
    return as_frame(out, index, ["stoch_k", "stoch_d"])


def adx(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14) -> pd.DataFrame:
    """Wilder's average directional index with the +DI and -DI lines, each in [0, 100].

    Parameters
    ----------
    high, low, close:
        Bar prices, sharing one index.
    period:
        Wilder smoothing period in bars, 2 to 100,000 (default 14).

    Returns
    -------
    pd.DataFrame
        Columns ``adx``, ``plus_di`` and ``minus_di`` (TA-Lib ADX, PLUS_DI, MINUS_DI). The DI
        lines start at bar ``period``, ADX at bar ``2 * period - 1``. +DI/-DI are 0 while the
        smoothed true range is 0, and ADX then keeps its last value. Uses bars <= t, known at
        bar t's close.

    Examples
    --------
    >>> c = pd.Series([float(v) for v in range(10)])
    >>> adx(c + 1.0, c - 1.0, c, 2).iloc[-1].tolist()
    [100.0, 50.0, 0.0]
    """
    index = check_same_index(high=high, low=low, close=close)
    h = check_series(high, "high")
    lo = check_series(low, "low")
    c = check_series(close, "close")
    period = check_int(period, "period", 2, _MAX_PERIOD)
    out = np.empty((3, h.shape[0]))
    adx_nb(h, lo, c, period, out)
    return as_frame(out, index, ["adx", "plus_di", "minus_di"])


def obv(close: pd.Series, volume: pd.Series) -> pd.Series:
    """On-balance volume: a running sum of volume, signed by the close-to-close move.

    Parameters
    ----------
    close:
        Prices.
    volume:
        Traded volume per bar (base-asset units), sharing the index of ``close``.

    Returns
    -------
    pd.Series
        ``obv`` in volume units. It starts at the first bar's volume (TA-Lib OBV, no
        warm-up); each later bar adds its volume on an up-close, subtracts it on a down-close
        and keeps the total on an unchanged close. Uses bars <= t, known at bar t's close.

    Examples
    --------
    >>> obv(pd.Series([1.0, 2.0, 1.0, 1.0]), pd.Series([10.0, 5.0, 3.0, 4.0])).tolist()
    [10.0, 15.0, 12.0, 12.0]
    """
    index = check_same_index(close=close, volume=volume)
    c = check_series(close, "close")
    v = check_series(volume, "volume")
    return as_series(obv_nb(c, v, np.empty(c.shape[0])), index, "obv")


def rolling_vwap(
    high: pd.Series, low: pd.Series, close: pd.Series, volume: pd.Series, period: int = 14
) -> pd.Series:
    """Rolling volume-weighted average price over the last ``period`` bars.

    Parameters
    ----------
    high, low, close:
        Bar prices, sharing one index.
    volume:
        Traded volume per bar.
    period:
        Window length in bars, 1 to 100,000 (default 14, as ``ta``).

    Returns
    -------
    pd.Series
        ``vwap_<period>``: ``sum(tp * volume) / sum(volume)`` with the typical price ``tp =
        (high + low + close) / 3``, as ``ta.volume.VolumeWeightedAveragePrice``; NaN where
        the window's volume sums to 0 and for the first ``period - 1`` bars. Uses bars
        t-period+1..t, known at bar t's close.

    Examples
    --------
    >>> c = pd.Series([10.0, 12.0, 11.0])
    >>> rolling_vwap(c, c, c, pd.Series([1.0, 3.0, 0.0]), 2).tolist()
    [nan, 11.5, 12.0]
    """
    index = check_same_index(high=high, low=low, close=close, volume=volume)
    h = check_series(high, "high")
    lo = check_series(low, "low")
    c = check_series(close, "close")
    v = check_series(volume, "volume")
    period = check_int(period, "period", 1, _MAX_PERIOD)
    out = rolling_vwap_nb(h, lo, c, v, period, np.empty(h.shape[0]))
    return as_series(out, index, f"vwap_{period}")
