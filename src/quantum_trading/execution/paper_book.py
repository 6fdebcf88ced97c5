"""The paper exchange's order book: its orders, their lifecycle, the margin they reserve and
the trigger rules.

Orders are kept as mutable :class:`PaperOrder` records (the exchange's own view) and handed out
as frozen :class:`~quantum_trading.execution.models.ExchangeOrder` snapshots. :class:`PaperBook`
indexes them by exchange id and by client order id, keeps the open ones in arrival order and
keeps the initial margin they reserve in a :class:`ReserveLedger` (per symbol, updated in O(1)
whenever an order is placed, fills or ends — no scan of the open orders).

Trigger rules against a bar (``open``, ``high``, ``low``), the simulator's:

* a stop-market / take-profit-market order triggers when the bar reaches its ``stop_price``;
  a bar that opens through it triggers it **at the open** (the gap rule): it then fills at the
  open, otherwise at ``stop_price`` — with taker costs either way;
* a sell stop and a buy take-profit trigger on a move **down** (``low ≤ stop``), a buy stop and
  a sell take-profit on a move **up** (``high ≥ stop``);
* a resting limit order fills at its price when the bar trades **through** it (conservative:
  ``low < price`` for a buy, ``high > price`` for a sell — touching is not enough).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pandas as pd

from quantum_trading.domain import Side
from quantum_trading.execution.errors import OrderNotFound
from quantum_trading.execution.models import (
    TERMINAL_STATUSES,
    ExchangeFill,
    ExchangeOrder,
    LiveOrderStatus,
    LiveOrderType,
    TimeInForce,
)

__all__ = [
    "CONDITIONAL_TYPES",
    "PaperBook",
    "PaperOrder",
    "ReserveLedger",
    "bar_value",
    "gapped",
    "is_multiple",
    "limit_traded_through",
    "triggered_in_bar",
    "triggers_down",
]

CONDITIONAL_TYPES = frozenset({LiveOrderType.STOP_MARKET, LiveOrderType.TAKE_PROFIT_MARKET})
"""Order types that rest until a trigger price is reached (Binance's algo / conditional orders)."""


class ReserveLedger:
    """Initial margin (USDT) reserved by open orders, per symbol, kept incrementally.

    An open order reserves ``reserve_usd · remaining / amount`` (:attr:`PaperOrder.reserved_usd`).
    :class:`PaperBook` registers an order when it is placed and the order reports each change of
    its reserve (a fill, its end: filled, cancelled, rejected, expired) through :meth:`move`,
    so keeping the tally costs O(1) per event and reading it O(symbols) — never a scan of the
    open orders. When the last reserving order of a symbol ends, the symbol's tally is dropped
    (exactly 0 again: no rounding dust is carried into later orders).

    >>> ledger = ReserveLedger()
    >>> ledger.move("BTC/USDT:USDT", 0.0, 60.0)  # placed: reserves 60 USDT
    >>> ledger.move("BTC/USDT:USDT", 60.0, 20.0)  # two thirds filled
    >>> ledger.usd("BTC/USDT:USDT"), ledger.usd()
    (20.0, 20.0)
    >>> ledger.move("BTC/USDT:USDT", 20.0, 0.0)  # cancelled
    >>> ledger.by_symbol()
    {}
    """

    def __init__(self) -> None:
        self._usd: dict[str, float] = {}
        self._count: dict[str, int] = {}  # open orders with a reserve > 0, per symbol

    def move(self, symbol: str, before_usd: float, after_usd: float) -> None:
        """One order's reserve on ``symbol`` went from ``before_usd`` to ``after_usd`` (≥ 0;
        0 → x: the order starts reserving, x → 0: it stops)."""
        if before_usd == after_usd:
            return
        if before_usd <= 0.0:
            self._count[symbol] = self._count.get(symbol, 0) + 1
        elif after_usd <= 0.0:
            left = self._count[symbol] - 1
            if left == 0:
                del self._count[symbol], self._usd[symbol]
                return
            self._count[symbol] = left
        self._usd[symbol] = self._usd.get(symbol, 0.0) + (after_usd - before_usd)

    def usd(self, symbol: str | None = None) -> float:
        """Margin reserved by open orders on ``symbol`` (every symbol when None), USDT."""
        if symbol is not None:
            return max(self._usd.get(symbol, 0.0), 0.0)
        return max(sum(self._usd.values()), 0.0)

    def by_symbol(self) -> dict[str, float]:
        """Reserved margin per symbol (USDT), only symbols with a reserving open order."""
        return {sym: max(usd, 0.0) for sym, usd in self._usd.items()}


@dataclass(eq=False)
class PaperOrder:
    """One order as the paper exchange keeps it (mutable; see :meth:`snapshot`).

    ``at_open``: the order takes liquidity at the next bar's open (a market order, a
    marketable limit order, the unfilled rest of a triggered stop). ``bar_filled``: units
    filled in the current bar (for the participation cap). ``reserve_usd``: initial margin
    the order reserves while open, for its full amount (scaled by the unfilled share:
    :attr:`reserved_usd`). ``ledger``: the book's :class:`ReserveLedger`, told of every change
    of :attr:`reserved_usd` by :meth:`book_fill` and :meth:`finish` (change ``amount``,
    ``filled``, ``status`` or ``reserve_usd`` of a booked order only through those).
    """

    id: int
    client_order_id: str
    symbol: str
    side: Side
    order_type: LiveOrderType
    amount: float
    price: float | None
    stop_price: float | None
    reduce_only: bool
    time_in_force: TimeInForce
    created_at: pd.Timestamp
    updated_at: pd.Timestamp
    status: LiveOrderStatus = LiveOrderStatus.OPEN
    filled: float = 0.0
    cost_usd: float = 0.0
    fee_usd: float = 0.0
    triggered: bool = False
    triggered_at: pd.Timestamp | None = None
    at_open: bool = False
    bar_filled: float = 0.0
    reserve_usd: float = 0.0
    n_fills: int = 0
    last_price: float = math.nan
    ledger: ReserveLedger | None = field(default=None, repr=False)

    @property
    def remaining(self) -> float:
        """Units not yet filled."""
        return max(self.amount - self.filled, 0.0)

    @property
    def reserved_usd(self) -> float:
        """Initial margin (USDT) the order holds now: its reserve for the unfilled share while
        it is open, else 0."""
        if self.reserve_usd <= 0.0 or self.amount <= 0.0 or not self.is_open:
            return 0.0
        return self.reserve_usd * self.remaining / self.amount

    @property
    def is_open(self) -> bool:
        """Not terminal (open or partially filled)."""
        return self.status not in TERMINAL_STATUSES

    @property
    def is_conditional(self) -> bool:
        """A stop-market or take-profit-market order."""
        return self.order_type in CONDITIONAL_TYPES

    @property
    def average_price(self) -> float | None:
        """Volume-weighted fill price (None before any fill; the fill price itself after one)."""
        if self.n_fills == 1:
            return self.last_price
        return self.cost_usd / self.filled if self.filled > 0.0 else None

    def book_fill(self, units: float, price: float, fee_usd: float, time: pd.Timestamp) -> None:
        """Account for a fill of ``units`` (> 0) at ``price``; sets the status and the reserve."""
        before = self.reserved_usd
        self.filled += units
        self.bar_filled += units
        self.n_fills += 1
        self.last_price = price
        self.cost_usd += units * price
        self.fee_usd += fee_usd
        self.updated_at = time
        if self.remaining <= 1e-12 * max(1.0, self.amount):
            self.filled = self.amount
            self.status = LiveOrderStatus.FILLED
            self.at_open = False
        else:
            self.status = LiveOrderStatus.PARTIALLY_FILLED
        self._report(before)

    def finish(self, status: LiveOrderStatus, time: pd.Timestamp) -> None:
        """End the order (cancelled, rejected or expired); a filled order is left as it is."""
        if self.is_open:
            before = self.reserved_usd
            self.status = status
            self.updated_at = time
            self.at_open = False
            self._report(before)

    def _report(self, before_usd: float) -> None:
        if self.ledger is not None:
            self.ledger.move(self.symbol, before_usd, self.reserved_usd)

    def snapshot(self) -> ExchangeOrder:
        """The order as an immutable :class:`ExchangeOrder`."""
        return ExchangeOrder(
            id=str(self.id),
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            status=self.status,
            amount=self.amount,
            filled=self.filled,
            price=self.price,
            stop_price=self.stop_price,
            average_price=self.average_price,
            reduce_only=self.reduce_only,
            created_at=self.created_at,
            updated_at=self.updated_at,
            fee_usd=self.fee_usd,
        )


def triggers_down(order: PaperOrder) -> bool:
    """Whether a conditional order triggers on a move down (sell stop, buy take-profit)."""
    is_stop = order.order_type is LiveOrderType.STOP_MARKET
    return (order.side is Side.SELL) == is_stop


def gapped(order: PaperOrder, open_: float) -> bool:
    """Whether the bar opened through the order's trigger (it then fills at the open)."""
    stop = float(order.stop_price)  # type: ignore[arg-type]
    return open_ <= stop if triggers_down(order) else open_ >= stop


def triggered_in_bar(order: PaperOrder, high: float, low: float) -> bool:
    """Whether the bar's range reaches the order's trigger price."""
    stop = float(order.stop_price)  # type: ignore[arg-type]
    return low <= stop if triggers_down(order) else high >= stop


def limit_traded_through(order: PaperOrder, high: float, low: float) -> bool:
    """Whether the bar traded strictly through a resting limit order's price."""
    price = float(order.price)  # type: ignore[arg-type]
    return low < price if order.side is Side.BUY else high > price


@dataclass
class PaperBook:
    """Every order and fill of the paper exchange, indexed for the protocol's queries, and the
    margin the open orders reserve (:attr:`reserves`)."""

    first_order_id: int = 1_000_001
    orders: dict[int, PaperOrder] = field(default_factory=dict)
    by_client_id: dict[str, PaperOrder] = field(default_factory=dict)
    fills: dict[str, list[ExchangeFill]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._order_ids = itertools.count(self.first_order_id)
        self._fill_ids = itertools.count(1)
        self._auto_ids = itertools.count(1)
        self._open: dict[int, PaperOrder] = {}  # open orders, arrival order (pruned lazily)
        self.reserves = ReserveLedger()

    def next_order_id(self) -> int:
        """A fresh exchange order id."""
        return next(self._order_ids)

    def next_fill_id(self) -> int:
        """A fresh trade id."""
        return next(self._fill_ids)

    def next_autoclose_id(self) -> str:
        """Client id of an exchange-made order (liquidation / bankruptcy close), Binance style."""
        return f"autoclose-{next(self._auto_ids)}"

    def add(self, order: PaperOrder) -> None:
        """Register a new order (a terminal order with the same client id is superseded) and
        its margin reserve."""
        self.orders[order.id] = order
        self.by_client_id[order.client_order_id] = order
        order.ledger = self.reserves
        if order.is_open:
            self._open[order.id] = order
            self.reserves.move(order.symbol, 0.0, order.reserved_usd)

    def reserved_usd(self, symbol: str | None = None) -> float:
        """Initial margin reserved by the open orders of ``symbol`` (all when None), USDT: the
        incremental tally, O(symbols)."""
        return self.reserves.usd(symbol)

    def get(self, client_order_id: str, symbol: str | None = None) -> PaperOrder:
        """The order with this client id (the newest one), else :class:`OrderNotFound`."""
        order = self.by_client_id.get(client_order_id)
        if order is None or (symbol is not None and order.symbol != symbol):
            raise OrderNotFound(
                f"paper: no order with client id {client_order_id!r}"
                + (f" on {symbol}" if symbol else "")
            )
        return order

    def open_orders(self, symbol: str | None = None) -> Iterator[PaperOrder]:
        """Open orders in arrival order (all symbols when ``symbol`` is None)."""
        for oid, order in list(self._open.items()):
            if not order.is_open:
                self._open.pop(oid, None)
            elif symbol is None or order.symbol == symbol:
                yield order

    def add_fill(self, fill: ExchangeFill) -> None:
        """Record one execution."""
        self.fills.setdefault(fill.symbol, []).append(fill)

    def fills_since(self, symbol: str, since: pd.Timestamp | None) -> list[ExchangeFill]:
        """Executions of ``symbol`` at or after ``since`` (oldest first)."""
        rows = self.fills.get(symbol, [])
        if since is None:
            return list(rows)
        return [f for f in rows if f.time >= since]


def is_multiple(value: float, step: float) -> bool:
    """Whether ``value`` is a whole multiple of ``step`` (``step`` 0: anything is)."""
    if step <= 0.0:
        return True
    n = round(value / step)
    return math.isclose(n * step, value, rel_tol=1e-9, abs_tol=1e-12)


def bar_value(bar: Mapping[str, object] | pd.Series, key: str) -> float:
    """``bar[key]`` as a float (NaN when missing or None)."""
    value = bar.get(key, math.nan)  # type: ignore[union-attr]
    return math.nan if value is None else float(value)  # type: ignore[arg-type]
