"""The risk-limit kernels, as seen from the ``risk`` package.

The kernels and their NamedTuples are defined in :mod:`quantum_trading.sim.risk_nb`: the
simulator step calls them, and ``sim`` may not import ``risk`` (the layer above it), so they
live there and are re-exported here. :class:`~quantum_trading.risk.engine.RiskEngine` calls
exactly these functions, so backtests and live trading share one implementation of the rules.

>>> from quantum_trading.risk.limits_nb import check_order_nb, update_risk_state_nb
"""

from __future__ import annotations

from quantum_trading.sim.risk_nb import (
    RISK_OFF,
    RiskParams,
    RiskState,
    check_order_nb,
    halt_risk_state_nb,
    new_risk_state,
    reset_risk_state_nb,
    update_risk_state_nb,
)

__all__ = [
    "RISK_OFF",
    "RiskParams",
    "RiskState",
    "check_order_nb",
    "halt_risk_state_nb",
    "new_risk_state",
    "reset_risk_state_nb",
    "update_risk_state_nb",
]
