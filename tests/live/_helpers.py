"""Shared helpers of the live tests: a fresh migrated database per test, a run() shortcut, and
the fake exchange of ``tests/execution`` (read, not edited)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from execution._fake_exchange import SYMBOL, FakeExchange  # tests/ is on sys.path
from quantum_trading.domain import Side
from quantum_trading.execution.models import (
    ExchangeOrder,
    LiveOrderStatus,
    LiveOrderType,
    OrderRequest,
)
from quantum_trading.live.store import TradingStore

__all__ = ["SYMBOL", "FakeExchange", "limit", "market", "run", "snapshot", "store_at"]

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine (pytest-asyncio is not installed)."""
    return asyncio.run(coro)


def store_at(path: Path, *, exchange: str = "fake", clock: Any = None,
             journal: bool = True) -> TradingStore:
    """A store on a migrated SQLite file at ``path`` (opened as the trader opens it)."""
    return TradingStore.open(f"sqlite:///{path}", exchange=exchange, clock=clock,
                             journal=journal)


def market(side: Side, amount: float, cid: str, **kw: Any) -> OrderRequest:
    return OrderRequest(SYMBOL, side, LiveOrderType.MARKET, amount, client_order_id=cid, **kw)


def limit(side: Side, amount: float, price: float, cid: str, **kw: Any) -> OrderRequest:
    return OrderRequest(SYMBOL, side, LiveOrderType.LIMIT, amount, price=price,
                        client_order_id=cid, **kw)


def snapshot(cid: str, status: LiveOrderStatus, filled: float, *, amount: float = 1.0,
             time: str = "2024-01-01 00:00", avg: float | None = 100.0) -> ExchangeOrder:
    """An exchange snapshot of a buy limit order at 100."""
    t = pd.Timestamp(time, tz="UTC")
    return ExchangeOrder(id=f"ex-{cid}", client_order_id=cid, symbol=SYMBOL, side=Side.BUY,
                         order_type=LiveOrderType.LIMIT, status=status, amount=amount,
                         filled=filled, price=100.0, stop_price=None,
                         average_price=avg if filled > 0 else None, reduce_only=False,
                         created_at=t, updated_at=t)
