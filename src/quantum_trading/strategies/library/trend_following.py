"""Trend following: fast/slow EMA crossover.

Rule (all at bar t's close, the position filled at bar t+1's open), with ``d = EMA(close,
fast) - EMA(close, slow)`` (EMAs seeded like TA-Lib):

* long entry: the fast EMA crosses above the slow one, ``d[t] > 0 >= d[t-1]``;
* long exit: ``d[t] < 0`` (the cross below);
* short side, symmetric: entry on ``d[t] < 0 <= d[t-1]``, exit on ``d[t] > 0``.

The first position waits for a fresh cross after both EMAs exist (the target is 0 before).
With ``direction="both"`` each cross reverses the position. ``fast < slow`` is required.

>>> from quantum_trading.strategies.library.trend_following import trend_following
>>> trend_following.params.validate({"fast": 30, "slow": 20})
Traceback (most recent call last):
...
quantum_trading.errors.ConfigError: parameters break the rule fast < slow (fast=30, slow=20, direction='long', size=1.0, stop_loss_pct=0.0, take_profit_pct=0.0, stop_loss_atr=0.0, take_profit_atr=0.0, atr_period=14)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.features.averages_nb import ema_nb
from quantum_trading.strategies.base import Constraint, IntParam, ParamSpace
from quantum_trading.strategies.library._common import (
    DIRECTION_PARAM,
    SIZE_PARAM,
    STOP_CONSTRAINTS,
    STOP_PARAMS,
    Events,
    LibraryStrategy,
    float_columns,
    shift_one,
)
from quantum_trading.strategies.library.stepping import EmaStep, EventStep

__all__ = ["TrendFollowing", "trend_following"]


class TrendFollowing(LibraryStrategy):
    """Fast/slow EMA crossover.

    See the module docstring for the exact rule. Parameters: ``fast`` (5–50), ``slow``
    (20–200) with ``fast < slow``, ``direction``, ``size`` and the stop parameters.

    >>> import numpy as np, pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=60, freq="1h", tz="UTC")
    >>> close = pd.Series(np.r_[np.linspace(100, 70, 30), np.linspace(71, 100, 30)], index=idx)
    >>> df = pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
    ...                    "volume": 1.0})
    >>> target = TrendFollowing().signals(df, fast=5, slow=20).target.iloc[:, 0]
    >>> int(target.to_numpy().argmax()), target.iloc[-1]  # the EMAs cross up at bar 39
    (39, np.float64(1.0))
    """

    name = "trend_following"
    required_columns = ("close",)
    params = ParamSpace(
        {
            "fast": IntParam(5, 50, default=20, doc="fast EMA period (bars)"),
            "slow": IntParam(20, 200, default=50, step=5, doc="slow EMA period (bars)"),
            "direction": DIRECTION_PARAM,
            "size": SIZE_PARAM,
            **STOP_PARAMS,
        },
        constraints=(Constraint("fast < slow", lambda p: p["fast"] < p["slow"]),
                     *STOP_CONSTRAINTS),
    )

    def events(self, frame: pd.DataFrame, p: Mapping[str, Any]) -> Events:
        """EMA-cross entries and exits; see the module docstring."""
        (close,) = float_columns(frame, ("close",))
        n = close.shape[0]
        d = (ema_nb(close, int(p["fast"]), np.empty(n))
             - ema_nb(close, int(p["slow"]), np.empty(n)))
        prev = shift_one(d)
        return Events(
            long_entry=(d > 0.0) & (prev <= 0.0),
            long_exit=d < 0.0,
            short_entry=(d < 0.0) & (prev >= 0.0),
            short_exit=d > 0.0,
            ready=~np.isnan(d),
        )

    def event_stepper(self, p: Mapping[str, Any]) -> EventStep:
        """:meth:`events` one bar at a time (the two EMAs and the previous difference carried
        from bar to bar; the same values, see :mod:`~quantum_trading.strategies.library.
        stepping`)."""
        fast, slow = EmaStep(int(p["fast"])), EmaStep(int(p["slow"]))
        prev = [math.nan]  # d one bar earlier (NaN before the first bar, as shift_one)

        def step(row: Mapping[str, float]) -> tuple[bool, bool, bool, bool, bool]:
            close = float(row["close"])
            d = fast(close) - slow(close)
            before, prev[0] = prev[0], d
            return (d > 0.0 and before <= 0.0, d < 0.0, d < 0.0 and before >= 0.0, d > 0.0,
                    not math.isnan(d))

        return step


trend_following = TrendFollowing()
"""The registered instance."""
