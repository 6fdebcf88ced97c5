"""Execution algorithms: TWAP, VWAP (volume profile by time of day) and iceberg.

Each works a parent order through child orders placed by the
:class:`~quantum_trading.execution.order_manager.OrderManager`, records every child and
reports slippage against the arrival price (bps, positive = worse).
"""

from __future__ import annotations

from quantum_trading.execution.algos.base import (
    AlgoReport,
    AlgoStatus,
    ChildOrder,
    ExecAlgorithm,
    ScheduledAlgorithm,
    floor_to_lot,
    slippage_bps,
)
from quantum_trading.execution.algos.iceberg import Iceberg
from quantum_trading.execution.algos.twap import TWAP
from quantum_trading.execution.algos.vwap import VWAP, volume_profile

__all__ = [
    "TWAP",
    "VWAP",
    "AlgoReport",
    "AlgoStatus",
    "ChildOrder",
    "ExecAlgorithm",
    "Iceberg",
    "ScheduledAlgorithm",
    "floor_to_lot",
    "slippage_bps",
    "volume_profile",
]
