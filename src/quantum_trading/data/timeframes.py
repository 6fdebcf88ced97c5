"""Timeframe strings (ccxt / freqtrade style: ``1m``, ``5m``, ``1h``, ``4h``, ``1d``, ``1w``)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = [
    "YEAR",
    "periods_per_year",
    "timeframe_to_ms",
    "timeframe_to_pandas",
    "timeframe_to_timedelta",
]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_PATTERN = re.compile(r"^(\d+)([smhdw])$")


def _parse(timeframe: str) -> tuple[int, str]:
    match = _PATTERN.match(timeframe.strip()) if isinstance(timeframe, str) else None
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(
            f"timeframe {timeframe!r} is not understood; use e.g. '1m', '5m', '1h', '4h', '1d', '1w'"
        )
    return int(match.group(1)), match.group(2)


def timeframe_to_timedelta(timeframe: str) -> pd.Timedelta:
    """Length of one bar.

    >>> timeframe_to_timedelta("4h")
    Timedelta('0 days 04:00:00')
    """
    count, unit = _parse(timeframe)
    return pd.Timedelta(seconds=count * _UNIT_SECONDS[unit])


def timeframe_to_ms(timeframe: str) -> int:
    """Length of one bar in milliseconds (the unit of exchange timestamps)."""
    count, unit = _parse(timeframe)
    return count * _UNIT_SECONDS[unit] * 1000


def timeframe_to_pandas(timeframe: str) -> str:
    """The pandas offset alias for a timeframe (``"1h"`` -> ``"1h"``, ``"1m"`` -> ``"1min"``)."""
    count, unit = _parse(timeframe)
    alias = {"s": "s", "m": "min", "h": "h", "d": "D", "w": "W-MON"}[unit]
    return f"{count}{alias}"


YEAR = pd.Timedelta(days=365.25)
"""One year of a 24/7 market (crypto trades every day): the annualisation base everywhere."""


def periods_per_year(spacing: pd.DatetimeIndex | pd.Timedelta | str) -> float:
    """Bars per year of a 24/7 market: ``365.25 days / bar length`` (not 252 trading days).

    ``spacing`` is a timeframe string (``"1h"``), a bar length, or a ``DatetimeIndex`` whose
    median spacing is used (robust to a few gaps). NaN for an index of fewer than two bars.

    >>> periods_per_year("1h"), periods_per_year(pd.Timedelta("1D"))
    (8766.0, 365.25)
    """
    if isinstance(spacing, str):
        step = timeframe_to_timedelta(spacing)
    elif isinstance(spacing, pd.Timedelta):
        step = spacing
    elif isinstance(spacing, pd.DatetimeIndex):
        if len(spacing) < 2:
            return float("nan")
        ns = spacing.as_unit("ns").asi8
        step = pd.Timedelta(int(np.median(np.diff(ns))), unit="ns")
    else:
        raise ValueError(
            f"periods_per_year needs a timeframe (e.g. '1h'), a Timedelta or a DatetimeIndex, "
            f"not {type(spacing).__name__}"
        )
    if step <= pd.Timedelta(0):
        return float("nan")
    return float(YEAR / step)
