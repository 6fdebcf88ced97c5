"""A small deterministic exchange for tests of the order manager, monitor and algorithms.

It implements :class:`~quantum_trading.execution.protocol.Exchange` honestly and simply:

* a controllable clock (``now``, :meth:`advance`) and quotes (:meth:`set_quote`);
* market orders fill at once at the ask (buy) / bid (sell) — ``market_fill_fraction`` < 1
  fills only that share and expires the rest (like an IOC remainder);
* limit orders fill at once at the touch when marketable, else rest; a later quote that
  crosses them fills them in full at their price (maker); :meth:`fill` fills part of one;
* create is idempotent by client order id (a second create returns the existing order);
* reduce-only orders are clipped to the position and rejected when they would increase it;
* :meth:`fail_next` makes the next call of a method raise ``OrderStateUnknown`` either before
  the request takes effect (lost request) or after (lost response);
* :meth:`reject_next` makes the next new order raise ``InvalidOrder``.

Counters ``create_calls`` (create requests per client id) and ``not_found`` (OrderNotFound
answers per client id) let tests check that nothing was sent twice without reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pandas as pd

from quantum_trading.domain import Instrument, Side
from quantum_trading.execution.errors import InvalidOrder, OrderNotFound, OrderStateUnknown
from quantum_trading.execution.models import (
    Balance,
    ExchangeFill,
    ExchangeOrder,
    ExchangePosition,
    LiveOrderStatus,
    LiveOrderType,
    OrderBook,
    OrderRequest,
    Ticker,
)

__all__ = ["SYMBOL", "FakeExchange"]

SYMBOL = "BTC/USDT:USDT"
_TERMINAL = (LiveOrderStatus.FILLED, LiveOrderStatus.CANCELLED, LiveOrderStatus.REJECTED,
             LiveOrderStatus.EXPIRED)


class FakeExchange:
    """In-memory exchange; see the module docstring. Fees: ``fee_bps`` on every fill."""

    name = "fake"

    def __init__(self, *, start: str = "2024-01-01 00:00", bid: float = 99.95,
                 ask: float = 100.05, cash_usd: float = 100_000.0, fee_bps: float = 4.0) -> None:
        self.now = pd.Timestamp(start, tz="UTC")
        self.quotes: dict[str, tuple[float, float]] = {SYMBOL: (bid, ask)}
        self.orders: dict[str, ExchangeOrder] = {}
        self.trades: list[ExchangeFill] = []
        self.pos: dict[str, tuple[float, float]] = {}  # symbol -> (signed size, entry price)
        self.cash_usd = cash_usd
        self.fee_bps = fee_bps
        self.market_fill_fraction = 1.0
        self.create_calls: Counter[str] = Counter()
        self.not_found: Counter[str] = Counter()
        self._faults: dict[str, list[str]] = {}
        self._rejects: list[str] = []

    # -- control --------------------------------------------------------------------------
    def clock(self) -> pd.Timestamp:
        """The exchange's time (give it to the manager as its clock)."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now = self.now + pd.Timedelta(seconds=seconds)

    def set_quote(self, bid: float, ask: float, symbol: str = SYMBOL) -> None:
        """New best bid/ask; resting limit orders it crosses fill in full at their price."""
        self.quotes[symbol] = (bid, ask)
        for o in list(self.orders.values()):
            if o.symbol != symbol or o.status in _TERMINAL or o.order_type is not LiveOrderType.LIMIT:
                continue
            if (o.side is Side.BUY and ask <= o.price) or (o.side is Side.SELL and bid >= o.price):
                self._fill(o.client_order_id, o.remaining, o.price, maker=True)

    def fill(self, client_order_id: str, amount: float, price: float | None = None) -> None:
        """Fill ``amount`` of a resting order (at its limit price unless given)."""
        o = self.orders[client_order_id]
        assert o.status not in _TERMINAL and amount <= o.remaining + 1e-12
        self._fill(client_order_id, amount, price if price is not None else o.price, maker=True)

    def fail_next(self, method: str, *, after: bool = True, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise OrderStateUnknown, after the effect
        (``after``: response lost) or before it (request lost)."""
        self._faults.setdefault(method, []).extend(["after" if after else "before"] * times)

    def clear_faults(self) -> None:
        """No more injected failures or rejects."""
        self._faults.clear()
        self._rejects.clear()

    def reject_next(self, message: str = "rejected by the fake exchange") -> None:
        """The next new order raises InvalidOrder."""
        self._rejects.append(message)

    def _fault(self, method: str, when: str) -> None:
        queue = self._faults.get(method)  # a read has no effect to lose: any fault applies
        if queue and (queue[0] == when or when == "read"):
            queue.pop(0)
            raise OrderStateUnknown(f"{method}: timed out" + (f" ({when} the effect)"
                                                              if when != "read" else ""))

    # -- internals ------------------------------------------------------------------------
    def _fill(self, cid: str, amount: float, price: float, *, maker: bool) -> None:
        o = self.orders[cid]
        fee = amount * price * self.fee_bps / 1e4
        total = o.filled + amount
        avg = price if o.average_price is None else (o.average_price * o.filled + price * amount) / total
        status = LiveOrderStatus.FILLED if total >= o.amount - 1e-12 else LiveOrderStatus.PARTIALLY_FILLED
        self.orders[cid] = o.with_(filled=total, average_price=avg, fee_usd=o.fee_usd + fee,
                                   status=status, updated_at=self.now)
        self.trades.append(ExchangeFill(id=f"t{len(self.trades) + 1}", order_id=o.id,
                                        client_order_id=cid, symbol=o.symbol, side=o.side,
                                        amount=amount, price=price, fee_usd=fee, is_maker=maker,
                                        time=self.now))
        size, entry = self.pos.get(o.symbol, (0.0, 0.0))
        q = int(o.side) * amount
        if size == 0.0 or (size > 0) == (q > 0):
            entry = (abs(size) * entry + amount * price) / (abs(size) + amount)
        else:
            closed = min(abs(q), abs(size))
            self.cash_usd += closed * (price - entry) * (1.0 if size > 0 else -1.0)
            if abs(q) > abs(size):
                entry = price
        self.cash_usd -= fee
        new = size + q
        if abs(new) < 1e-12:
            self.pos.pop(o.symbol, None)
        else:
            self.pos[o.symbol] = (new, entry)

    def _mid(self, symbol: str) -> float:
        bid, ask = self.quotes[symbol]
        return 0.5 * (bid + ask)

    # -- the protocol ---------------------------------------------------------------------
    async def markets(self) -> dict[str, Instrument]:
        return {s: Instrument.generic(s) for s in self.quotes}

    async def balance(self) -> Balance:
        upnl = sum(size * (self._mid(s) - entry) for s, (size, entry) in self.pos.items())
        return Balance(wallet_usd=self.cash_usd, free_usd=self.cash_usd + upnl,
                       equity_usd=self.cash_usd + upnl)

    async def positions(self) -> dict[str, ExchangePosition]:
        return {s: ExchangePosition(symbol=s, size=size, entry_price=entry,
                                    mark_price=self._mid(s),
                                    unrealized_pnl_usd=size * (self._mid(s) - entry), leverage=1.0)
                for s, (size, entry) in self.pos.items()}

    async def open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        self._fault("open_orders", "read")
        return [o for o in self.orders.values()
                if o.status not in _TERMINAL and (symbol is None or o.symbol == symbol)]

    async def create_order(self, request: OrderRequest) -> ExchangeOrder:
        cid = request.client_order_id
        self.create_calls[cid] += 1
        self._fault("create_order", "before")
        if cid not in self.orders:
            if self._rejects:
                raise InvalidOrder(self._rejects.pop(0))
            amount = request.amount
            if request.reduce_only:
                size = self.pos.get(request.symbol, (0.0, 0.0))[0]
                reducible = max(-int(request.side) * size, 0.0)
                if reducible <= 0.0:
                    raise InvalidOrder(f"{cid}: reduce-only order would increase the position")
                amount = min(amount, reducible)
            self.orders[cid] = ExchangeOrder(
                id=f"ex{len(self.orders) + 1}", client_order_id=cid, symbol=request.symbol,
                side=request.side, order_type=request.order_type, status=LiveOrderStatus.OPEN,
                amount=amount, filled=0.0, price=request.price, stop_price=request.stop_price,
                average_price=None, reduce_only=request.reduce_only, created_at=self.now,
                updated_at=self.now)
            bid, ask = self.quotes[request.symbol]
            touch = ask if request.side is Side.BUY else bid
            if request.order_type is LiveOrderType.MARKET:
                part = amount * self.market_fill_fraction
                if part > 0:
                    self._fill(cid, part, touch, maker=False)
                if self.orders[cid].status is not LiveOrderStatus.FILLED:
                    self.orders[cid] = self.orders[cid].with_(status=LiveOrderStatus.EXPIRED)
            elif int(request.side) * (request.price - touch) >= 0:  # marketable limit
                self._fill(cid, amount, touch, maker=False)
        self._fault("create_order", "after")
        return self.orders[cid]

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> ExchangeOrder:
        self._fault("cancel_order", "before")
        if client_order_id not in self.orders:
            self.not_found[client_order_id] += 1
            raise OrderNotFound(client_order_id)
        o = self.orders[client_order_id]
        if o.status not in _TERMINAL:
            self.orders[client_order_id] = replace(o, status=LiveOrderStatus.CANCELLED,
                                                   updated_at=self.now)
        self._fault("cancel_order", "after")
        return self.orders[client_order_id]

    async def fetch_order(self, symbol: str, *, client_order_id: str) -> ExchangeOrder:
        self._fault("fetch_order", "read")
        if client_order_id not in self.orders:
            self.not_found[client_order_id] += 1
            raise OrderNotFound(client_order_id)
        return self.orders[client_order_id]

    async def fills(self, symbol: str, *, since: pd.Timestamp | None = None) -> list[ExchangeFill]:
        return [f for f in self.trades if f.symbol == symbol and (since is None or f.time >= since)]

    async def ohlcv(self, symbol: str, timeframe: str, *, since: pd.Timestamp | None = None,
                    limit: int | None = None) -> pd.DataFrame:
        return pd.DataFrame(columns=["open", "high", "low", "close", "volume"],
                            index=pd.DatetimeIndex([], tz="UTC", name="date"), dtype=float)

    async def ticker(self, symbol: str) -> Ticker:
        self._fault("ticker", "read")
        bid, ask = self.quotes[symbol]
        return Ticker(symbol=symbol, bid=bid, ask=ask, last=0.5 * (bid + ask), time=self.now)

    async def order_book(self, symbol: str, *, depth: int = 20) -> OrderBook:
        bid, ask = self.quotes[symbol]
        return OrderBook(symbol=symbol, bids=((bid, 1e9),), asks=((ask, 1e9),), time=self.now)

    async def funding_rate(self, symbol: str) -> tuple[float, pd.Timestamp]:
        return 0.0, self.now.ceil("8h")

    async def set_leverage(self, symbol: str, leverage: float) -> None:
        return None

    async def close(self) -> None:
        return None
