"""The paper exchange's margin reserve for open orders: an incremental per-symbol tally that
always equals a from-scratch sum over the open orders, and accept / reject decisions unchanged
from the exchange that re-scanned every open order on each check."""

from __future__ import annotations

import asyncio
import doctest
import importlib

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trading.domain import Instrument, Side
from quantum_trading.execution.errors import InsufficientFunds, InvalidOrder
from quantum_trading.execution.models import (
    LiveOrderStatus,
    LiveOrderType,
    OrderRequest,
    TimeInForce,
)
from quantum_trading.execution.paper import PaperExchange
from quantum_trading.execution.paper_book import PaperBook, ReserveLedger
from quantum_trading.sim import AccountConfig, CostsConfig

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
T0 = pd.Timestamp("2024-01-01", tz="UTC")
HOUR = pd.Timedelta("1h")
INSTRUMENTS = [
    Instrument.generic(BTC, lot_size=0.1, min_notional_usd=5.0, tick_size=0.1, max_leverage=5),
    Instrument.generic(ETH, lot_size=0.5, min_notional_usd=5.0, tick_size=0.01, max_leverage=5),
]
START_PRICE = {BTC: 100.0, ETH: 20.0}


def run(coro):
    return asyncio.run(coro)


def scanned_reserve(book: PaperBook, symbol: str | None = None) -> float:
    """The reserve as the exchange used to compute it: a scan of every open order."""
    total = 0.0
    for o in book.open_orders(symbol):
        if o.reserve_usd > 0.0 and o.amount > 0.0:
            total += o.reserve_usd * o.remaining / o.amount
    return total


def make_paper(*, scan: bool = False, cash: float = 1_000.0) -> PaperExchange:
    """A two-symbol paper exchange with a participation cap (partial fills); ``scan``: the
    reference that re-scans the open orders for every margin check."""
    paper = PaperExchange(
        INSTRUMENTS,
        costs=CostsConfig(default_funding_rate=0.0),
        account=AccountConfig(initial_cash_usd=cash, leverage=2.0),
        timeframe="1h",
        max_participation=0.25,
    )
    if scan:
        paper.book.reserved_usd = lambda symbol=None: scanned_reserve(paper.book, symbol)  # type: ignore[method-assign]
    return paper


def bar(price: float, move: float, volume: float) -> dict[str, float]:
    close = price * (1.0 + move)
    return {
        "open": price,
        "high": max(price, close) * 1.01,
        "low": min(price, close) * 0.99,
        "close": close,
        "volume": volume,
    }


def assert_tally_matches(paper: PaperExchange) -> None:
    for sym in (BTC, ETH):
        assert paper.book.reserved_usd(sym) == pytest.approx(
            scanned_reserve(paper.book, sym), rel=1e-9, abs=1e-9
        )
    assert paper.book.reserved_usd() == pytest.approx(
        scanned_reserve(paper.book), rel=1e-9, abs=1e-9
    )
    assert paper.margin_summary().order_margin_usd == pytest.approx(
        scanned_reserve(paper.book), rel=1e-9, abs=1e-9
    )


def outcome(paper: PaperExchange, req: OrderRequest) -> tuple[str, str]:
    """``("ok", status)`` or ``(error type, reason)`` of submitting ``req``."""
    try:
        return "ok", str(run(paper.create_order(req)).status)
    except InvalidOrder as error:
        return type(error).__name__, error.reason  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- deterministic
def test_reserve_follows_place_partial_fill_and_cancel() -> None:
    """Placing reserves ``units·price/leverage``; a partial fill releases the filled share; a
    cancel releases the rest; a margin rejection turns into an acceptance once a cancel frees
    the margin."""
    paper = make_paper()
    feed = [0]

    def step(sym: str, price: float, volume: float) -> None:
        paper.process_bar(sym, bar(price, 0.0, volume), time=T0 + feed[0] * HOUR)
        feed[0] += 1

    step(BTC, 100.0, 100.0)
    step(ETH, 20.0, 100.0)
    # 8 BTC at 100 / 2× = 400 of 1,000 free; the rest of the tally follows
    limit = OrderRequest(BTC, Side.BUY, LiveOrderType.LIMIT, 8.0, price=90.0, client_order_id="l")
    run(paper.create_order(limit))
    assert paper.book.reserved_usd(BTC) == pytest.approx(360.0)  # limit price 90
    run(
        paper.create_order(
            OrderRequest(ETH, Side.BUY, LiveOrderType.MARKET, 30.0, client_order_id="m")
        )
    )
    assert paper.book.reserved_usd(ETH) == pytest.approx(300.0)  # 30 · 20 / 2
    assert paper.order_margin_by_symbol() == pytest.approx({BTC: 360.0, ETH: 300.0})
    big = OrderRequest(BTC, Side.BUY, LiveOrderType.MARKET, 7.0, client_order_id="big")
    with pytest.raises(InsufficientFunds):  # needs 350, 340 free
        run(paper.create_order(big))
    # 25 % of a 40-unit bar: 10 of the 30 ETH fill at the open, a third of the reserve goes
    step(ETH, 20.0, 40.0)
    order = run(paper.fetch_order(ETH, client_order_id="m"))
    assert (order.status, order.filled) == (LiveOrderStatus.PARTIALLY_FILLED, 10.0)
    assert paper.book.reserved_usd(ETH) == pytest.approx(200.0)
    assert_tally_matches(paper)
    run(paper.cancel_order(ETH, client_order_id="m"))
    assert paper.book.reserved_usd(ETH) == 0.0 and ETH not in paper.order_margin_by_symbol()
    assert run(paper.create_order(big)).status is LiveOrderStatus.OPEN  # fits now
    assert paper.book.reserved_usd(BTC) == pytest.approx(360.0 + 350.0)
    run(paper.cancel_order(BTC, client_order_id="l"))
    run(paper.cancel_order(BTC, client_order_id="big"))
    assert paper.book.reserved_usd() == 0.0 and paper.order_margin_by_symbol() == {}
    assert paper.margin_summary().order_margin_usd == 0.0


