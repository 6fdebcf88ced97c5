"""Numba kernel of funding payments (Binance convention).

At each funding time the holder of ``position_size`` units (signed) receives
``−position_size · mark_price · funding_rate`` USDT: longs pay shorts when the rate is
positive. The simulator settles it at the open of the bar whose interval contains the
funding time, on the position held coming into that bar, before any fill of that bar.
"""

from __future__ import annotations

from numba import njit

__all__ = ["funding_payment_nb"]


@njit(cache=True, _nrt=False)
def funding_payment_nb(position_size: float, mark_price: float, funding_rate: float) -> float:
    """Cash paid (negative) or received (positive) at one funding time.

    Longs pay shorts when ``funding_rate`` > 0 (Binance convention).

    >>> funding_payment_nb(0.5, 30_000.0, 0.0001)
    -1.5
    """
    return -position_size * mark_price * funding_rate
