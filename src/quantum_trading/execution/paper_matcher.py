"""The paper exchange's matching engine: one bar of one symbol against the order book, on the
simulator's kernels.

:class:`BarMatcher` runs the events of a bar in the order of the
:mod:`quantum_trading.execution.paper` docstring — funding on the position held into the bar,
orders taking liquidity at the open, the position's adverse path with its stops and the
liquidation point, the triggers and resting limits inside the bar's range, then the mark at the
close — and books every fill through :class:`~.paper_accounts.PaperAccount` (the simulator's
fill, funding, liquidation and bankruptcy kernels). Trigger rules live in
:mod:`~quantum_trading.execution.paper_book`.

Units: sizes in base units, prices and money in USDT, times UTC (a bar is stamped with its open
time; its fills carry that stamp).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantum_trading.domain import Instrument, OrderType, Side
from quantum_trading.execution.models import (
    ExchangeFill,
    LiveOrderStatus,
    LiveOrderType,
    TimeInForce,
)
from quantum_trading.execution.paper_accounts import PaperAccount
from quantum_trading.execution.paper_book import (
    PaperBook,
    PaperOrder,
    bar_value,
    gapped,
    limit_traded_through,
    triggered_in_bar,
    triggers_down,
)
from quantum_trading.sim.lots_nb import trunc_lot_nb
from quantum_trading.sim.records import fill_dt

__all__ = ["FILL_COLUMNS", "BarContext", "BarMatcher"]

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


def _level(order: PaperOrder) -> float:
    return float(order.stop_price)  # type: ignore[arg-type]


def _limit_price(order: PaperOrder) -> float:
    return float(order.price)  # type: ignore[arg-type]


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
