"""Momentum breakout: enter on a close beyond the prior N-bar extreme on heavy volume.

Rule (all at bar t's close, the position filled at bar t+1's open):

* long entry: ``close[t] > max(high[t-N .. t-1])`` (the prior ``lookback``-bar high) and
  ``volume[t] > volume_factor × mean(volume[t-V .. t-1])`` (V = ``volume_period``, 20);
* long exit: ``close[t] < min(low[t-M .. t-1])`` (the prior ``exit_lookback``-bar low, M = 10);
* short side, symmetric: entry on ``close[t] < min(low[t-N .. t-1])`` with the same volume
  condition, exit on ``close[t] > max(high[t-M .. t-1])``.

Only the sides allowed by ``direction`` are entered; an opposite entry reverses the position
(see :func:`~quantum_trading.strategies.positions_nb.position_from_entries_exits_nb`). The
target is ``{-1, 0, +1} × size``, 0 until the channels and the volume mean exist.

>>> from quantum_trading.strategies.library.momentum_breakout import momentum_breakout
>>> sorted(momentum_breakout.params.defaults())[:3]
['atr_period', 'direction', 'exit_lookback']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.features.averages_nb import sma_nb
from quantum_trading.features.rolling_nb import donchian_nb
from quantum_trading.strategies.base import FloatParam, IntParam, ParamSpace
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
from quantum_trading.strategies.library.stepping import EventStep, HighLowStep, SmaStep

__all__ = ["MomentumBreakout", "momentum_breakout"]


def _prior_channel(high: np.ndarray, low: np.ndarray, period: int) -> np.ndarray:
    """Donchian channel rows (upper, middle, lower) of the ``period`` bars before each bar
    (NaN until they exist)."""
    out = np.empty((3, high.shape[0]))
    donchian_nb(high, low, period, out)
    return shift_one(out)


class MomentumBreakout(LibraryStrategy):
    """Breakout of the prior ``lookback``-bar high (low for shorts) confirmed by volume.

    See the module docstring for the exact rule. Parameters: ``lookback`` (10–200),
    ``exit_lookback`` (5–100), ``volume_factor`` (1.0–3.0), ``volume_period`` (5–100),
    ``direction``, ``size`` and the stop parameters (``stop_loss_pct``, ``take_profit_pct``,
    ``stop_loss_atr``, ``take_profit_atr``, ``atr_period``).

    >>> import numpy as np, pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=30, freq="1h", tz="UTC")
    >>> close = pd.Series(100.0, index=idx); close.iloc[25:] = 110.0
    >>> df = pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
    ...                    "volume": np.where(np.arange(30) == 25, 5.0, 1.0)}, index=idx)
    >>> sig = MomentumBreakout().signals(df, lookback=10)
    >>> sig.target.iloc[:, 0].tolist()[23:28]
    [0.0, 0.0, 1.0, 1.0, 1.0]
    """

    name = "momentum_breakout"
    required_columns = ("high", "low", "close", "volume")
    params = ParamSpace(
        {
            "lookback": IntParam(10, 200, default=20, step=5,
                                 doc="bars of the prior high/low that a close must break"),
            "exit_lookback": IntParam(5, 100, default=10,
                                      doc="bars of the prior low (high for shorts) for exits"),
            "volume_factor": FloatParam(1.0, 3.0, default=1.5, step=0.1,
                                        doc="volume must exceed this × its prior mean"),
            "volume_period": IntParam(5, 100, default=20, step=5,
                                      doc="bars of the prior mean volume"),
            "direction": DIRECTION_PARAM,
            "size": SIZE_PARAM,
            **STOP_PARAMS,
        },
        constraints=STOP_CONSTRAINTS,
    )

    def events(self, frame: pd.DataFrame, p: Mapping[str, Any]) -> Events:
        """Breakout entries and channel exits; see the module docstring."""
        high, low, close, volume = float_columns(frame, ("high", "low", "close", "volume"))
        entry = _prior_channel(high, low, int(p["lookback"]))
        exit_ = _prior_channel(high, low, int(p["exit_lookback"]))
        vol_mean = shift_one(sma_nb(volume, int(p["volume_period"]), np.empty(close.shape[0])))
        heavy = volume > float(p["volume_factor"]) * vol_mean
        ready = ~np.isnan(entry[0]) & ~np.isnan(exit_[0]) & ~np.isnan(vol_mean)
        return Events(
            long_entry=(close > entry[0]) & heavy,
            long_exit=close < exit_[2],
            short_entry=(close < entry[2]) & heavy,
            short_exit=close > exit_[0],
            ready=ready,
        )

    def event_stepper(self, p: Mapping[str, Any]) -> EventStep:
        """:meth:`events` one bar at a time: the two channels and the volume mean of the
        bars before (each carried from the previous bar, as ``shift_one``), the same values
        (see :mod:`~quantum_trading.strategies.library.stepping`)."""
        entry, exit_ = HighLowStep(int(p["lookback"])), HighLowStep(int(p["exit_lookback"]))
        volume_mean = SmaStep(int(p["volume_period"]))
        factor = float(p["volume_factor"])
        nan = math.nan
        prior = [nan, nan, nan, nan, nan]  # entry hi, lo, exit hi, lo, volume mean: bar before

        def step(row: Mapping[str, float]) -> tuple[bool, bool, bool, bool, bool]:
            high, low = float(row["high"]), float(row["low"])
            close, volume = float(row["close"]), float(row["volume"])
            up, down, exit_up, exit_down, mean = prior
            heavy = volume > factor * mean
            ready = not (math.isnan(up) or math.isnan(exit_up) or math.isnan(mean))
            prior[:2] = entry(high, low)
            prior[2:4] = exit_(high, low)
            prior[4] = volume_mean(volume)
            return (close > up and heavy, close < exit_down, close < down and heavy,
                    close > exit_up, ready)

        return step


momentum_breakout = MomentumBreakout()
"""The registered instance."""
