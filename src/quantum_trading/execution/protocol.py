"""The async ``Exchange`` protocol every adapter implements (ccxt, paper).

The order manager, the position monitor, the execution algorithms and the live trader talk to
exchanges only through this protocol, so paper and live trading run the same code.

Errors: adapters raise the types in :mod:`quantum_trading.execution.errors` and nothing else
(ccxt's exceptions are mapped); a call that may or may not have reached the exchange (a
timeout) raises :class:`~quantum_trading.execution.errors.OrderStateUnknown`, after which the
caller re-queries the order by its client order id.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

from quantum_trading.domain import Instrument
from quantum_trading.execution.models import (
    Balance,
    ExchangeFill,
    ExchangeOrder,
    ExchangePosition,
    OrderBook,
    OrderRequest,
    Ticker,
)

__all__ = ["Exchange"]


@runtime_checkable
class Exchange(Protocol):
    """An exchange with USDT-margined perpetuals, one-way position mode.

    All methods are coroutines. ``symbol`` is ccxt's unified form (``BTC/USDT:USDT``).
    """

    name: str

    async def markets(self) -> dict[str, Instrument]:
        """Tradable perpetuals with tick/lot size, min notional, max leverage and tiers."""
        ...

    async def balance(self) -> Balance:
        """Wallet, free and equity in USDT."""
        ...

    async def positions(self) -> dict[str, ExchangePosition]:
        """Open positions by symbol (flat symbols omitted)."""
        ...

    async def open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        """Orders not yet terminal (all symbols when ``symbol`` is None)."""
        ...

    async def create_order(self, request: OrderRequest) -> ExchangeOrder:
        """Submit an order. Idempotent by ``request.client_order_id``: a second call with the
        same id returns the existing order instead of creating another."""
        ...

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> ExchangeOrder:
        """Cancel by client order id; returns the order's final state (a filled order stays
        filled: cancelling it is not an error)."""
        ...

    async def fetch_order(self, symbol: str, *, client_order_id: str) -> ExchangeOrder:
        """The order's current state, by client order id
        (:class:`~quantum_trading.execution.errors.OrderNotFound` if the exchange never saw it)."""
        ...

    async def fills(self, symbol: str, *, since: pd.Timestamp | None = None) -> list[ExchangeFill]:
        """Our executions on ``symbol`` since ``since`` (oldest first)."""
        ...

    async def ohlcv(self, symbol: str, timeframe: str, *, since: pd.Timestamp | None = None,
                    limit: int | None = None) -> pd.DataFrame:
        """Closed bars as a canonical OHLCV frame (UTC bar-open index ``date``)."""
        ...

    async def ticker(self, symbol: str) -> Ticker:
        """Best bid/ask and last price."""
        ...

    async def order_book(self, symbol: str, *, depth: int = 20) -> OrderBook:
        """Top ``depth`` levels each side."""
        ...

    async def funding_rate(self, symbol: str) -> tuple[float, pd.Timestamp]:
        """The current (predicted) funding rate per settlement and the next settlement time."""
        ...

    async def set_leverage(self, symbol: str, leverage: float) -> None:
        """Set the leverage used for new positions on ``symbol``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
