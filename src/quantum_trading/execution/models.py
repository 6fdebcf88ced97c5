"""Value types of live and paper trading: order requests, exchange orders, fills, positions.

Times are UTC ``pd.Timestamp``; sizes are base units (contracts of a linear perp), always
positive on orders (the side says the direction) and signed on positions (+ long, − short);
prices in the quote currency (USDT).

Every order carries a **client order id** chosen by us before it is sent. Exchanges (and our
adapters) treat a second create with the same id as the same order, so a retried submit never
doubles an order, and an order whose answer was lost can be found again by that id.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field, replace
from enum import StrEnum

import pandas as pd

from quantum_trading.domain import Side

__all__ = [
    "TERMINAL_STATUSES",
    "Balance",
    "ExchangeFill",
    "ExchangeOrder",
    "ExchangePosition",
    "LiveOrderStatus",
    "LiveOrderType",
    "OrderBook",
    "OrderRequest",
    "Ticker",
    "TimeInForce",
    "new_client_order_id",
]


class LiveOrderType(StrEnum):
    """Order types sent to an exchange. Stops are market orders triggered at ``stop_price``."""

    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"
    TAKE_PROFIT_MARKET = "take_profit_market"


class TimeInForce(StrEnum):
    """How long a limit order may rest: good till cancelled, immediate or cancel, post only."""

    GTC = "GTC"
    IOC = "IOC"
    POST_ONLY = "GTX"


class LiveOrderStatus(StrEnum):
    """The order lifecycle: new → open → partially filled → filled / cancelled / rejected.

    ``NEW`` is ours (created, not yet acknowledged); ``EXPIRED`` is an IOC remainder or a
    post-only order that would have taken liquidity.
    """

    NEW = "new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


TERMINAL_STATUSES = frozenset(
    {LiveOrderStatus.FILLED, LiveOrderStatus.CANCELLED, LiveOrderStatus.REJECTED,
     LiveOrderStatus.EXPIRED}
)
"""Statuses after which an order never changes again."""


_ID_BITS = random.Random()  # seeded from os.urandom; nothing else draws from or seeds it
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=_ID_BITS.seed)


def new_client_order_id(prefix: str = "qt") -> str:
    """A fresh client order id: ``prefix`` + 24 hex characters (96 random bits; Binance
    allows ≤ 36 characters).

    The bits come from a generator of this module alone, seeded from the operating system's
    entropy when the module loads and again in a forked child — not from ``uuid4``, whose
    ``os.urandom`` call costs 20–30 µs in the trader's decision path on a virtual machine.
    No one else seeds it (a ``random.seed(0)`` elsewhere, e.g. for a reproducible backtest,
    does not touch it), so ids do not repeat across runs; the ids are not secrets.

    >>> len(new_client_order_id()), new_client_order_id() != new_client_order_id()
    (27, True)
    """
    return f"{prefix}-{_ID_BITS.getrandbits(96):024x}"


@dataclass(frozen=True)
class OrderRequest:
    """What we ask an exchange to do.

    Parameters
    ----------
    symbol:
        ccxt unified symbol, e.g. ``"BTC/USDT:USDT"``.
    side:
        :class:`~quantum_trading.domain.Side` (BUY / SELL).
    order_type:
        :class:`LiveOrderType`.
    amount:
        Base units, > 0.
    price:
        Limit price (USDT) for LIMIT orders, else None.
    stop_price:
        Trigger price (USDT) for STOP_MARKET / TAKE_PROFIT_MARKET orders, else None.
    reduce_only:
        May only reduce the position (stops and emergency exits always are).
    time_in_force:
        For LIMIT orders.
    client_order_id:
        Our idempotency key; generated when not given.
    """

    symbol: str
    side: Side
    order_type: LiveOrderType
    amount: float
    price: float | None = None
    stop_price: float | None = None
    reduce_only: bool = False
    time_in_force: TimeInForce = TimeInForce.GTC
    client_order_id: str = field(default_factory=new_client_order_id)

    def __post_init__(self) -> None:
        if not (self.amount > 0):
            raise ValueError(f"OrderRequest {self.client_order_id}: amount must be > 0, got {self.amount!r}")
        if self.order_type is LiveOrderType.LIMIT and not (self.price is not None and self.price > 0):
            raise ValueError(f"OrderRequest {self.client_order_id}: a limit order needs price > 0")
        if self.order_type in (LiveOrderType.STOP_MARKET, LiveOrderType.TAKE_PROFIT_MARKET) and not (
            self.stop_price is not None and self.stop_price > 0
        ):
            raise ValueError(f"OrderRequest {self.client_order_id}: a stop order needs stop_price > 0")
        if len(self.client_order_id) > 36:
            raise ValueError(f"client_order_id {self.client_order_id!r} is longer than 36 characters")


@dataclass(frozen=True)
class ExchangeOrder:
    """An order as the exchange reports it.

    ``filled`` and ``remaining`` are base units (``filled + remaining = amount``);
    ``average_price`` is the volume-weighted fill price (None before any fill); ``fee_usd`` the
    fees paid so far.
    """

    id: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: LiveOrderType
    status: LiveOrderStatus
    amount: float
    filled: float
    price: float | None
    stop_price: float | None
    average_price: float | None
    reduce_only: bool
    created_at: pd.Timestamp
    updated_at: pd.Timestamp
    fee_usd: float = 0.0

    @property
    def remaining(self) -> float:
        """Units not yet filled."""
        return max(self.amount - self.filled, 0.0)

    @property
    def is_terminal(self) -> bool:
        """True once the order can no longer change."""
        return self.status in TERMINAL_STATUSES

    def with_(self, **changes: object) -> ExchangeOrder:
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True)
class ExchangeFill:
    """One execution of an order (a ccxt "trade" of our own)."""

    id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    amount: float
    price: float
    fee_usd: float
    is_maker: bool
    time: pd.Timestamp


@dataclass(frozen=True)
class ExchangePosition:
    """A position as the exchange reports it (one-way mode): ``size`` signed base units."""

    symbol: str
    size: float
    entry_price: float
    mark_price: float
    unrealized_pnl_usd: float
    leverage: float
    liquidation_price: float | None = None


@dataclass(frozen=True)
class Balance:
    """Account money in USDT: wallet (cash incl. realised PnL), free (available for new
    margin) and equity (wallet + unrealised PnL)."""

    wallet_usd: float
    free_usd: float
    equity_usd: float


@dataclass(frozen=True)
class Ticker:
    """Best bid/ask and last price at ``time``."""

    symbol: str
    bid: float
    ask: float
    last: float
    time: pd.Timestamp

    @property
    def mid(self) -> float:
        """(bid + ask) / 2."""
        return 0.5 * (self.bid + self.ask)


@dataclass(frozen=True)
class OrderBook:
    """Price levels, best first: ``bids`` descending, ``asks`` ascending, as (price, size)."""

    symbol: str
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    time: pd.Timestamp
