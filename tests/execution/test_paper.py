"""The paper exchange: one simulator (fills equal to ``sim.simulate``), order lifecycle, maker /
taker, triggers and the gap rule, partial fills, reduce-only, idempotency, margin, funding,
liquidation, replay."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import BINANCE_BTCUSDT_PERP, Instrument, Side, Signals, StopSpec
from quantum_trading.errors import DataError
from quantum_trading.execution.errors import InsufficientFunds, InvalidOrder, OrderNotFound
from quantum_trading.execution.models import (
    LiveOrderStatus,
    LiveOrderType,
    OrderRequest,
    TimeInForce,
)
from quantum_trading.execution.paper import PaperExchange
from quantum_trading.execution.paper_replay import BarReplay
from quantum_trading.execution.protocol import Exchange
from quantum_trading.sim import AccountConfig, CostsConfig, simulate

BTC = "BTC/USDT:USDT"
FILL_COLUMNS = [
    "side",
    "size",
    "price",
    "ref_price",
    "notional_usd",
    "fee_usd",
    "spread_usd",
    "slippage_usd",
    "impact_usd",
    "liquidation_fee_usd",
    "realized_pnl_usd",
    "position_after",
    "cash_after_usd",
]
NO_FUNDING = CostsConfig(default_funding_rate=0.0)
T0 = pd.Timestamp("2024-01-01", tz="UTC")
HOUR = pd.Timedelta("1h")


def run(coro):
    return asyncio.run(coro)


def market(side: Side, amount: float, cid: str, **kw) -> OrderRequest:
    return OrderRequest(BTC, side, LiveOrderType.MARKET, amount, client_order_id=cid, **kw)


def bar(o: float, h: float, lo: float, c: float, v: float = 100.0) -> dict[str, float]:
    return {"open": o, "high": h, "low": lo, "close": c, "volume": v}


def feed(paper: PaperExchange, rows: list[dict[str, float]], start: int = 0) -> list:
    fills = []
    for k, row in enumerate(rows):
        fills += paper.process_bar(BTC, row, time=T0 + (start + k) * HOUR)
    return fills


@pytest.fixture(scope="module")
def btc_1h(binance_futures_dir: Path) -> pd.DataFrame:
    return pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather").set_index(
        "date"
    )


@pytest.fixture(scope="module")
def btc_funding(binance_futures_dir: Path) -> pd.Series:
    frame = pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-8h-funding_rate.feather")
    return frame.set_index("date")["open"]


def simple_paper(**kw) -> PaperExchange:
    inst = Instrument.generic(BTC, lot_size=0.001, min_notional_usd=5.0, tick_size=0.1)
    kw.setdefault("costs", NO_FUNDING)
    return PaperExchange([inst], timeframe="1h", **kw)


# --------------------------------------------------------------------------- one simulator
def test_market_orders_fill_exactly_as_the_backtest(btc_1h, btc_funding) -> None:
    """A market order sent after bar t's close fills at bar t+1's open with the backtest's
    fill price, fee, spread, slippage, impact, realised PnL and cash — bit for bit — and the
    equity at every close (funding from data included) is the backtest's."""
    bars = btc_1h.iloc[:400]
    rng = np.random.default_rng(0)
    target = pd.Series(np.nan, index=bars.index, name=BTC)
    for k in range(0, 390, 13):
        target.iloc[k] = rng.choice([-1.5, -0.5, 0.0, 0.7, 2.0])
    costs = CostsConfig(slippage_bps=2.0, impact_k=0.5)
    account = AccountConfig(leverage=3.0)
    res = simulate(
        bars,
        Signals(target),
        instruments=BINANCE_BTCUSDT_PERP,
        costs=costs,
        account=account,
        funding=btc_funding,
    )
    assert len(res.fills) > 20 and res.totals["impact_usd"] > 0 and res.totals["funding_usd"] != 0
    by_time = dict(zip(res.fills["time"], res.fills.to_dict("records"), strict=True))

    paper = PaperExchange(
        {BTC: BINANCE_BTCUSDT_PERP},
        costs=costs,
        account=account,
        timeframe="1h",
        funding={BTC: btc_funding},
    )
    assert isinstance(paper, Exchange)
    equity = []
    for k, (_, row) in enumerate(bars.iterrows()):
        run(paper.on_bar(BTC, row))
        equity.append(paper.margin_summary().equity_usd)
        fill = by_time.get(bars.index[k + 1]) if k + 1 < len(bars) else None
        if fill is not None:  # the backtest's order decided at this close
            order = run(paper.create_order(market(Side(int(fill["side"])), fill["size"], f"o{k}")))
            assert order.status is LiveOrderStatus.OPEN and order.filled == 0.0
    got = paper.fill_frame()
    np.testing.assert_array_equal(
        got[FILL_COLUMNS].to_numpy(float), res.fills[FILL_COLUMNS].to_numpy(float)
    )
    assert got["time"].tolist() == res.fills["time"].tolist()
    np.testing.assert_array_equal(np.asarray(equity), res.equity.to_numpy())
    paid = sum(p for _, _, p in paper.funding_payments)
    assert paid == pytest.approx(-res.totals["funding_usd"], rel=1e-12)


