"""The paper exchange's order book: its orders, their lifecycle and the trigger rules.

Orders are kept as mutable :class:`PaperOrder` records (the exchange's own view) and handed out
as frozen :class:`~quantum_trading.execution.models.ExchangeOrder` snapshots. :class:`PaperBook`
indexes them by exchange id and by client order id and keeps the open ones in arrival order.

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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quantum_trading.domain import Instrument, OrderType, Side
from quantum_trading.execution.errors import OrderNotFound
from quantum_trading.execution.models import (
    TERMINAL_STATUSES,
    ExchangeFill,
    ExchangeOrder,
    LiveOrderStatus,
    LiveOrderType,
    TimeInForce,
)
from quantum_trading.execution.paper_accounts import PaperAccount
from quantum_trading.sim.lots_nb import trunc_lot_nb
from quantum_trading.sim.records import fill_dt

__all__ = [
    "CONDITIONAL_TYPES",
    "BarContext",
    "BarMatcher",
    "PaperBook",
    "PaperOrder",
    "bar_value",
    "gapped",
    "is_multiple",
    "limit_traded_through",
    "triggered_in_bar",
    "triggers_down",
]

_OTYPE = {
    LiveOrderType.MARKET: 0,
    LiveOrderType.LIMIT: 0,
    LiveOrderType.STOP_MARKET: 1,
    LiveOrderType.TAKE_PROFIT_MARKET: 2,
}  # sim OrderType codes of the fill records
_OT_LIQUIDATION, _OT_BANKRUPTCY = 5, 6
_MARGIN_TOL = 1e-9
FILL_COLUMNS = [n for n in fill_dt.names if n not in ("bar", "asset", "order_type")]
"""Fill-record fields kept per paper fill (the simulator's ``fill_dt`` minus bar, asset and the
order-type code, which the fill frame names)."""

CONDITIONAL_TYPES = frozenset({LiveOrderType.STOP_MARKET, LiveOrderType.TAKE_PROFIT_MARKET})
"""Order types that rest until a trigger price is reached (Binance's algo / conditional orders)."""


@dataclass(eq=False)
class PaperOrder:
    """One order as the paper exchange keeps it (mutable; see :meth:`snapshot`).

    ``at_open``: the order takes liquidity at the next bar's open (a market order, a
    marketable limit order, the unfilled rest of a triggered stop). ``bar_filled``: units
    filled in the current bar (for the participation cap). ``reserve_usd``: initial margin
    the order reserves while open, for its full amount (scaled by the unfilled share).
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

    @property
    def remaining(self) -> float:
        """Units not yet filled."""
        return max(self.amount - self.filled, 0.0)

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
        """Account for a fill of ``units`` (> 0) at ``price``; sets the status."""
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

    def finish(self, status: LiveOrderStatus, time: pd.Timestamp) -> None:
        """End the order (cancelled, rejected or expired); a filled order is left as it is."""
        if self.is_open:
            self.status = status
            self.updated_at = time
            self.at_open = False

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


def _level(order: PaperOrder) -> float:
    return float(order.stop_price)  # type: ignore[arg-type]


def _limit_price(order: PaperOrder) -> float:
    return float(order.price)  # type: ignore[arg-type]


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
    """Every order and fill of the paper exchange, indexed for the protocol's queries."""

    first_order_id: int = 1_000_001
    orders: dict[int, PaperOrder] = field(default_factory=dict)
    by_client_id: dict[str, PaperOrder] = field(default_factory=dict)
    fills: dict[str, list[ExchangeFill]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._order_ids = itertools.count(self.first_order_id)
        self._fill_ids = itertools.count(1)
        self._auto_ids = itertools.count(1)
        self._open: dict[int, PaperOrder] = {}  # open orders, arrival order (pruned lazily)

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
        """Register a new order (a terminal order with the same client id is superseded)."""
        self.orders[order.id] = order
        self.by_client_id[order.client_order_id] = order
        if order.is_open:
            self._open[order.id] = order

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


@dataclass(frozen=True)
class BarContext:
    """One bar of one symbol being processed (``i``: the symbol's account index)."""

    i: int
    symbol: str
    bar_no: int
    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float


class BarMatcher:
    """The matching engine of the paper exchange: runs one bar of one symbol against the book,
    on the account's kernels (funding, fills at the open, the adverse path with stops and
    liquidation, the bar's range). See :mod:`quantum_trading.execution.paper` for the rules.

    Keeps the fill records with the simulator's cost breakdown (``records``), the funding
    payments and the last settled rate of each symbol.
    """

    def __init__(
        self,
        book: PaperBook,
        acc: PaperAccount,
        instruments: Mapping[str, Instrument],
        *,
        timeframe_ns: int,
        max_participation: float | None,
        fill_fraction: Callable[[], float] | None,
        funding: Mapping[str, tuple[np.ndarray, np.ndarray]],
        mark: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        self.book = book
        self.acc = acc
        self.costs = acc.costs
        self.instruments = instruments
        self.max_participation = max_participation
        self.fill_fraction = fill_fraction
        self._tf_ns = timeframe_ns
        self._funding = dict(funding)
        self._mark = dict(mark)
        self.last_rate: dict[str, float] = {}
        self.records: list[dict[str, object]] = []
        self.bar_fills: list[ExchangeFill] = []
        self.funding_payments: list[tuple[pd.Timestamp, str, float]] = []

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols in account order."""
        return self.acc.symbols

    def run(self, ctx: BarContext, bar: Mapping[str, object] | pd.Series) -> None:
        """Funding, then (unless bankrupt) the open, the adverse path and the bar's range."""
        for order in self.book.open_orders(ctx.symbol):
            order.bar_filled = 0.0
        if self.acc.bankrupt:
            return
        self._settle_funding(ctx, bar)
        if self.acc.equity(ctx.i, ctx.open) <= 0.0:
            fills, trades = self.acc.bankrupt_close(ctx.bar_no, False)
            self._book_records(ctx, fills, trades, otype=_OT_BANKRUPTCY)
        else:
            self._at_open(ctx)
            self._adverse_path(ctx)
            self._in_range(ctx)
        if self.acc.bankrupt:
            self._expire_all(ctx.time)

    def close(self, ctx: BarContext) -> None:
        """Mark at the close; bankruptcy (everything closed at the close) if equity ≤ 0."""
        self.acc.mark(ctx.i, ctx.close)
        if not self.acc.bankrupt and self.acc.equity() <= 0.0:
            fills, trades = self.acc.bankrupt_close(ctx.bar_no, True)
            self._book_records(ctx, fills, trades, otype=_OT_BANKRUPTCY)
            self._expire_all(ctx.time)
        self.acc.close_equity()

    def _settle_funding(self, ctx: BarContext, bar: Mapping[str, object] | pd.Series) -> None:
        # sources as the simulator: the funding series, else the bar's column, else the
        # default schedule; mark: the mark series, else the bar's mark_price, else the open
        t_ns = int(ctx.time.value)
        end = t_ns + self._tf_ns
        rate = math.nan
        if ctx.symbol in self._funding:
            times, rates = self._funding[ctx.symbol]
            lo, hi = np.searchsorted(times, [t_ns, end], side="left")
            for k in range(lo, hi):  # several in one bar are summed, in order (as the sim)
                rate = float(rates[k]) if math.isnan(rate) else rate + float(rates[k])
        elif "funding_rate" in bar:
            rate = bar_value(bar, "funding_rate")
        elif self.costs.default_funding_rate != 0.0:
            period = self.costs.funding_interval_h * 3_600_000_000_000
            first = -((-t_ns) // period) * period
            if first < end:
                rate = self.costs.default_funding_rate
        if math.isnan(rate):
            return
        self.last_rate[ctx.symbol] = float(rate)
        mark = math.nan
        if ctx.symbol in self._mark:
            times, marks = self._mark[ctx.symbol]
            lo, hi = np.searchsorted(times, [t_ns, end], side="left")
            if hi > lo:
                mark = float(marks[hi - 1])
        elif "mark_price" in bar:
            mark = bar_value(bar, "mark_price")
        if not (mark > 0.0):
            mark = ctx.open
        if rate == 0.0 or self.acc.size(ctx.i) == 0.0:
            return
        paid = self.acc.settle_funding(ctx.i, mark, rate)
        self.funding_payments.append((ctx.time, ctx.symbol, paid))

    def _at_open(self, ctx: BarContext) -> None:
        for order in list(self.book.open_orders(ctx.symbol)):
            if not order.at_open or not order.is_open:
                continue
            if order.order_type is LiveOrderType.LIMIT:
                units = self._fill_units(ctx, order)
                if units > 0.0:
                    frac = self.acc.taker_cost_frac(ctx.i, units, ctx.open)
                    fill_px = ctx.open * (1.0 + float(order.side) * frac)
                    price = float(order.price)  # type: ignore[arg-type]
                    if (fill_px > price) if order.side is Side.BUY else (fill_px < price):
                        order.at_open = False  # not marketable any more: it rests (maker)
                    else:
                        self._execute(ctx, order, units, ctx.open, taker=True)
            else:
                units = self._fill_units(ctx, order)
                if units > 0.0:
                    self._execute(ctx, order, units, ctx.open, taker=True)
            if order.is_open and order.time_in_force is TimeInForce.IOC:
                order.finish(LiveOrderStatus.EXPIRED, ctx.time)
        s = self.acc.size(ctx.i)
        for order in list(self.book.open_orders(ctx.symbol)):
            if not order.is_conditional or order.triggered or not gapped(order, ctx.open):
                continue
            if s != 0.0 and triggers_down(order) == (s > 0.0):
                continue  # on the position's adverse side: taken with the liquidation check
            self._trigger(ctx, order, ctx.open)

    def _adverse_path(self, ctx: BarContext) -> None:
        s0 = self.acc.size(ctx.i)
        if s0 == 0.0:
            return
        long = s0 > 0.0
        adverse = ctx.low if long else ctx.high
        span = ctx.open - adverse if long else adverse - ctx.open
        lam_lo = 0.0
        while True:
            s = self.acc.size(ctx.i)
            if s == 0.0 or (s > 0.0) != long:
                return
            best, best_order = math.inf, None
            for order in self.book.open_orders(ctx.symbol):
                if not order.is_conditional or order.triggered or triggers_down(order) != long:
                    continue
                stop = float(order.stop_price)  # type: ignore[arg-type]
                if gapped(order, ctx.open):
                    lam = 0.0
                elif (long and adverse <= stop) or (not long and adverse >= stop):
                    lam = (ctx.open - stop) / span if long else (stop - ctx.open) / span
                else:
                    continue
                if lam < best:
                    best, best_order = lam, order
            lam_star = self.acc.liquidation_lambda(ctx.i, ctx.open, adverse, lam_lo)
            if best_order is not None and best < lam_star:
                self._trigger(ctx, best_order, ctx.open if best == 0.0 else best_order.stop_price)
                lam_lo = best
                continue
            if lam_star <= 1.0:
                fills, trades = self.acc.liquidate(ctx.i, ctx.bar_no, ctx.open, adverse, lam_star)
                self._book_records(ctx, fills, trades, otype=_OT_LIQUIDATION)
                for rec in fills:
                    sym = self.symbols[int(rec["asset"])]
                    for order in self.book.open_orders(sym):
                        order.finish(LiveOrderStatus.CANCELLED, ctx.time)
            return

    def _in_range(self, ctx: BarContext) -> None:
        pending = [
            o
            for o in self.book.open_orders(ctx.symbol)
            if o.is_conditional and not o.triggered and triggered_in_bar(o, ctx.high, ctx.low)
        ]
        pending.sort(key=lambda o: (abs(_level(o) - ctx.open), o.id))
        for order in pending:
            if order.is_open and not order.triggered:
                self._trigger(ctx, order, float(order.stop_price))  # type: ignore[arg-type]
        for order in list(self.book.open_orders(ctx.symbol)):
            if (
                order.order_type is LiveOrderType.LIMIT
                and not order.at_open
                and limit_traded_through(order, ctx.high, ctx.low)
            ):
                units = self._fill_units(ctx, order)
                if units > 0.0:
                    self._execute(ctx, order, units, _limit_price(order), taker=False)

    def _expire_all(self, time: pd.Timestamp) -> None:
        for order in list(self.book.open_orders()):
            order.finish(LiveOrderStatus.EXPIRED, time)

    # -- fills --------------------------------------------------------------------------------
    def _trigger(self, ctx: BarContext, order: PaperOrder, ref: float) -> None:
        """A conditional order reached its trigger: fill as a market order at ``ref``; an
        unfilled rest takes liquidity at the next open."""
        order.triggered = True
        order.triggered_at = ctx.time
        order.at_open = True
        units = self._fill_units(ctx, order)
        if units > 0.0:
            self._execute(ctx, order, units, ref, taker=True)

    def _fill_units(self, ctx: BarContext, order: PaperOrder) -> float:
        """Units of ``order`` that may fill now (0: none this bar; the order may have expired)."""
        lot = self.instruments[order.symbol].lot_size
        pos = self.acc.size(ctx.i)
        closing = pos != 0.0 and (pos > 0.0) != (order.side is Side.BUY)
        limit = order.remaining
        if order.reduce_only:
            if not closing:
                order.finish(LiveOrderStatus.EXPIRED, ctx.time)
                return 0.0
            limit = min(limit, abs(pos))
        units = limit
        if self.max_participation is not None:
            units = min(units, self.max_participation * ctx.volume - order.bar_filled)
        if self.fill_fraction is not None:
            frac = float(self.fill_fraction())
            if 0.0 < frac < 1.0:
                units *= frac
        if units < limit:
            units = float(trunc_lot_nb(units, lot))
        if closing and math.isclose(units, abs(pos), rel_tol=1e-9):
            units = abs(pos)  # close exactly: no float dust left in the position
        return max(units, 0.0)

    def _execute(
        self, ctx: BarContext, order: PaperOrder, units: float, ref: float, *, taker: bool
    ) -> None:
        i = ctx.i
        q = float(order.side) * units
        pos = self.acc.size(i)
        closable = min(units, abs(pos)) if pos != 0.0 and (pos > 0.0) != (q > 0.0) else 0.0
        opening = units - closable
        if opening > 0.0:
            lev = self.acc.leverage(i)
            avail = self.acc.equity(i, ref) - self.acc.used_margin(i, ref) + closable * ref / lev
            if opening * ref / lev > avail * (1.0 + _MARGIN_TOL):
                order.finish(
                    LiveOrderStatus.REJECTED if order.filled == 0.0 else LiveOrderStatus.EXPIRED,
                    ctx.time,
                )
                return
        otype = _OTYPE[order.order_type]
        if taker:
            fills, trades = self.acc.taker_fill(i, ctx.bar_no, q, ref, otype)
        else:
            fills, trades = self.acc.maker_fill(i, ctx.bar_no, q, ref, otype)
        self._book_records(ctx, fills, trades, otype=otype, order=order, maker=not taker)

    def _book_records(
        self,
        ctx: BarContext,
        fills: np.ndarray,
        trades: np.ndarray,
        *,
        otype: int,
        order: PaperOrder | None = None,
        maker: bool = False,
    ) -> None:
        for rec in fills:
            sym = self.symbols[int(rec["asset"])]
            side = Side.BUY if int(rec["side"]) > 0 else Side.SELL
            size, price, fee = float(rec["size"]), float(rec["price"]), float(rec["fee_usd"])
            od = order
            if od is None:  # a liquidation or bankruptcy close: an exchange-made order
                od = PaperOrder(
                    id=self.book.next_order_id(),
                    client_order_id=self.book.next_autoclose_id(),
                    symbol=sym,
                    side=side,
                    order_type=LiveOrderType.MARKET,
                    amount=size,
                    price=None,
                    stop_price=None,
                    reduce_only=True,
                    time_in_force=TimeInForce.IOC,
                    created_at=ctx.time,
                    updated_at=ctx.time,
                )
                self.book.add(od)
            od.book_fill(size, price, fee, ctx.time)
            fill = ExchangeFill(
                id=str(self.book.next_fill_id()),
                order_id=str(od.id),
                client_order_id=od.client_order_id,
                symbol=sym,
                side=side,
                amount=size,
                price=price,
                fee_usd=fee,
                is_maker=maker,
                time=ctx.time,
            )
            self.book.add_fill(fill)
            self.bar_fills.append(fill)
            row: dict[str, object] = {
                "time": ctx.time,
                "symbol": sym,
                "fill_id": fill.id,
                "order_id": od.id,
                "client_order_id": od.client_order_id,
                "live_type": str(od.order_type),
                "order_type": OrderType(int(rec["order_type"])).name.lower(),
                "is_maker": maker,
            }
            row.update({k: rec[k].item() for k in FILL_COLUMNS})
            self.records.append(row)
