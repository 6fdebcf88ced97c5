"""Quantum Trading: an AI trading system for crypto perpetual futures.

Research (data, indicators, strategies, backtests, optimisation, RL) and trading (risk engine,
order management, paper and live execution) on one simulator core.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
