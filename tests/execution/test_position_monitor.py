"""PositionMonitor: age, loss, stop, take-profit, trailing and emergency exits."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from quantum_trading.domain import Side
from quantum_trading.errors import ConfigError
from quantum_trading.execution.config import PositionMonitorConfig
from quantum_trading.execution.models import LiveOrderType
from quantum_trading.execution.order_manager import OrderManager, OrderState
from quantum_trading.execution.position_monitor import ExitTrigger, PositionMonitor
from quantum_trading.risk import RiskConfig, RiskEngine

from ._fake_exchange import SYMBOL, FakeExchange

ETH = "ETH/USDT:USDT"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def make(config: PositionMonitorConfig | None = None, risk: RiskEngine | None = None,
         ) -> tuple[FakeExchange, OrderManager, PositionMonitor]:
    ex = FakeExchange()
    om = OrderManager(ex, clock=ex.clock, risk=risk)
    return ex, om, PositionMonitor(om, config=config)


def mid_quote(ex: FakeExchange, mid: float, symbol: str = SYMBOL) -> None:
    ex.set_quote(mid - 0.05, mid + 0.05, symbol=symbol)


def assert_reduce_only_market(om: OrderManager, cid: str) -> None:
    order = om.get(cid)
    assert order.request.order_type is LiveOrderType.MARKET and order.request.reduce_only
    assert order.tag.startswith("exit:")


def test_time_stop_after_max_age() -> None:
    async def go() -> None:
        ex, om, mon = make()
        await om.submit_market(SYMBOL, Side.BUY, 2.0)
        assert await mon.poll() == []
        ex.advance(3600)
        assert await mon.poll() == []  # exactly 1 h is not older than 1 h
        ex.advance(1)
        [action] = await mon.poll()
        assert action.trigger is ExitTrigger.MAX_AGE and action.age_s == 3601
        assert action.position_size == 2.0 and "max_position_age_s" in action.reason
        assert_reduce_only_market(om, action.client_order_id)
        assert om.get(action.client_order_id).side is Side.SELL
        assert SYMBOL not in ex.pos and mon.actions == [action]
        assert await mon.poll() == [] and not mon.tracked
    run(go())


@pytest.mark.parametrize(("side", "moved", "hit"), [
    (Side.BUY, 95.1, False), (Side.BUY, 95.0, True),  # long entry 100.05: −4.95 %, −5.05 %
    (Side.SELL, 104.9, False), (Side.SELL, 105.0, True),  # short entry 99.95: +4.95 %, +5.05 %
])
def test_loss_stop_at_max_loss_pct(side: Side, moved: float, hit: bool) -> None:
    async def go() -> None:
        ex, om, mon = make()
        await om.submit_market(SYMBOL, side, 1.0)
        await mon.poll()
        mid_quote(ex, moved)
        actions = await mon.poll()
        assert bool(actions) == hit
        if hit:
            [a] = actions
            assert a.trigger is ExitTrigger.MAX_LOSS and a.pnl_pct < -5.0
            assert_reduce_only_market(om, a.client_order_id)
            assert om.get(a.client_order_id).side is Side(-int(side))
            assert SYMBOL not in ex.pos
    run(go())


def test_stop_loss_and_take_profit_prices_and_take_profit_pct() -> None:
    async def go() -> None:
        ex, om, mon = make(PositionMonitorConfig(max_loss_pct=None))
        await om.submit_market(SYMBOL, Side.BUY, 1.0)
        mon.set_exits(SYMBOL, stop_loss_price=98.0, take_profit_price=103.0)
        mid_quote(ex, 98.5)
        assert await mon.poll() == []
        mid_quote(ex, 97.9)
        [a] = await mon.poll()
        assert a.trigger is ExitTrigger.STOP_LOSS and "98" in a.reason
        assert_reduce_only_market(om, a.client_order_id)
        await mon.poll()
        assert not mon.tracked  # the levels went with the position

        mid_quote(ex, 100.0)
        await om.submit_market(SYMBOL, Side.SELL, 1.0)  # a new short: no inherited levels
        mid_quote(ex, 97.0)
        assert await mon.poll() == []
        mon.set_exits(SYMBOL, take_profit_price=97.5)
        [a] = await mon.poll()
        assert a.trigger is ExitTrigger.TAKE_PROFIT and a.pnl_pct > 0
        assert om.get(a.client_order_id).side is Side.BUY
        assert_reduce_only_market(om, a.client_order_id)

        ex, om, mon = make(PositionMonitorConfig(take_profit_pct=2.0))
        await om.submit_market(SYMBOL, Side.BUY, 1.0)  # entry 100.05
        mid_quote(ex, 102.0)
        assert await mon.poll() == []
        mid_quote(ex, 102.06)
        [a] = await mon.poll()
        assert a.trigger is ExitTrigger.TAKE_PROFIT and "take_profit_pct" in a.reason
    run(go())


def test_trailing_stop_tracks_the_best_price() -> None:
    async def go() -> None:
        ex, om, mon = make(PositionMonitorConfig(trailing_stop_pct=2.0))
        await om.submit_market(SYMBOL, Side.BUY, 1.0)
        for mid in (101.0, 103.0, 105.0, 104.0, 103.0):  # 103 is 1.9 % below 105
            mid_quote(ex, mid)
            assert await mon.poll() == []
        assert mon.tracked[SYMBOL].best_price == 105.0
        mid_quote(ex, 102.85)  # 2.05 % below the best
        [a] = await mon.poll()
        assert a.trigger is ExitTrigger.TRAILING_STOP and "105" in a.reason and a.pnl_pct > 0
        assert_reduce_only_market(om, a.client_order_id)

        ex, om, mon = make(PositionMonitorConfig(max_loss_pct=None))  # per-position distance
        await om.submit_market(SYMBOL, Side.SELL, 1.0)
        mon.set_exits(SYMBOL, trailing_stop_pct=1.0)
        for mid in (99.0, 97.0, 97.9):
            mid_quote(ex, mid)
            assert await mon.poll() == []
        mid_quote(ex, 97.98)  # 1.01 % above the best (lowest) 97
        [a] = await mon.poll()
        assert a.trigger is ExitTrigger.TRAILING_STOP and om.get(a.client_order_id).side is Side.BUY
    run(go())


def test_no_second_exit_while_one_is_working_and_ticker_price_is_used() -> None:
    async def go() -> None:
        ex, om, mon = make()
        await om.submit_market(SYMBOL, Side.BUY, 1.0)
        await mon.poll()
        ex.advance(4000)
        ex.fail_next("create_order", after=False)  # the exit's request is lost
        [a] = await mon.poll()
        assert om.get(a.client_order_id).state is OrderState.UNKNOWN
        assert await mon.poll() == []  # still working: nothing new sent
        ex.advance(1)
        await om.poll()  # the manager re-sends it under the same id
        assert om.get(a.client_order_id).state is OrderState.FILLED and SYMBOL not in ex.pos
        assert await mon.poll() == [] and len(mon.actions) == 1

        ex, om, mon = make()
        await om.submit_market(SYMBOL, Side.BUY, 1.0)
        ticker = await ex.ticker(SYMBOL)
        crash = replace(ticker, bid=90.0, ask=90.1)
        [a] = await mon.poll({SYMBOL: crash})
        assert a.trigger is ExitTrigger.MAX_LOSS and a.price == pytest.approx(90.05)
    run(go())


def test_emergency_close_all_is_reduce_only_market_and_bypasses_risk() -> None:
    async def go() -> None:
        risk = RiskEngine(RiskConfig(max_position_frac=1.0), symbols=[SYMBOL, ETH])
        ex, om, mon = make(risk=risk)
        ex.quotes[ETH] = (1999.0, 2001.0)
        risk.update(om.now(), 100_000.0)
        await om.submit_market(SYMBOL, Side.BUY, 3.0)
        await om.submit_market(ETH, Side.SELL, 2.0)
        assert ex.pos[SYMBOL][0] == 3.0 and ex.pos[ETH][0] == -2.0
        risk.halt(om.now(), equity_usd=100_000.0)  # reduce-only exits still pass
        actions = await mon.close_all(reason="kill switch")
        assert {a.symbol for a in actions} == {SYMBOL, ETH}
        assert all(a.trigger is ExitTrigger.EMERGENCY and "kill switch" in a.reason
                   for a in actions)
        for a in actions:
            assert_reduce_only_market(om, a.client_order_id)
            assert om.get(a.client_order_id).state is OrderState.FILLED
        assert ex.pos == {}
        assert await mon.close(SYMBOL) is None  # flat: nothing to do
    run(go())


def test_opened_at_restores_age_after_restart() -> None:
    async def go() -> None:
        ex, om, mon = make()
        await om.submit_market(SYMBOL, Side.BUY, 1.0)
        mon.set_exits(SYMBOL, opened_at=ex.now - pd.Timedelta(hours=2))
        [a] = await mon.poll()
        assert a.trigger is ExitTrigger.MAX_AGE and a.age_s == 7200
    run(go())


def test_config_and_arguments_are_checked() -> None:
    with pytest.raises(ValidationError, match="max_loss_pct"):
        PositionMonitorConfig(max_loss_pct=0)
    with pytest.raises(ValidationError):
        PositionMonitorConfig(max_age=1)
    assert PositionMonitorConfig(max_position_age_s=None).max_position_age_s is None
    _, _, mon = make()
    with pytest.raises(ConfigError, match="stop_loss_price"):
        mon.set_exits(SYMBOL, stop_loss_price=-1.0)
    with pytest.raises(ConfigError, match="trailing_stop_pct"):
        mon.set_exits(SYMBOL, trailing_stop_pct=0.0)


def test_loss_exit_on_the_paper_exchange() -> None:
    from quantum_trading.domain import BINANCE_BTCUSDT_PERP
    from quantum_trading.execution.paper import PaperExchange
    from quantum_trading.sim.config import CostsConfig

    async def go() -> None:
        paper = PaperExchange([BINANCE_BTCUSDT_PERP], timeframe="1m",
                              costs=CostsConfig(default_funding_rate=0.0))
        t0 = pd.Timestamp("2024-01-01", tz="UTC")

        def bar(o: float, c: float) -> dict[str, float]:
            return {"open": o, "high": max(o, c) + 5, "low": min(o, c) - 5, "close": c,
                    "volume": 100.0}

        await paper.on_bar(SYMBOL, bar(30_000, 30_000), time=t0)
        om = OrderManager(paper, clock=lambda: paper.now)
        mon = PositionMonitor(om)
        await om.submit_market(SYMBOL, Side.BUY, 0.02)
        await paper.on_bar(SYMBOL, bar(30_000, 29_000), time=t0 + pd.Timedelta(minutes=1))
        await om.poll()
        assert await mon.poll() == []  # −3.3 %
        await paper.on_bar(SYMBOL, bar(29_000, 28_400), time=t0 + pd.Timedelta(minutes=2))
        await om.poll()
        [a] = await mon.poll()  # mark 28 400: −5.35 % of the entry
        assert a.trigger is ExitTrigger.MAX_LOSS and a.position_size == pytest.approx(0.02)
        assert_reduce_only_market(om, a.client_order_id)
        await paper.on_bar(SYMBOL, bar(28_300, 28_350), time=t0 + pd.Timedelta(minutes=3))
        await om.poll()
        exit_order = om.get(a.client_order_id)
        assert exit_order.state is OrderState.FILLED and exit_order.filled == pytest.approx(0.02)
        assert await paper.positions() == {}
        assert await mon.poll() == [] and not mon.tracked
    run(go())