def test_stops_and_take_profits_fill_exactly_as_the_backtest(btc_1h) -> None:
    """Reduce-only stop-market / take-profit-market orders at the backtest's stop levels fill
    at the same bars and prices (taker costs at the level) as the simulator's stop-loss and
    take-profit (``take_profit_order="market"``)."""
    inst = dataclasses.replace(BINANCE_BTCUSDT_PERP, tick_size=0.0)  # levels are not ticks
    bars = btc_1h.iloc[:500]
    rng = np.random.default_rng(9)  # a path where no stop fires in its entry bar (asserted)
    target = pd.Series(np.nan, index=bars.index, name=BTC)
    for k in range(0, 490, 17):
        target.iloc[k] = rng.choice([-2, -1, 1, 2])
    sl, tp = 0.012, 0.015
    costs = CostsConfig(
        slippage_bps=2.0, impact_k=0.5, take_profit_order="market", default_funding_rate=0.0
    )
    account = AccountConfig(leverage=3.0)
    res = simulate(
        bars,
        Signals(target, stop_loss=StopSpec.fraction(sl), take_profit=StopSpec.fraction(tp)),
        instruments=inst,
        costs=costs,
        account=account,
    )
    kinds = res.fills["order_type"].value_counts()
    assert kinds["stop_loss"] >= 5 and kinds["take_profit"] >= 3
    assert not (res.trades["entry_time"] == res.trades["exit_time"]).any()
    signal = res.fills[res.fills["order_type"] == "market"]
    orders = dict(zip(signal["time"], signal.to_dict("records"), strict=True))

    paper = PaperExchange([inst], costs=costs, account=account, timeframe="1h")
    exits: list[str] = []
    levels: tuple[float, float] | None = None

    def place_exits(k: int, pos: float) -> None:
        side = Side.SELL if pos > 0 else Side.BUY
        for kind, level in zip(
            (LiveOrderType.STOP_MARKET, LiveOrderType.TAKE_PROFIT_MARKET), levels, strict=True
        ):  # type: ignore[arg-type]
            req = OrderRequest(
                BTC,
                side,
                kind,
                abs(pos),
                stop_price=level,
                reduce_only=True,
                client_order_id=f"x{kind.value[:2]}{k}",
            )
            exits.append(run(paper.create_order(req)).client_order_id)

    def cancel_exits() -> None:
        for cid in exits:
            run(paper.cancel_order(BTC, client_order_id=cid))
        exits.clear()

    for k, (_, row) in enumerate(bars.iterrows()):
        before = paper.acc.size(0)
        fills = run(paper.on_bar(BTC, row))
        pos = paper.acc.size(0)
        entry = [f for f in fills if f.client_order_id.startswith("m")]
        if entry and pos != 0 and (before == 0 or (before > 0) != (pos > 0)):
            cancel_exits()  # a new position: exits from its entry fill, as the simulator
            d = 1.0 if pos > 0 else -1.0
            px = entry[-1].price
            levels = (px * (1.0 - d * sl), px * (1.0 + d * tp))
            place_exits(k, pos)
        elif entry and pos != 0:  # scaled in or out: same levels, new size
            cancel_exits()
            place_exits(k, pos)
        elif pos == 0:
            cancel_exits()
        order = orders.get(bars.index[k + 1]) if k + 1 < len(bars) else None
        if order is not None:
            run(paper.create_order(market(Side(int(order["side"])), order["size"], f"m{k}")))
    got = paper.fill_frame()
    assert got["order_type"].tolist() == res.fills["order_type"].tolist()
    np.testing.assert_array_equal(
        got[FILL_COLUMNS].to_numpy(float), res.fills[FILL_COLUMNS].to_numpy(float)
    )


