"""Strategies: the :class:`Strategy` protocol, declared parameter spaces, the function
adapter, the rule library, the registry and the causality check.

A strategy turns market data into :class:`~quantum_trading.domain.Signals`: the target
exposure (signed multiple of equity) per bar and asset, **decided at bar t's close and filled
at bar t+1's open**, plus optional stop-loss / take-profit rules.

>>> import pandas as pd
>>> from quantum_trading.strategies import get_strategy, parse_params
>>> strat = get_strategy("momentum_breakout")
>>> params = parse_params(strat, ["lookback=50", "direction=both"])
>>> params["lookback"], params["direction"]
(50, 'both')
"""

from __future__ import annotations

from quantum_trading.strategies.base import (
    CategoricalParam,
    Constraint,
    FloatParam,
    IntParam,
    MarketData,
    Param,
    ParamSpace,
    Strategy,
    StrategyError,
)
from quantum_trading.strategies.causality import CausalityError, check_causality
from quantum_trading.strategies.function import FunctionStrategy, strategy_from_function
from quantum_trading.strategies.library import (
    LIBRARY,
    BuyAndHold,
    MeanReversion,
    MomentumBreakout,
    TrendFollowing,
)
from quantum_trading.strategies.positions import position_from_entries_exits
from quantum_trading.strategies.positions_nb import position_from_entries_exits_nb
from quantum_trading.strategies.registry import (
    get_strategy,
    list_strategies,
    parse_params,
    register_strategy,
    resolve_strategy,
)

__all__ = [
    "LIBRARY",
    "BuyAndHold",
    "CategoricalParam",
    "CausalityError",
    "Constraint",
    "FloatParam",
    "FunctionStrategy",
    "IntParam",
    "MarketData",
    "MeanReversion",
    "MomentumBreakout",
    "Param",
    "ParamSpace",
    "Strategy",
    "StrategyError",
    "TrendFollowing",
    "check_causality",
    "get_strategy",
    "list_strategies",
    "parse_params",
    "position_from_entries_exits",
    "position_from_entries_exits_nb",
    "register_strategy",
    "resolve_strategy",
    "strategy_from_function",
]
