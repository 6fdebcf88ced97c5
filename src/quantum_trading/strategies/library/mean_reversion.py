"""Mean reversion: buy a close below the lower Bollinger band when RSI is oversold.

Rule (all at bar t's close, the position filled at bar t+1's open), with Bollinger Bands of
``bb_period`` bars and ``nbdev`` population standard deviations around the SMA, and Wilder's
RSI of ``rsi_period`` bars:

* long entry: ``close[t] < lower[t]`` and ``rsi[t] < rsi_threshold``;
* long exit: ``close[t] > middle[t]``;
* short side, symmetric: entry on ``close[t] > upper[t]`` and ``rsi[t] > 100 - rsi_threshold``,
  exit on ``close[t] < middle[t]``.

Only the sides allowed by ``direction`` are entered; the target is ``{-1, 0, +1} × size``,
0 until the bands and the RSI exist.

>>> from quantum_trading.strategies.library.mean_reversion import mean_reversion
>>> mean_reversion.params["rsi_threshold"].describe()
'a number in [10.0, 40.0]'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.features.oscillators_nb import rsi_nb
from quantum_trading.features.volatility_nb import bbands_nb
from quantum_trading.strategies.base import FloatParam, IntParam, ParamSpace
from quantum_trading.strategies.library._common import (
    DIRECTION_PARAM,
    SIZE_PARAM,
    STOP_CONSTRAINTS,
    STOP_PARAMS,
    Events,
    LibraryStrategy,
    float_columns,
)

__all__ = ["MeanReversion", "mean_reversion"]


class MeanReversion(LibraryStrategy):
    """Bollinger-band and RSI reversion to the middle band.

    See the module docstring for the exact rule. Parameters: ``bb_period`` (10–50),
    ``nbdev`` (1.5–3.0), ``rsi_period`` (2–30), ``rsi_threshold`` (10–40), ``direction``,
    ``size`` and the stop parameters.

    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=40, freq="1h", tz="UTC")
    >>> close = pd.Series([100.0 + (i % 2) for i in range(40)], index=idx)
    >>> close.iloc[30:33] = [90.0, 85.0, 102.0]
    >>> df = pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
    ...                    "volume": 1.0})
    >>> MeanReversion().signals(df).target.iloc[29:34, 0].tolist()
    [0.0, 1.0, 1.0, 0.0, 0.0]
    """

    name = "mean_reversion"
    required_columns = ("close",)
    params = ParamSpace(
        {
            "bb_period": IntParam(10, 50, default=20, doc="Bollinger Band window (bars)"),
            "nbdev": FloatParam(1.5, 3.0, default=2.0, step=0.1,
                                doc="band width in standard deviations"),
            "rsi_period": IntParam(2, 30, default=14, doc="RSI period (bars)"),
            "rsi_threshold": FloatParam(10.0, 40.0, default=30.0, step=1.0,
                                        doc="long entries need RSI below this (shorts: above "
                                        "100 minus this)"),
            "direction": DIRECTION_PARAM,
            "size": SIZE_PARAM,
            **STOP_PARAMS,
        },
        constraints=STOP_CONSTRAINTS,
    )

    def events(self, frame: pd.DataFrame, p: Mapping[str, Any]) -> Events:
        """Band-and-RSI entries, middle-band exits; see the module docstring."""
        (close,) = float_columns(frame, ("close",))
        n = close.shape[0]
        nbdev = float(p["nbdev"])
        upper, middle, lower, _, _ = bbands_nb(close, int(p["bb_period"]), nbdev, nbdev,
                                               np.empty((5, n)))
        r = rsi_nb(close, int(p["rsi_period"]), np.empty(n))
        thr = float(p["rsi_threshold"])
        return Events(
            long_entry=(close < lower) & (r < thr),
            long_exit=close > middle,
            short_entry=(close > upper) & (r > 100.0 - thr),
            short_exit=close < middle,
            ready=~np.isnan(middle) & ~np.isnan(r),
        )


mean_reversion = MeanReversion()
"""The registered instance."""
