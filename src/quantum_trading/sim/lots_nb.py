"""Lot-size rounding kernels, shared by order sizing and the risk checks.

They live apart from :mod:`~quantum_trading.sim.orders_nb` so that
:mod:`~quantum_trading.sim.risk_nb` (which ``orders_nb`` calls) can use them without an import
cycle; ``orders_nb`` re-exports both.
"""

from __future__ import annotations

import math

from numba import njit

__all__ = ["round_lot_nb", "trunc_lot_nb"]


@njit(cache=True, _nrt=False)
def trunc_lot_nb(units: float, lot: float) -> float:
    """Round ``units`` toward zero to a multiple of ``lot`` (``lot`` 0 = no rounding).

    >>> trunc_lot_nb(-0.0567, 0.001), trunc_lot_nb(2.9999999999, 1.0)
    (-0.056, 3.0)
    """
    if lot <= 0.0:
        return units
    n = math.floor(abs(units) / lot + 1e-9)
    if n <= 0.0:
        return 0.0
    return n * lot if units > 0.0 else -n * lot


@njit(cache=True, _nrt=False)
def round_lot_nb(units: float, lot: float) -> float:
    """Round ``units`` to the nearest multiple of ``lot`` (removes float dust)."""
    if lot <= 0.0:
        return units
    return round(units / lot) * lot
