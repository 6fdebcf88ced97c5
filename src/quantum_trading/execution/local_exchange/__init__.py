"""The local exchange: Binance USDⓈ-M compatible HTTP endpoints served from stored market data.

Point the real ccxt ``binanceusdm`` client at it (``make_client(..., base_url=...)`` in
:mod:`quantum_trading.data.download`) to test downloads, and later trading, fully offline.
Run it with ``quantum exchange serve`` or, in tests, :func:`serve_in_thread`.
"""

from quantum_trading.execution.local_exchange.app import create_app
from quantum_trading.execution.local_exchange.faults import FaultInjector, FaultPlan
from quantum_trading.execution.local_exchange.market_data import MarketData
from quantum_trading.execution.local_exchange.server import serve, serve_in_thread

__all__ = ["FaultInjector", "FaultPlan", "MarketData", "create_app", "serve", "serve_in_thread"]