def test_liquidation_matches_the_backtest() -> None:
    """A 50× long through a crash is liquidated at the simulator's price with its fee; the
    open orders of the liquidated symbol are cancelled; it shows as an ``autoclose`` order."""
    idx = pd.date_range(T0, periods=5, freq="1h")
    px = pd.DataFrame(
        [
            bar(100, 100.5, 99.5, 100),
            bar(100, 100.4, 99.8, 100.1),
            bar(100.1, 100.2, 99.9, 100),
            bar(100, 100, 96, 97),
            bar(97, 98, 96.5, 97.5),
        ],
        index=idx,
    )
    inst = Instrument.generic(BTC, max_leverage=100.0, maintenance_margin_rate=0.005)
    account = AccountConfig(leverage=50.0)
    target = pd.Series([40.0, np.nan, np.nan, np.nan, np.nan], index=idx, name=BTC)
    res = simulate(px, Signals(target), instruments=inst, costs=NO_FUNDING, account=account)
    assert res.fills["order_type"].tolist() == ["market", "liquidation"]

    paper = PaperExchange([inst], costs=NO_FUNDING, account=account, timeframe="1h")
    paper.process_bar(BTC, px.iloc[0])
    run(paper.create_order(market(Side.BUY, float(res.fills["size"].iloc[0]), "big")))
    stop = OrderRequest(
        BTC,
        Side.SELL,
        LiveOrderType.STOP_MARKET,
        1.0,
        stop_price=90.0,
        reduce_only=True,
        client_order_id="too-far",
    )
    for k in range(1, 5):
        paper.process_bar(BTC, px.iloc[k])
        if k == 1:
            run(paper.create_order(stop))
    got = paper.fill_frame()
    assert got["order_type"].tolist() == ["market", "liquidation"]
    np.testing.assert_array_equal(
        got[FILL_COLUMNS].to_numpy(float), res.fills[FILL_COLUMNS].to_numpy(float)
    )
    assert (
        run(paper.fetch_order(BTC, client_order_id="too-far")).status is LiveOrderStatus.CANCELLED
    )
    liq = got["client_order_id"].iloc[1]
    assert liq.startswith("autoclose-")
    assert run(paper.fetch_order(BTC, client_order_id=liq)).status is LiveOrderStatus.FILLED
    assert run(paper.positions()) == {}
    assert paper.margin_summary().equity_usd == pytest.approx(res.equity.iloc[-1], rel=1e-12)


# --------------------------------------------------------------------------- lifecycle
def test_market_order_lifecycle_and_queries() -> None:
    paper = simple_paper()
    feed(paper, [bar(100, 101, 99, 100)])
    order = run(paper.create_order(market(Side.BUY, 1.0, "a")))
    assert (order.status, order.filled, order.created_at) == (LiveOrderStatus.OPEN, 0.0, T0 + HOUR)
    assert [o.client_order_id for o in run(paper.open_orders(BTC))] == ["a"]
    fills = feed(paper, [bar(102, 103, 101, 102.5)], start=1)
    assert len(fills) == 1 and fills[0].price == pytest.approx(102 * (1 + 1.5e-4))
    assert not fills[0].is_maker and fills[0].time == T0 + HOUR
    assert fills[0].fee_usd == pytest.approx(fills[0].price * 4e-4)
    done = run(paper.fetch_order(BTC, client_order_id="a"))
    assert (done.status, done.filled, done.remaining) == (LiveOrderStatus.FILLED, 1.0, 0.0)
    assert run(paper.cancel_order(BTC, client_order_id="a")).status is LiveOrderStatus.FILLED
    assert run(paper.open_orders()) == []
    pos = run(paper.positions())[BTC]
    assert (pos.size, pos.mark_price) == (1.0, 102.5)
    assert pos.unrealized_pnl_usd == pytest.approx(102.5 - fills[0].price)
    bal = run(paper.balance())
    assert bal.wallet_usd == pytest.approx(10_000 - fills[0].fee_usd)
    assert bal.equity_usd == pytest.approx(bal.wallet_usd + pos.unrealized_pnl_usd)
    assert bal.free_usd == pytest.approx(bal.equity_usd - 102.5)  # 1× leverage
    assert run(paper.fills(BTC)) == fills
    assert run(paper.fills(BTC, since=T0 + 2 * HOUR)) == []
    with pytest.raises(OrderNotFound):
        run(paper.fetch_order(BTC, client_order_id="nope"))
    tick = run(paper.ticker(BTC))
    assert (tick.bid, tick.ask, tick.last) == pytest.approx(
        (102.5 * (1 - 5e-5), 102.5 * (1 + 5e-5), 102.5)
    )
    book = run(paper.order_book(BTC, depth=3))
    assert book.bids[0][0] == tick.bid and book.asks[0][0] == tick.ask
    assert book.bids[1][0] < book.bids[0][0] and book.asks[1][0] > book.asks[0][0]
    bars = run(paper.ohlcv(BTC, "1h"))
    assert bars.index.tolist() == [T0, T0 + HOUR] and bars["close"].tolist() == [100, 102.5]


