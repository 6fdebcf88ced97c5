"""The strategy library: rule-based strategies with declared parameters, and a benchmark.

Every strategy returns a clean position state series ``{-1, 0, +1} × size`` (0 during the
warm-up), decided at bar t's close and filled at bar t+1's open, with optional stop-loss /
take-profit as a % of the entry price or as ATR multiples.

>>> [s.name for s in LIBRARY]
['buy_and_hold', 'mean_reversion', 'momentum_breakout', 'trend_following']
"""

from __future__ import annotations

from quantum_trading.strategies.library.buy_and_hold import BuyAndHold, buy_and_hold
from quantum_trading.strategies.library.mean_reversion import MeanReversion, mean_reversion
from quantum_trading.strategies.library.momentum_breakout import (
    MomentumBreakout,
    momentum_breakout,
)
from quantum_trading.strategies.library.trend_following import TrendFollowing, trend_following

__all__ = [
    "LIBRARY",
    "BuyAndHold",
    "MeanReversion",
    "MomentumBreakout",
    "TrendFollowing",
    "buy_and_hold",
    "mean_reversion",
    "momentum_breakout",
    "trend_following",
]

LIBRARY = (buy_and_hold, mean_reversion, momentum_breakout, trend_following)
"""The library's strategy instances, by name."""
