"""TWAP: a parent order split into equal children at equal intervals.

Slice k of ``n_slices`` is due at ``start + k × duration_s / n_slices`` (the first at start)
and brings the cumulative amount to ``amount × (k + 1) / n_slices`` (lot-rounded down, the last
slice takes the rest), so the children sum to the parent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantum_trading.domain import Side
from quantum_trading.execution.algos.base import ScheduledAlgorithm
from quantum_trading.execution.config import TWAPConfig
from quantum_trading.execution.order_manager import OrderManager

__all__ = ["TWAP"]


class TWAP(ScheduledAlgorithm):
    """Time-weighted average price execution (see the module docstring).

    Parameters
    ----------
    manager, symbol, side, amount, reduce_only, lot_size, parent_id:
        As :class:`~quantum_trading.execution.algos.base.ExecAlgorithm`.
    config:
        :class:`~quantum_trading.execution.config.TWAPConfig` (None = 12 market children over
        1 h).

    >>> algo = TWAP(manager, symbol="BTC/USDT:USDT", side=Side.BUY, amount=1.2,
    ...             config=TWAPConfig(duration_s=600, n_slices=6))  # doctest: +SKIP
    """

    name = "twap"

    def __init__(self, manager: OrderManager, *, symbol: str, side: Side, amount: float,
                 config: TWAPConfig | None = None, reduce_only: bool = False,
                 lot_size: float | None = None, parent_id: str | None = None) -> None:
        super().__init__(manager, symbol=symbol, side=side, amount=amount,
                         config=TWAPConfig() if config is None else config,
                         reduce_only=reduce_only, lot_size=lot_size, parent_id=parent_id)

    def _weights(self, times: pd.DatetimeIndex, slice_s: float) -> np.ndarray:
        return np.ones(len(times))
