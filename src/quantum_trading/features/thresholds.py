"""Adaptive thresholds: rolling quantiles of any series (RSI, %b, a z-score, funding ...).

Fixed levels such as "RSI above 70" mean different things in different regimes; a rolling
quantile turns them into "RSI in the top decile of the last 500 bars". Timing, warm-up and the
NaN contract are described in :mod:`quantum_trading.features`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantum_trading.features._validation import (
    as_frame,
    as_series,
    check_float,
    check_int,
    check_series,
)
from quantum_trading.features.rolling_nb import rolling_quantiles_nb

__all__ = ["adaptive_thresholds", "rolling_quantile"]

_MAX_PERIOD = 100_000


def rolling_quantile(series: pd.Series, period: int, q: float) -> pd.Series:
    """Rolling ``q``-quantile of the last ``period`` values.

    Parameters
    ----------
    series:
        Any series.
    period:
        Window length in bars, 1 to 100,000.
    q:
        Quantile in [0, 1] (0.5 is the rolling median).

    Returns
    -------
    pd.Series
        ``q<q>_<period>`` in the units of ``series``, interpolated linearly between order
        statistics exactly as ``series.rolling(period).quantile(q)`` (pandas' default), which
        it equals. NaN for the first ``period - 1`` bars. The window includes bar t; compare
        ``x_t`` with the threshold of earlier bars via ``.shift(1)`` when that matters.

    Examples
    --------
    >>> rolling_quantile(pd.Series([1.0, 5.0, 2.0, 4.0, 3.0]), 3, 0.5).tolist()
    [nan, nan, 2.0, 4.0, 3.0]
    """
    x = check_series(series, "series")
    period = check_int(period, "period", 1, _MAX_PERIOD)
    q = check_float(q, "q", minimum=0.0, maximum=1.0)
    out = np.empty((1, x.shape[0]))
    rolling_quantiles_nb(x, period, np.array([q]), out)
    return as_series(out[0], series.index, f"q{q:g}_{period}")


def adaptive_thresholds(
    series: pd.Series, period: int = 500, upper_q: float = 0.9, lower_q: float = 0.1
) -> pd.DataFrame:
    """Upper and lower adaptive thresholds of ``series``: two rolling quantiles in one pass.

    Parameters
    ----------
    series:
        The series to threshold, e.g. ``rsi(close)`` or ``bollinger_bands(close)["bb_percent_b"]``.
    period:
        Look-back window in bars, 1 to 100,000 (default 500).
    upper_q, lower_q:
        Quantiles in [0, 1] with ``lower_q <= upper_q`` (default 0.9 and 0.1).

    Returns
    -------
    pd.DataFrame
        ``threshold_upper`` and ``threshold_lower``, in the units of ``series``; each equals
        :func:`rolling_quantile` with the same window. NaN for the first ``period - 1`` valid
        bars. The window includes bar t (known at bar t's close); e.g.
        ``series > thresholds["threshold_upper"].shift(1)`` compares each bar with the
        thresholds of the bars before it.

    Examples
    --------
    >>> x = pd.Series([float(v) for v in range(10)])
    >>> adaptive_thresholds(x, period=5, upper_q=0.75, lower_q=0.25).iloc[-1].tolist()
    [8.0, 6.0]
    """
    x = check_series(series, "series")
    period = check_int(period, "period", 1, _MAX_PERIOD)
    upper_q = check_float(upper_q, "upper_q", minimum=0.0, maximum=1.0)
    lower_q = check_float(lower_q, "lower_q", minimum=0.0, maximum=upper_q)
    out = np.empty((2, x.shape[0]))
    rolling_quantiles_nb(x, period, np.array([upper_q, lower_q]), out)
    return as_frame(out, series.index, ["threshold_upper", "threshold_lower"])