def test_reserve_is_released_by_fills_expiry_and_terminal_placements() -> None:
    """A full fill, an IOC that expires, a post-only order that would take (expired at once)
    and a conditional order leave no reserve behind; reduce-only orders reserve nothing."""
    paper = make_paper()
    paper.process_bar(BTC, bar(100.0, 0.0, 1_000.0), time=T0)
    run(
        paper.create_order(
            OrderRequest(BTC, Side.BUY, LiveOrderType.MARKET, 2.0, client_order_id="fill")
        )
    )
    ioc = OrderRequest(
        BTC,
        Side.BUY,
        LiveOrderType.LIMIT,
        1.0,
        price=50.0,
        time_in_force=TimeInForce.IOC,
        client_order_id="ioc",
    )
    post = OrderRequest(
        BTC,
        Side.BUY,
        LiveOrderType.LIMIT,
        1.0,
        price=150.0,
        time_in_force=TimeInForce.POST_ONLY,
        client_order_id="post",
    )
    stop = OrderRequest(
        BTC, Side.BUY, LiveOrderType.STOP_MARKET, 1.0, stop_price=150.0, client_order_id="stop"
    )
    assert run(paper.create_order(ioc)).status is LiveOrderStatus.EXPIRED
    assert run(paper.create_order(post)).status is LiveOrderStatus.EXPIRED
    assert run(paper.create_order(stop)).status is LiveOrderStatus.OPEN
    assert paper.book.reserved_usd(BTC) == pytest.approx(100.0)  # only the market order
    paper.process_bar(BTC, bar(100.0, 0.0, 1_000.0), time=T0 + HOUR)
    assert run(paper.fetch_order(BTC, client_order_id="fill")).status is LiveOrderStatus.FILLED
    assert paper.book.reserved_usd(BTC) == 0.0
    run(
        paper.create_order(
            OrderRequest(
                BTC,
                Side.SELL,
                LiveOrderType.LIMIT,
                1.0,
                price=120.0,
                reduce_only=True,
                client_order_id="ro",
            )
        )
    )
    assert paper.book.reserved_usd() == 0.0
    assert_tally_matches(paper)


def test_ledger_counts_orders_and_drops_rounding_dust() -> None:
    ledger = ReserveLedger()
    ledger.move(BTC, 0.0, 0.1)
    ledger.move(BTC, 0.0, 0.2)
    ledger.move(BTC, 0.1, 0.0)
    assert ledger.usd(BTC) == pytest.approx(0.2)
    ledger.move(BTC, 0.2, 0.0)  # last order gone: exactly 0, not 0.1 + 0.2 − 0.1 − 0.2
    assert ledger.usd(BTC) == 0.0 and ledger.by_symbol() == {}
    ledger.move(ETH, 0.0, 5.0)
    ledger.move(ETH, 5.0, 5.0)  # no change, no count
    ledger.move(ETH, 5.0, 0.0)
    assert ledger.by_symbol() == {}


# --------------------------------------------------------------------------- property
_PLACE = st.tuples(
    st.just("place"),
    st.sampled_from([BTC, ETH]),
    st.sampled_from([Side.BUY, Side.SELL]),
    # market and limit orders reserve margin; stops and take-profits do not
    st.sampled_from(
        [LiveOrderType.MARKET, LiveOrderType.LIMIT] * 3
        + [LiveOrderType.STOP_MARKET, LiveOrderType.TAKE_PROFIT_MARKET]
    ),
    # lots (0.1 BTC or 0.5 ETH): one is 10 USDT of notional, 150 need 750 USDT of margin at 2x
    st.sampled_from([1, 2, 30, 60, 90, 120, 150]),
    st.integers(-30, 30),  # limit / trigger offset from the last close, in steps of 0.2 %
    st.sampled_from([False, False, False, True]),  # reduce-only
    st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.POST_ONLY]),
)
_CANCEL = st.tuples(st.just("cancel"), st.integers(0, 10_000))
_BAR = st.tuples(
    st.just("bar"),
    st.sampled_from([BTC, ETH]),
    st.floats(-0.04, 0.04),  # close move
    st.sampled_from([0.0, 4.0, 20.0, 1e6]),  # volume: none, partial, partial, whole
)


