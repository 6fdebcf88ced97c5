"""Execution algorithms: TWAP schedule, VWAP profile, iceberg slices, slippage."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import Side
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.execution.algos import (
    TWAP,
    VWAP,
    Iceberg,
    floor_to_lot,
    slippage_bps,
    volume_profile,
)
from quantum_trading.execution.config import IcebergConfig, TWAPConfig, VWAPConfig
from quantum_trading.execution.models import LiveOrderType
from quantum_trading.execution.order_manager import OrderManager, OrderState
from quantum_trading.risk import RiskConfig, RiskEngine

from ._fake_exchange import SYMBOL, FakeExchange


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def make(risk: RiskEngine | None = None) -> tuple[FakeExchange, OrderManager]:
    ex = FakeExchange()
    return ex, OrderManager(ex, clock=ex.clock, risk=risk)


async def tick(ex: FakeExchange, om: OrderManager, algo: Any, seconds: float) -> None:
    ex.advance(seconds)
    await om.poll()
    await algo.poll()


def test_slippage_sign_and_lot_rounding() -> None:
    assert slippage_bps(Side.BUY, 100.5, 100.0) == 50.0  # paid more: worse
    assert slippage_bps(Side.SELL, 99.5, 100.0) == 50.0  # sold lower: worse
    assert slippage_bps(Side.SELL, 100.5, 100.0) == -50.0
    assert floor_to_lot(0.29999999999, 0.1) == 0.3 and floor_to_lot(1.234, 0.0) == 1.234


# -- TWAP ---------------------------------------------------------------------------------------
def test_twap_schedule_sizes_sum_to_parent() -> None:
    async def go() -> None:
        ex, om = make()
        algo = TWAP(om, symbol=SYMBOL, side=Side.BUY, amount=10.0,
                    config=TWAPConfig(duration_s=400, n_slices=4))
        t0 = ex.now
        await algo.start()
        assert len(algo.children) == 1 and algo.arrival_price == pytest.approx(100.0)
        await tick(ex, om, algo, 50)
        assert len(algo.children) == 1  # the next slice is due at 100 s
        for _ in range(7):
            await tick(ex, om, algo, 50)
        ch = algo.children
        assert [c.scheduled_at - t0 for c in ch] == [pd.Timedelta(seconds=s)
                                                      for s in (0, 100, 200, 300)]
        assert [c.amount for c in ch] == [2.5] * 4 and sum(c.amount for c in ch) == 10.0
        assert all(c.parent_id == algo.parent_id for c in ch)
        assert len({c.client_order_id for c in ch}) == 4
        assert all(om.get(c.client_order_id).tag == f"twap:{algo.parent_id}" for c in ch)
        assert algo.status == "finished" and algo.filled == 10.0
        rep = algo.report()
        assert rep.n_children == 4 and rep.slippage_bps == pytest.approx(5.0)  # ask 100.05
        frame = algo.children_frame()
        assert list(frame["amount"]) == [2.5] * 4 and (frame["state"] == "filled").all()
    run(go())


def test_twap_lot_rounding_and_shortfall_made_up() -> None:
    async def go() -> None:
        ex, om = make()
        algo = TWAP(om, symbol=SYMBOL, side=Side.SELL, amount=10.0, lot_size=1.0,
                    config=TWAPConfig(duration_s=400, n_slices=4))
        assert list(algo.schedule or []) == []
        await algo.start()
        assert list(algo.schedule["target_cum"]) == [2.0, 5.0, 7.0, 10.0]
        for _ in range(4):
            await tick(ex, om, algo, 100)
        assert [c.amount for c in algo.children] == [2.0, 3.0, 2.0, 3.0]

        ex, om = make()
        ex.market_fill_fraction = 0.5  # the first child fills half, the rest expires
        algo = TWAP(om, symbol=SYMBOL, side=Side.BUY, amount=8.0,
                    config=TWAPConfig(duration_s=400, n_slices=4))
        await algo.start()
        ex.market_fill_fraction = 1.0
        assert algo.children[0].filled == 1.0 and algo.children[0].state is OrderState.EXPIRED
        for _ in range(4):
            await tick(ex, om, algo, 100)
        assert [c.amount for c in algo.children] == [2.0, 3.0, 2.0, 2.0]  # 1 made up
        assert algo.filled == 8.0 and algo.status == "finished"
    run(go())


def test_twap_limit_children_are_repriced_through_the_manager() -> None:
    async def go() -> None:
        ex, om = make()
        algo = TWAP(om, symbol=SYMBOL, side=Side.BUY, amount=2.0,
                    config=TWAPConfig(duration_s=60, n_slices=2, child_order_type="limit"))
        await algo.start()
        first = om.get(algo.children[0].client_order_id)
        assert first.request.order_type is LiveOrderType.LIMIT and first.request.price == 99.95
        ex.set_quote(100.2, 100.3)  # runs away: the manager re-prices at the new bid
        await tick(ex, om, algo, 1)
        assert len(algo.children[0].client_order_ids) == 2
        ex.set_quote(100.1, 100.15)  # crosses the re-priced bid 100.2: filled as maker
        await tick(ex, om, algo, 1)
        assert algo.children[0].done and algo.children[0].filled == 1.0
        assert algo.children[0].average_price == 100.2
    run(go())


def test_twap_child_rejected_by_risk_stops_the_parent() -> None:
    async def go() -> None:
        risk = RiskEngine(RiskConfig(max_trades_per_day=2), symbols=[SYMBOL])
        ex, om = make(risk=risk)
        risk.update(ex.now, 100_000.0)
        algo = TWAP(om, symbol=SYMBOL, side=Side.BUY, amount=3.0,
                    config=TWAPConfig(duration_s=300, n_slices=3))
        await algo.start()
        for _ in range(4):
            await tick(ex, om, algo, 100)
        assert algo.status == "stopped" and "max_trades_per_day" in algo.reason
        assert len(algo.children) == 3 and algo.filled == 2.0
        assert algo.children[-1].state is OrderState.REJECTED
        assert not ex.create_calls[algo.children[-1].client_order_id]
    run(go())


def test_cancel_parent_cancels_working_children() -> None:
    async def go() -> None:
        ex, om = make()
        algo = Iceberg(om, symbol=SYMBOL, side=Side.BUY, amount=5.0, slice_amount=1.0,
                       limit_price=99.0)
        await algo.start()
        cid = algo.children[0].client_order_id
        await algo.cancel("user")
        assert algo.status == "cancelled" and om.get(cid).state is OrderState.CANCELLED
        await tick(ex, om, algo, 10)
        assert len(algo.children) == 1
    run(go())


# -- VWAP ---------------------------------------------------------------------------------------
def _history(days: int = 3) -> pd.DataFrame:
    idx = pd.date_range("2023-07-01", periods=days * 96, freq="15min", tz="UTC")
    vol = np.array([1.0 + t.hour for t in idx])  # busier later in the day
    vol[idx.day == 2] *= 3.0  # one busy day: averaging, not summing
    return pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
                         "volume": vol}, index=idx)


def test_volume_profile_averages_by_time_of_day() -> None:
    prof = volume_profile(_history(), bucket_s=3600)
    assert prof.index.name == "bucket_start_s" and list(prof.index[:3]) == [0, 3600, 7200]
    assert prof.sum() == pytest.approx(1.0)
    hourly = np.arange(1.0, 25.0)
    assert prof.to_numpy() == pytest.approx(hourly / hourly.sum())
    with pytest.raises(ConfigError):
        volume_profile(_history(), bucket_s=7000)
    with pytest.raises(DataError):
        volume_profile(_history().reset_index(drop=True))


def test_vwap_follows_the_profile() -> None:
    async def go() -> None:
        ex, om = make()  # the fake's clock starts at 00:00 UTC
        algo = VWAP(om, symbol=SYMBOL, side=Side.BUY, amount=10.0, history=_history(),
                    config=VWAPConfig(duration_s=4 * 3600, n_slices=8, bucket_s=3600))
        await algo.start()
        for _ in range(8):
            await tick(ex, om, algo, 1800)
        w = np.repeat([1.0, 2.0, 3.0, 4.0], 2)  # hours 0..3, two half-hour slices each
        expected = 10.0 * w / w.sum()
        got = np.array([c.amount for c in algo.children])
        assert got == pytest.approx(expected) and got.sum() == pytest.approx(10.0)
        assert algo.schedule["weight"].to_numpy() == pytest.approx(w / w.sum())
        assert algo.status == "finished" and algo.filled == pytest.approx(10.0)

        with pytest.raises(ConfigError):
            VWAP(om, symbol=SYMBOL, side=Side.BUY, amount=1.0)
    run(go())


def test_vwap_slice_straddling_buckets_integrates_the_profile() -> None:
    async def go() -> None:
        ex, om = make()
        ex.advance(1800)  # start 00:30: 1 h slices straddle the hour buckets
        profile = pd.Series([0.1, 0.3, 0.6] + [0.0] * 21)
        algo = VWAP(om, symbol=SYMBOL, side=Side.SELL, amount=6.0, profile=profile,
                    config=VWAPConfig(duration_s=2 * 3600, n_slices=2))
        await algo.start()
        await tick(ex, om, algo, 3600)
        w = np.array([0.05 + 0.15, 0.15 + 0.3])
        assert [c.amount for c in algo.children] == pytest.approx(list(6.0 * w / w.sum()))
    run(go())


# -- iceberg -------------------------------------------------------------------------------------
async def _run_iceberg(seed: int) -> tuple[list[float], Iceberg, FakeExchange]:
    ex, om = make()
    algo = Iceberg(om, symbol=SYMBOL, side=Side.BUY, amount=10.0, slice_amount=1.0,
                   limit_price=99.9, config=IcebergConfig(jitter_pct=30, seed=seed))
    await algo.start()
    visible = []
    for _ in range(40):
        live = [o for o in ex.orders.values() if o.status.value in ("open", "partially_filled")]
        assert len(live) <= 1  # one visible child at a time
        if live:
            visible.append(live[0].remaining)
            ex.fill(live[0].client_order_id, live[0].remaining * 0.6)
        await tick(ex, om, algo, 5)
        live = [o for o in ex.orders.values() if o.status.value in ("open", "partially_filled")]
        if live:
            ex.fill(live[0].client_order_id, live[0].remaining)
        await tick(ex, om, algo, 5)
        if algo.finished:
            break
    return visible, algo, ex


def test_iceberg_visible_size_never_above_the_slice() -> None:
    async def go() -> None:
        visible, algo, _ex = await _run_iceberg(seed=7)
        sizes = [c.amount for c in algo.children]
        assert max(visible) <= 1.0 and max(sizes) <= 1.0 and min(sizes) >= 0.7 - 1e-12
        assert len(set(np.round(sizes[:-1], 9))) > 3  # the size is randomised
        assert algo.status == "finished" and algo.filled == pytest.approx(10.0)
        assert sum(sizes) == pytest.approx(10.0)
        assert all(c.price == 99.9 for c in algo.children)
        _again, algo2, _ = await _run_iceberg(seed=7)
        assert [c.amount for c in algo2.children] == sizes  # seeded
        _other, algo3, _ = await _run_iceberg(seed=8)
        assert [c.amount for c in algo3.children] != sizes
    run(go())


def test_iceberg_at_touch_is_repriced_and_stays_within_the_slice() -> None:
    async def go() -> None:
        ex, om = make()
        algo = Iceberg(om, symbol=SYMBOL, side=Side.SELL, amount=3.0, slice_amount=1.0,
                       lot_size=0.1, config=IcebergConfig(jitter_pct=0, refresh_delay_s=10))
        await algo.start()
        first = om.get(algo.children[0].client_order_id)
        assert first.request.price == 100.05 and first.amount == 1.0
        ex.fill(first.client_order_id, 0.4)
        ex.set_quote(99.6, 99.7)  # mid 0.4 % below: re-priced at the new ask for the rest
        await tick(ex, om, algo, 1)
        chain = algo.children[0].client_order_ids
        assert len(chain) == 2 and om.get(chain[1]).amount == pytest.approx(0.6)
        assert om.get(chain[1]).request.price == 99.7
        ex.set_quote(99.75, 99.8)
        await tick(ex, om, algo, 1)
        assert algo.children[0].done and len(algo.children) == 1  # refresh delay 10 s
        await tick(ex, om, algo, 10)
        assert len(algo.children) == 2
        assert algo.children[0].average_price == pytest.approx(0.4 * 100.05 + 0.6 * 99.7)
        arrival = 100.0
        assert algo.slippage_bps == pytest.approx(
            (arrival - algo.average_price) / arrival * 1e4)
    run(go())


def test_algo_arguments_are_checked() -> None:
    _, om = make()
    with pytest.raises(ConfigError, match="amount"):
        TWAP(om, symbol=SYMBOL, side=Side.BUY, amount=0.0)
    with pytest.raises(ConfigError, match="slice_amount"):
        Iceberg(om, symbol=SYMBOL, side=Side.BUY, amount=1.0, slice_amount=2.0)
    with pytest.raises(ConfigError, match="not started"):
        TWAP(om, symbol=SYMBOL, side=Side.BUY, amount=1.0).report()
    with pytest.raises(ValueError, match="bucket_s"):
        VWAPConfig(bucket_s=7000)


# -- on the paper exchange (the simulator's fills and costs) -----------------------------------
def test_twap_on_the_paper_exchange() -> None:
    from quantum_trading.domain import BINANCE_BTCUSDT_PERP
    from quantum_trading.execution.paper import PaperExchange
    from quantum_trading.sim.config import CostsConfig

    async def go() -> None:
        paper = PaperExchange([BINANCE_BTCUSDT_PERP], timeframe="1m",
                              costs=CostsConfig(default_funding_rate=0.0))
        t0 = pd.Timestamp("2024-01-01", tz="UTC")

        def bar(o: float) -> dict[str, float]:
            return {"open": o, "high": o + 15, "low": o - 5, "close": o + 10, "volume": 100.0}

        await paper.on_bar(SYMBOL, bar(29_990.0), time=t0)
        risk = RiskEngine(RiskConfig(), symbols=[SYMBOL])
        om = OrderManager(paper, clock=lambda: paper.now, risk=risk)
        risk.update(paper.now, (await paper.balance()).equity_usd)
        algo = TWAP(om, symbol=SYMBOL, side=Side.BUY, amount=0.03,
                    config=TWAPConfig(duration_s=180, n_slices=3))
        await algo.start()
        assert algo.lot_size == 0.001 and algo.arrival_price == pytest.approx(30_000.0)
        opens = []
        for k in range(1, 5):
            opens.append(30_000.0 + 10 * k)
            await paper.on_bar(SYMBOL, bar(opens[-1]), time=t0 + pd.Timedelta(minutes=k))
            await om.poll()
            await algo.poll()
        assert algo.status == "finished" and [c.amount for c in algo.children] == [0.01] * 3
        cost = 1 + (0.5 + 1.0) / 1e4  # half-spread + slippage of the default costs
        # each child is sent after a bar's close and fills at the next bar's open
        assert [c.average_price for c in algo.children] == pytest.approx(
            [o * cost for o in opens[:3]])
        assert algo.slippage_bps == pytest.approx(
            (np.mean(opens[:3]) * cost - 30_000.0) / 30_000.0 * 1e4)
        assert (await paper.positions())[SYMBOL].size == pytest.approx(0.03)
        assert len(risk.decisions) == 3  # every child passed the risk engine
    run(go())
