"""Backtests on the one simulator: the :class:`Backtest` runner, metrics and the HTML report.

A backtest turns a strategy's signals (targets decided at bar t's close, filled at bar t+1's
open) into a simulation with :func:`quantum_trading.sim.simulate`, runs a buy-and-hold
benchmark through the same simulator and costs, and summarises both: a trade log with every
cost in its own column and a stats Series with units in its keys (``Return [%]``,
``Max. Drawdown [%]``, ``Sharpe Ratio`` annualised from the real bar frequency of a 24/7
market).

>>> from quantum_trading.backtest import Backtest, write_report
>>> from quantum_trading.data import generate_market
>>> bars = generate_market(n_assets=1, n_bars=300, seed=2).ohlcv["BTC/USDT:USDT"]
>>> result = Backtest(bars, "buy_and_hold").run()
>>> result.stats["# Trades"]
1
"""

from quantum_trading.backtest import metrics
from quantum_trading.backtest.report import write_report
from quantum_trading.backtest.result import BacktestResult
from quantum_trading.backtest.runner import PRESETS, Backtest, default_instrument
from quantum_trading.backtest.stats import STATS_KEYS, compute_stats
from quantum_trading.backtest.trades import TRADE_COLUMNS, trade_log

__all__ = [
    "PRESETS",
    "STATS_KEYS",
    "TRADE_COLUMNS",
    "Backtest",
    "BacktestResult",
    "compute_stats",
    "default_instrument",
    "metrics",
    "trade_log",
    "write_report",
]