def test_create_is_idempotent_by_client_order_id() -> None:
    paper = simple_paper()
    feed(paper, [bar(100, 101, 99, 100)])
    first = run(paper.create_order(market(Side.BUY, 1.0, "same")))
    again = run(paper.create_order(market(Side.BUY, 5.0, "same")))
    assert again == first and len(paper.all_orders()) == 1
    feed(paper, [bar(100, 101, 99, 100)], start=1)
    assert run(paper.create_order(market(Side.BUY, 5.0, "same"))).status is LiveOrderStatus.FILLED
    # Binance's rule (ids unique among open orders) on request: a finished id starts anew
    new = run(paper.create_order(market(Side.BUY, 2.0, "same"), reuse_terminal_id=True))
    assert new.id != first.id and new.status is LiveOrderStatus.OPEN and new.amount == 2.0
    assert run(paper.fetch_order(BTC, client_order_id="same")).id == new.id


def test_resting_limit_is_maker_only_when_traded_through() -> None:
    paper = simple_paper()
    feed(paper, [bar(100, 101, 99, 100)])
    req = OrderRequest(BTC, Side.BUY, LiveOrderType.LIMIT, 1.0, price=98.0, client_order_id="l")
    assert run(paper.create_order(req)).status is LiveOrderStatus.OPEN
    feed(paper, [bar(100, 100.5, 98.0, 99)], start=1)  # touches 98: not enough
    assert run(paper.fetch_order(BTC, client_order_id="l")).filled == 0.0
    fills = feed(paper, [bar(99, 99.5, 97.9, 98.5)], start=2)  # trades through
    assert len(fills) == 1 and fills[0].is_maker and fills[0].price == 98.0
    assert fills[0].fee_usd == pytest.approx(98.0 * 2e-4)
    row = paper.fill_frame().iloc[0]
    assert (row["spread_usd"], row["slippage_usd"], row["impact_usd"]) == (0.0, 0.0, 0.0)


def test_marketable_limit_takes_at_the_next_open_and_post_only_expires() -> None:
    paper = simple_paper()
    feed(paper, [bar(100, 101, 99, 100)])
    take = OrderRequest(BTC, Side.BUY, LiveOrderType.LIMIT, 1.0, price=101.0, client_order_id="t")
    run(paper.create_order(take))
    post = OrderRequest(
        BTC,
        Side.BUY,
        LiveOrderType.LIMIT,
        1.0,
        price=101.0,
        time_in_force=TimeInForce.POST_ONLY,
        client_order_id="p",
    )
    assert run(paper.create_order(post)).status is LiveOrderStatus.EXPIRED
    ioc = OrderRequest(
        BTC,
        Side.BUY,
        LiveOrderType.LIMIT,
        1.0,
        price=90.0,
        time_in_force=TimeInForce.IOC,
        client_order_id="i",
    )
    assert run(paper.create_order(ioc)).status is LiveOrderStatus.EXPIRED
    fills = feed(paper, [bar(100.5, 102, 100, 101)], start=1)
    assert [f.client_order_id for f in fills] == ["t"] and not fills[0].is_maker
    assert fills[0].price == pytest.approx(100.5 * (1 + 1.5e-4))
    # a limit whose taker price at the open would break its limit rests as a maker order
    late = OrderRequest(
        BTC, Side.BUY, LiveOrderType.LIMIT, 1.0, price=101.1, client_order_id="late"
    )
    run(paper.create_order(late))  # marketable at the quote (ask 101.005)
    assert feed(paper, [bar(101.2, 101.5, 101.15, 101.3)], start=2) == []
    fills = feed(paper, [bar(101.3, 101.4, 101.0, 101.1)], start=3)
    assert fills[0].is_maker and fills[0].price == 101.1


