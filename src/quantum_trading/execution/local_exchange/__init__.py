"""The local exchange: Binance USDⓈ-M compatible HTTP endpoints served from stored market data.

Point the real ccxt ``binanceusdm`` client at it (``make_client(..., base_url=...)`` in
:mod:`quantum_trading.data.download`) to test downloads and, with ``trading=TradingOptions``
(``quantum exchange serve --trading``), trading against a paper exchange that replays the
stored bars — fully offline. Run it with ``quantum exchange serve`` or, in tests,
:func:`serve_in_thread`.
"""

from quantum_trading.execution.local_exchange.app import create_app
from quantum_trading.execution.local_exchange.faults import (
    FaultInjector,
    FaultPlan,
    RandomFaults,
    parse_fault_specs,
)
from quantum_trading.execution.local_exchange.market_data import MarketData
from quantum_trading.execution.local_exchange.server import serve, serve_in_thread
from quantum_trading.execution.local_exchange.signing import Credentials
from quantum_trading.execution.local_exchange.trading import TradingOptions, TradingSession

__all__ = [
    "Credentials",
    "FaultInjector",
    "FaultPlan",
    "MarketData",
    "RandomFaults",
    "TradingOptions",
    "TradingSession",
    "create_app",
    "parse_fault_specs",
    "serve",
    "serve_in_thread",
]