def _request(op: tuple, last: float, k: int) -> OrderRequest:
    _, sym, side, otype, lots, offset, reduce_only, tif = op
    inst = INSTRUMENTS[0] if sym == BTC else INSTRUMENTS[1]
    level = round(last * (1.0 + offset * 0.002) / inst.tick_size) * inst.tick_size
    level = round(max(level, inst.tick_size), 8)
    return OrderRequest(
        sym,
        side,
        otype,
        round(lots * inst.lot_size, 8),
        price=level if otype is LiveOrderType.LIMIT else None,
        stop_price=level if otype not in (LiveOrderType.MARKET, LiveOrderType.LIMIT) else None,
        reduce_only=reduce_only,
        time_in_force=tif if otype is LiveOrderType.LIMIT else TimeInForce.GTC,
        client_order_id=f"o{k}",
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.one_of(_PLACE, _PLACE, _CANCEL, _BAR), min_size=8, max_size=60))
def test_tally_equals_a_rescan_and_decisions_are_unchanged(ops: list[tuple]) -> None:
    """Under any sequence of placements, partial fills (participation cap), cancels and
    bars, the incremental tally equals the sum over the open orders, per symbol and in
    total, and every accept / reject (margin included), status and fill is the one of an
    exchange that re-scans the open orders for each check."""
    paper, ref = make_paper(), make_paper(scan=True)
    for ex in (paper, ref):
        for sym in (BTC, ETH):
            ex.process_bar(sym, bar(START_PRICE[sym], 0.0, 100.0), time=T0)
    n_bars = {BTC: 1, ETH: 1}
    placed: list[tuple[str, str]] = []
    for k, op in enumerate(ops):
        if op[0] == "place":
            req = _request(op, paper.quote(op[1])[2], k)
            got, want = outcome(paper, req), outcome(ref, req)
            assert got == want
            if got[0] == "ok":
                placed.append((req.symbol, req.client_order_id))
        elif op[0] == "cancel" and placed:
            sym, cid = placed[op[1] % len(placed)]
            got = run(paper.cancel_order(sym, client_order_id=cid))
            want = run(ref.cancel_order(sym, client_order_id=cid))
            assert got.status == want.status
        elif op[0] == "bar":
            _, sym, move, volume = op
            row = bar(paper.quote(sym)[2], move, volume)
            stamp = T0 + n_bars[sym] * HOUR
            n_bars[sym] += 1
            got_fills = paper.process_bar(sym, row, time=stamp)
            want_fills = ref.process_bar(sym, row, time=stamp)
            assert [(f.client_order_id, f.amount, f.price) for f in got_fills] == [
                (f.client_order_id, f.amount, f.price) for f in want_fills
            ]
        assert_tally_matches(paper)
        assert [(o.client_order_id, o.status, o.filled) for o in run(paper.open_orders())] == [
            (o.client_order_id, o.status, o.filled) for o in run(ref.open_orders())
        ]
    assert paper.margin_summary().free_usd == pytest.approx(
        ref.margin_summary().free_usd, rel=1e-9, abs=1e-9
    )


def test_property_inputs_reach_margin_rejections_and_partial_fills() -> None:
    """The property test's order mix does reach the paths it is about: a margin rejection
    that the scanning reference makes too, and a partial fill with a reserve left."""
    paper, ref = make_paper(), make_paper(scan=True)
    for ex in (paper, ref):
        for sym in (BTC, ETH):
            ex.process_bar(sym, bar(START_PRICE[sym], 0.0, 100.0), time=T0)
    # 100 lots = 10 BTC at 100 at 2×: 500 USDT each; the third finds no free margin
    ops = [("place", BTC, Side.BUY, LiveOrderType.MARKET, 100, 0, False, TimeInForce.GTC)] * 3
    results = [
        (outcome(paper, _request(op, 100.0, k)), outcome(ref, _request(op, 100.0, k)))
        for k, op in enumerate(ops)
    ]
    assert results[-1] == (("InsufficientFunds", "margin"), ("InsufficientFunds", "margin"))
    paper.process_bar(BTC, bar(100.0, 0.0, 20.0), time=T0 + HOUR)  # 5 of 100 units fill
    order = run(paper.fetch_order(BTC, client_order_id="o0"))
    assert order.status is LiveOrderStatus.PARTIALLY_FILLED
    assert paper.book.reserved_usd(BTC) == pytest.approx(scanned_reserve(paper.book, BTC))
    assert 0.0 < paper.book.reserved_usd(BTC) < 2 * 500.0  # two orders of 500, part filled


@pytest.mark.parametrize(
    "name",
    [
        "quantum_trading.execution.paper",
        "quantum_trading.execution.paper_accounts",
        "quantum_trading.execution.paper_book",
        "quantum_trading.execution.paper_checks",
    ],
)
def test_module_examples_run(name: str) -> None:
    """The ``>>>`` examples of the paper exchange's modules run as written."""
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