def test_stop_gap_rule_and_take_profit() -> None:
    paper = simple_paper()
    feed(paper, [bar(100, 101, 99, 100)])
    run(paper.create_order(market(Side.BUY, 2.0, "long")))
    feed(paper, [bar(100, 101, 99, 100)], start=1)
    for cid, kind, level in (
        ("sl", LiveOrderType.STOP_MARKET, 95.0),
        ("tp", LiveOrderType.TAKE_PROFIT_MARKET, 110.0),
    ):
        run(
            paper.create_order(
                OrderRequest(
                    BTC,
                    Side.SELL,
                    kind,
                    1.0,
                    stop_price=level,
                    reduce_only=True,
                    client_order_id=cid,
                )
            )
        )
    fills = feed(paper, [bar(93, 94, 92, 93.5)], start=2)  # gaps through the stop
    assert [f.client_order_id for f in fills] == ["sl"]
    assert fills[0].price == pytest.approx(93 * (1 - 1.5e-4))  # at the open, taker costs
    assert paper.fill_frame()["ref_price"].iloc[-1] == 93.0
    fills = feed(paper, [bar(105, 111, 104, 108)], start=3)  # inside the bar: at the level
    assert [f.client_order_id for f in fills] == ["tp"]
    assert fills[0].price == pytest.approx(110 * (1 - 1.5e-4))
    assert paper.acc.size(0) == 0.0
    # a stop and a take-profit inside one bar: the stop (conservative)
    run(paper.create_order(market(Side.SELL, 1.0, "short")))
    feed(paper, [bar(108, 108, 108, 108)], start=4)
    for cid, kind, level in (
        ("sl2", LiveOrderType.STOP_MARKET, 112.0),
        ("tp2", LiveOrderType.TAKE_PROFIT_MARKET, 104.0),
    ):
        run(
            paper.create_order(
                OrderRequest(
                    BTC,
                    Side.BUY,
                    kind,
                    1.0,
                    stop_price=level,
                    reduce_only=True,
                    client_order_id=cid,
                )
            )
        )
    fills = feed(paper, [bar(108, 113, 103, 106)], start=5)
    assert [f.client_order_id for f in fills] == ["sl2"]
    # the take-profit triggers later in the bar with nothing left to reduce: it expires
    assert run(paper.fetch_order(BTC, client_order_id="tp2")).status is LiveOrderStatus.EXPIRED


