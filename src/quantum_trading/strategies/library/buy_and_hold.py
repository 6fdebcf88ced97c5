"""Buy and hold: the benchmark. Long ``size`` × equity from the first bar to the last.

The target is ``size`` at every bar: decided at bar 0's close, so the position is bought at
bar 1's open and held to the end (a stop-out is not re-entered, as the target never changes).

>>> import pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
>>> df = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
...                   index=idx)
>>> buy_and_hold.signals(df, size=0.5).target.iloc[:, 0].tolist()
[0.5, 0.5, 0.5]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.strategies.base import ParamSpace
from quantum_trading.strategies.library._common import SIZE_PARAM, AssetSignals, LibraryStrategy

__all__ = ["BuyAndHold", "buy_and_hold"]


class BuyAndHold(LibraryStrategy):
    """Constant long target ``size`` (multiple of equity) on every bar and asset.

    >>> BuyAndHold().params.defaults()
    {'size': 1.0}
    """

    name = "buy_and_hold"
    params = ParamSpace({"size": SIZE_PARAM})
    required_columns = ("close",)

    def asset_signals(self, frame: pd.DataFrame, p: Mapping[str, Any]) -> AssetSignals:
        """``size`` at every bar; no stops."""
        return AssetSignals(np.full(len(frame), float(p["size"])), None, None)


buy_and_hold = BuyAndHold()
"""The registered instance."""
