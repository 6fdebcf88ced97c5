"""The paper exchange's order-entry checks: the minimum notional applies to orders that open or
increase a position, never to orders that only reduce one (reduce-only, or a close that does
not flip), as Binance accepts reduce-only orders under the minimum to close a position."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from quantum_trading.domain import Instrument, Side
from quantum_trading.execution.errors import InvalidOrder
from quantum_trading.execution.models import LiveOrderStatus, LiveOrderType, OrderRequest
from quantum_trading.execution.paper import PaperExchange
from quantum_trading.sim import CostsConfig

BTC = "BTC/USDT:USDT"
T0 = pd.Timestamp("2024-01-01", tz="UTC")
HOUR = pd.Timedelta("1h")
FLAT_BAR = {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0, "volume": 1e6}
# min notional 5 USDT at a price of 100: 0.05 BTC; 0.01 BTC is 1 USDT


def run(coro):
    return asyncio.run(coro)


class Venue:
    """A one-symbol paper exchange fed flat bars at 100."""

    def __init__(self) -> None:
        inst = Instrument.generic(BTC, lot_size=0.001, min_notional_usd=5.0, tick_size=0.1)
        self.paper = PaperExchange(
            [inst], timeframe="1h", costs=CostsConfig(default_funding_rate=0.0)
        )
        self.bars = 0
        self.next_bar()

    def next_bar(self) -> None:
        self.paper.process_bar(BTC, FLAT_BAR, time=T0 + self.bars * HOUR)
        self.bars += 1

    def order(self, cid: str, side: Side, amount: float, otype=LiveOrderType.MARKET, **kw):
        req = OrderRequest(BTC, side, otype, amount, client_order_id=cid, **kw)
        return run(self.paper.create_order(req))

    def position(self) -> float:
        return self.paper.acc.size(0)

    def rejection(self, cid: str, side: Side, amount: float, **kw) -> str:
        with pytest.raises(InvalidOrder) as caught:
            self.order(cid, side, amount, **kw)
        return caught.value.reason  # type: ignore[attr-defined]


def test_reducing_orders_under_the_minimum_are_accepted_and_fill() -> None:
    v = Venue()
    v.order("open", Side.BUY, 1.0)
    v.next_bar()
    assert v.position() == pytest.approx(1.0)
    # 1 USDT each, all under the 5 USDT minimum, all only reducing the long
    v.order("ro-mkt", Side.SELL, 0.01, reduce_only=True)
    v.order("close-mkt", Side.SELL, 0.01)
    v.order("ro-limit", Side.SELL, 0.01, otype=LiveOrderType.LIMIT, price=100.5, reduce_only=True)
    v.order("close-limit", Side.SELL, 0.01, otype=LiveOrderType.LIMIT, price=100.5)
    v.order(
        "ro-stop",
        Side.SELL,
        0.01,
        otype=LiveOrderType.STOP_MARKET,
        stop_price=99.5,
        reduce_only=True,
    )
    v.order(
        "ro-tp",
        Side.SELL,
        0.01,
        otype=LiveOrderType.TAKE_PROFIT_MARKET,
        stop_price=100.5,
        reduce_only=True,
    )
    v.next_bar()  # range 99..101: markets at the open, limits through 100.5, stop and tp hit
    for cid in ("ro-mkt", "close-mkt", "ro-limit", "close-limit", "ro-stop", "ro-tp"):
        order = run(v.paper.fetch_order(BTC, client_order_id=cid))
        assert (cid, order.status, order.filled) == (cid, LiveOrderStatus.FILLED, 0.01)
    assert v.position() == pytest.approx(0.94)


def test_a_dust_position_under_the_minimum_can_be_closed_reduce_only() -> None:
    """The Binance case: what is left of a position is worth less than the minimum notional;
    a reduce-only (or plain, non-flipping) close of it is accepted and leaves the account flat."""
    v = Venue()
    v.order("open", Side.BUY, 0.1)  # 10 USDT
    v.next_bar()
    v.order("most", Side.SELL, 0.07)  # 7 USDT
    v.next_bar()
    assert v.position() == pytest.approx(0.03)  # 3 USDT: under the minimum
    assert v.order("rest", Side.SELL, 0.03, reduce_only=True).status is LiveOrderStatus.OPEN
    v.next_bar()
    assert v.position() == 0.0
    v.order("again", Side.BUY, 0.06)
    v.next_bar()
    v.order("half", Side.SELL, 0.03)  # plain close of half, 3 USDT: accepted
    v.next_bar()
    assert v.position() == pytest.approx(0.03)


def test_opening_increasing_and_flipping_orders_under_the_minimum_are_rejected() -> None:
    v = Venue()
    assert v.rejection("open-mkt", Side.BUY, 0.01) == "min_notional"
    assert v.rejection("open-short", Side.SELL, 0.01) == "min_notional"
    assert (
        v.rejection("open-limit", Side.BUY, 0.01, otype=LiveOrderType.LIMIT, price=99.0)
        == "min_notional"
    )
    assert (
        v.rejection("open-stop", Side.BUY, 0.01, otype=LiveOrderType.STOP_MARKET, stop_price=101.0)
        == "min_notional"
    )
    # exactly the minimum is enough
    assert v.order("min", Side.BUY, 0.05).status is LiveOrderStatus.OPEN
    v.next_bar()
    assert v.rejection("increase", Side.BUY, 0.01) == "min_notional"
    v.order("cut", Side.SELL, 0.03)  # leaves a 0.02 long (2 USDT)
    v.next_bar()
    assert v.position() == pytest.approx(0.02)
    # 0.04 sells through the long into a 0.02 short: it opens, so 4 USDT is too little
    assert v.rejection("flip", Side.SELL, 0.04) == "min_notional"
    # reduce-only of the same size does not flip (it fills at most the position): accepted
    assert v.order("flip-ro", Side.SELL, 0.04, reduce_only=True).status is LiveOrderStatus.OPEN
    v.next_bar()
    assert v.position() == 0.0
    assert run(v.paper.fetch_order(BTC, client_order_id="flip-ro")).filled == pytest.approx(0.02)