def test_participation_cap_gives_partial_fills() -> None:
    paper = simple_paper(max_participation=0.1)
    feed(paper, [bar(100, 101, 99, 100, v=50)])
    run(paper.create_order(market(Side.BUY, 12.0, "big")))
    feed(paper, [bar(100, 101, 99, 100, v=50)], start=1)  # 10 % of 50 = 5
    order = run(paper.fetch_order(BTC, client_order_id="big"))
    assert (order.status, order.filled) == (LiveOrderStatus.PARTIALLY_FILLED, 5.0)
    feed(paper, [bar(101, 102, 100, 101, v=30)], start=2)  # 3 more, at the next open
    assert run(paper.fetch_order(BTC, client_order_id="big")).filled == 8.0
    feed(paper, [bar(101, 102, 100, 101, v=100)], start=3)
    order = run(paper.fetch_order(BTC, client_order_id="big"))
    assert (order.status, order.filled) == (LiveOrderStatus.FILLED, 12.0)
    assert [f.amount for f in run(paper.fills(BTC))] == [5.0, 3.0, 4.0]
    assert order.average_price == pytest.approx((5 * 100 + 7 * 101) * (1 + 1.5e-4) / 12)
    with pytest.raises(DataError, match="volume"):
        paper.process_bar(
            BTC, {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, time=T0 + 9 * HOUR
        )


def test_order_checks() -> None:
    paper = simple_paper(account=AccountConfig(initial_cash_usd=1_000.0, allow_short=False))
    with pytest.raises(InvalidOrder, match="no market data"):
        run(paper.create_order(market(Side.BUY, 1.0, "early")))
    feed(paper, [bar(100, 101, 99, 100)])
    checks = [
        (market(Side.BUY, 0.0015, "lot"), InvalidOrder, "lot size"),
        (market(Side.BUY, 0.01, "small"), InvalidOrder, "minimum"),
        (
            OrderRequest(
                BTC, Side.BUY, LiveOrderType.LIMIT, 1.0, price=99.05, client_order_id="tick"
            ),
            InvalidOrder,
            "tick",
        ),
        (market(Side.SELL, 1.0, "ro", reduce_only=True), InvalidOrder, "reduce-only"),
        (market(Side.SELL, 1.0, "short"), InvalidOrder, "shorts"),
        (market(Side.BUY, 11.0, "margin"), InsufficientFunds, "margin"),
        (
            OrderRequest(
                "ETH/USDT:USDT", Side.BUY, LiveOrderType.MARKET, 1.0, client_order_id="eth"
            ),
            InvalidOrder,
            "unknown symbol",
        ),
    ]
    for req, error, match in checks:
        with pytest.raises(error, match=match) as caught:
            run(paper.create_order(req))
        assert caught.value.reason  # type: ignore[attr-defined]
    run(paper.create_order(market(Side.BUY, 6.0, "ok")))  # reserves 600 of 1,000
    with pytest.raises(InsufficientFunds):
        run(paper.create_order(market(Side.BUY, 5.0, "more")))
    with pytest.raises(InvalidOrder, match="leverage"):
        run(paper.set_leverage(BTC, 500.0))
    run(paper.set_leverage(BTC, 5.0))
    assert paper.leverage(BTC) == 5.0
    run(paper.create_order(market(Side.BUY, 5.0, "more")))  # fits at 5×


def test_reduce_only_fills_at_most_the_position() -> None:
    paper = simple_paper()
    feed(paper, [bar(100, 101, 99, 100)])
    run(paper.create_order(market(Side.BUY, 1.0, "long")))
    feed(paper, [bar(100, 101, 99, 100)], start=1)
    run(paper.create_order(market(Side.SELL, 0.4, "cut")))
    run(paper.create_order(market(Side.SELL, 5.0, "close", reduce_only=True)))
    feed(paper, [bar(100, 101, 99, 100)], start=2)
    assert run(paper.fetch_order(BTC, client_order_id="close")).filled == pytest.approx(0.6)
    assert paper.acc.size(0) == 0.0  # exactly flat, no float dust


def test_funding_settles_at_funding_times_from_data() -> None:
    rates = pd.Series(
        [0.0003, -0.0002],
        index=[T0 + 8 * HOUR + pd.Timedelta("8ms"), T0 + 16 * HOUR + pd.Timedelta("5ms")],
    )
    marks = pd.Series([101.0], index=[T0 + 8 * HOUR])
    paper = simple_paper(funding={BTC: rates}, mark={BTC: marks})
    feed(paper, [bar(100, 101, 99, 100)])
    run(paper.create_order(market(Side.SELL, 2.0, "short")))
    feed(paper, [bar(100, 101, 99, 100)] * 20, start=1)
    assert paper.funding_payments == [
        (T0 + 8 * HOUR, BTC, pytest.approx(2 * 101 * 0.0003)),
        (T0 + 16 * HOUR, BTC, pytest.approx(-2 * 100 * 0.0002)),
    ]
    rate, next_time = run(paper.funding_rate(BTC))
    assert (rate, next_time) == (-0.0002, T0 + 24 * HOUR)


def test_default_funding_schedule_and_bar_checks() -> None:
    paper = simple_paper(costs=CostsConfig(default_funding_rate=0.0001))
    feed(paper, [bar(100, 101, 99, 100)])
    run(paper.create_order(market(Side.BUY, 1.0, "long")))
    feed(paper, [bar(100, 101, 99, 100)] * 8, start=1)
    assert paper.funding_payments == [(T0 + 8 * HOUR, BTC, pytest.approx(-0.01))]
    with pytest.raises(DataError, match="not after"):
        paper.process_bar(BTC, bar(100, 101, 99, 100), time=T0)
    with pytest.raises(DataError, match="low <= open"):
        paper.process_bar(BTC, bar(100, 99, 101, 100), time=T0 + 20 * HOUR)


def test_bar_replay_drives_the_exchange(btc_1h) -> None:
    bars = btc_1h.iloc[:30]
    paper = PaperExchange([BINANCE_BTCUSDT_PERP], costs=NO_FUNDING, timeframe="1h")
    replay = BarReplay(paper, {BTC: bars}, start=bars.index[5])
    assert replay.time == bars.index[5] and replay.remaining == 25
    replay.step(2)
    assert replay.time == bars.index[7] == paper.now
    run(paper.create_order(market(Side.BUY, 0.01, "r")))
    fills = run(replay.advance())
    assert fills[0].price == pytest.approx(bars["open"].iloc[7] * (1 + 1.5e-4))
    replay.step(100)
    assert replay.done and len(run(paper.ohlcv(BTC, "1h"))) == 25
