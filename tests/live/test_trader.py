"""The trader on a paper replay of real Binance bars: fills equal to the backtest's (same
strategy, data, costs, account and risk limits), the sizing rules of every account setting,
exits, the kill switch, graceful shutdown and the watchdog.

Parity config (documented in docs/benchmarks.md "Trading"): a library strategy without
intrabar stops (the trader rests a stop from the bar after the entry fill, the backtest
already inside the entry bar), the position monitor off (its time stop has no backtest
equivalent), funding from the data; orders sized at the next bar's open (the replay's
reference price: the market price at the instant the orders are sent)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import Side
from quantum_trading.execution.models import LiveOrderType, OrderRequest
from quantum_trading.live.feed import FeedEvent
from quantum_trading.sim import AccountConfig, RiskConfig

from ._trader_helpers import (
    BTC,
    FILL_COLUMNS,
    WAVES,
    backtest_fills,
    paper_trader,
    real_bars,
    run,
)


def _assert_same_fills(paper, expected: pd.DataFrame) -> pd.DataFrame:
    got = paper.fill_frame()
    assert len(got) == len(expected) > 0
    assert (got["time"].to_numpy() == expected["time"].to_numpy()).all()
    np.testing.assert_array_equal(got[FILL_COLUMNS].to_numpy(float),
                                  expected[FILL_COLUMNS].to_numpy(float))
    return got


def test_paper_replay_fills_equal_the_backtest(binance_futures_dir) -> None:
    """2,000 real BTC 5m bars, trend following both ways, default costs, account and risk
    limits (10 % of equity a position): every fill (time, side, size, price, fee, costs,
    realised PnL) is bit for bit the backtest's, and everything is in the database."""
    bars = real_bars(binance_futures_dir, "5m", 2000)
    params = {"fast": 10, "slow": 30, "direction": "both"}
    expected = backtest_fills(bars, "trend_following", params)
    trader, paper, store = paper_trader(bars, params=params, timeframe="5m")
    summary = run(trader.run())
    assert summary.status == "stopped" and summary.bars == 2000 and summary.rejected == 0
    got = _assert_same_fills(paper, expected)
    assert summary.orders_sent == len(got)
    stored = store.fills(BTC)
    assert [f.fill_id for f in stored] == got["fill_id"].tolist()
    assert [f.price for f in stored] == got["price"].tolist()
    orders = store.all_orders()
    assert len(orders) == len(got) and {o.state for o in orders} == {"filled"}
    assert all(o.tag.startswith(f"target:{BTC}=") for o in orders)
    assert len(store.risk_decisions()) >= len(orders)  # one decision per order sent
    assert store.latest_equity().equity_usd == pytest.approx(paper.margin_summary().equity_usd)
    assert store.get_state("trader")["last_target"][BTC] in (-1.0, 1.0)


@pytest.mark.parametrize("account", [
    AccountConfig(leverage=3.0),
    AccountConfig(rebalance="every_bar", min_rebalance_frac=0.02, leverage=2.0),
    AccountConfig(allow_short=False, size_with_costs=True),
], ids=["leverage3", "every_bar", "long_only_costs"])
def test_sizing_matches_the_simulator(binance_futures_dir, account) -> None:
    """A target that changes almost every bar (fractions up to ±1.5, NaN bars), with the
    account's rebalance, leverage, short and sizing rules and no risk engine: the trader's
    orders fill exactly as the backtest's."""
    bars = real_bars(binance_futures_dir, "1h", 300)
    expected = backtest_fills(bars, WAVES, None, account=account, risk=None)
    trader, paper, _ = paper_trader(bars, strategy=WAVES, account=account, risk=None)
    summary = run(trader.run())
    assert summary.rejected == 0
    _assert_same_fills(paper, expected)


def test_risk_limits_resize_and_reject_as_in_the_backtest(binance_futures_dir) -> None:
    """Tight limits (5 % of equity a position, 3 risk-adding orders a day): the risk engine
    resizes and rejects the same orders as the simulator's risk kernel."""
    bars = real_bars(binance_futures_dir, "1h", 300)
    risk = RiskConfig(max_position_frac=0.05, max_trades_per_day=3)
    expected = backtest_fills(bars, WAVES, None, risk=risk)
    trader, paper, store = paper_trader(bars, strategy=WAVES, risk=risk)
    run(trader.run())
    _assert_same_fills(paper, expected)
    actions = {d.action for d in store.risk_decisions()}
    assert {"resize", "reject"} <= actions


def test_stop_loss_rests_on_the_exchange(binance_futures_dir) -> None:
    """Stops asked for by the strategy become reduce-only STOP_MARKET orders for the whole
    position, at the entry price minus the distance (tick-rounded), cancelled on exit."""
    bars = real_bars(binance_futures_dir, "1h", 400)
    params = {"fast": 5, "slow": 20, "direction": "both", "stop_loss_pct": 1.0}
    trader, paper, store = paper_trader(bars, params=params)
    run(trader.run())
    stops = [o for o in paper.all_orders() if o.order_type is LiveOrderType.STOP_MARKET]
    entries = {f.time: f for f in store.fills(BTC)}
    assert len(stops) >= 3 and all(o.reduce_only for o in stops)
    assert {o.status.value for o in stops} <= {"cancelled", "filled", "open", "expired"}
    for stop in stops:
        row = store.get_order(stop.client_order_id)
        assert row is not None and row.tag.startswith("exit:sl:")
    filled = [o for o in stops if o.status.value == "filled"]
    assert filled, "some stop should have been hit on 400 bars with a 1 % stop"
    assert len(entries) > 0


def test_kill_flag_flattens_and_stops(binance_futures_dir) -> None:
    """``quantum kill`` writes a flag; the running trader reads it, cancels every order,
    closes the position with a reduce-only market order and stops, halted."""
    bars = real_bars(binance_futures_dir, "1h", 1000)
    trader, paper, store = paper_trader(bars, strategy="buy_and_hold", speed=400.0,
                                        kill_poll_s=0.02)

    async def go():
        async def flag():
            while trader.summary.bars < 30:
                await asyncio.sleep(0.01)
            store.set_state("kill", {"requested_at": pd.Timestamp.now(tz="UTC"),
                                     "reason": "test"})
        task = asyncio.create_task(flag())
        summary = await trader.run()
        await task
        return summary

    summary = run(go())
    assert summary.status == "killed" and 30 <= summary.bars < 200
    assert asyncio.run(paper.positions()) == {}
    assert asyncio.run(paper.open_orders()) == []
    flag = store.get_state("kill")
    assert flag["done_at"] is not None and flag["flat"] is True
    assert store.get_state("trading_state") == "halted"
    closes = [o for o in store.all_orders() if o.tag.startswith("flatten:")]
    assert len(closes) == 1 and closes[0].reduce_only and closes[0].state == "filled"
    assert any(a.kind == "kill_switch" for a in store.alerts())


def test_sigterm_shuts_down_gracefully(binance_futures_dir) -> None:
    """SIGTERM (as SIGINT): no new decisions, open orders that are not reduce-only are
    cancelled, the protective stop stays; the run ends ``stopped``, the state is written."""
    bars = real_bars(binance_futures_dir, "1h", 600)
    params = {"fast": 5, "slow": 20, "stop_loss_pct": 5.0}
    trader, paper, store = paper_trader(bars, params=params, speed=200.0)
    far = OrderRequest(BTC, Side.BUY, LiveOrderType.LIMIT, 0.02, price=10_000.0,
                       client_order_id="far-limit")

    async def go():
        task = asyncio.create_task(trader.run(install_signal_handlers=True))
        while not any(e.sl_cid for e in trader.exits.active.values()):
            await asyncio.sleep(0.005)
        await trader.send([(far, "test:far", None)])
        os.kill(os.getpid(), signal.SIGTERM)
        return await asyncio.wait_for(task, timeout=20)

    summary = run(go())
    assert summary.status == "stopped" and summary.bars < 600
    live = asyncio.run(paper.open_orders())
    assert [o.order_type for o in live] == [LiveOrderType.STOP_MARKET] and live[0].reduce_only
    assert {o.client_order_id for o in live} == {r.client_order_id for r in store.open_orders()}
    assert store.get_order("far-limit").state == "cancelled"
    assert asyncio.run(paper.positions())[BTC].size > 0  # positions are kept
    assert store.get_state("trader")["exits"]["active"][BTC]["sl_cid"] == live[0].client_order_id


class _StallingFeed:
    """A replay feed that stops delivering after ``n`` bars (sleeps instead)."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n = inner, n
        self.timeframe, self.symbols = inner.timeframe, inner.symbols
        self.expected_interval_s = 0.01

    def now(self):
        return self.inner.now()

    async def start(self, warmup_bars):
        return await self.inner.start(warmup_bars)

    async def next_event(self) -> FeedEvent | None:
        if self.inner.bars_fed >= self.n:
            await asyncio.sleep(0.05)
            return FeedEvent("tick", self.inner.now())
        return await self.inner.next_event()

    async def close(self):
        return None


def test_watchdog_flattens_on_a_stalled_feed(binance_futures_dir) -> None:
    """No bar for stall_bars × the expected interval: a critical alert, trading halted and
    the position closed (on_stall="flatten")."""
    bars = real_bars(binance_futures_dir, "1h", 200)
    trader, _paper, store = paper_trader(bars, strategy="buy_and_hold", on_stall="flatten",
                                        stall_bars=5.0, stall_timeout_s=0.3)
    trader.feed = _StallingFeed(trader.feed, 20)

    async def go():
        async def stop_later():
            while not any(o.tag.startswith("flatten:") for o in store.all_orders()):
                await asyncio.sleep(0.02)
            trader.stop("test over")
        task = asyncio.create_task(stop_later())
        await asyncio.wait_for(trader.run(), timeout=20)
        await task

    run(go())
    assert trader.halted and store.get_state("trading_state") == "halted"
    kinds = [a.kind for a in store.alerts()]
    assert "watchdog:feed_stall" in kinds and "flatten" in kinds
    assert any(o.tag.startswith("flatten:") and o.reduce_only for o in store.all_orders())


def test_restart_does_not_decide_twice(binance_futures_dir) -> None:
    """A second trader on the same account and database (a restart) reconciles, restores the
    last targets and sends nothing for a decision already made."""
    bars = real_bars(binance_futures_dir, "1h", 120)
    trader, paper, store = paper_trader(bars, strategy="buy_and_hold", cancel_on_shutdown=False)
    run(trader.run(max_bars=5))
    sent = len(store.all_orders())
    assert sent == 1
    from quantum_trading.live.trader import Trader

    again = Trader(trader.config, exchange=paper, feed=trader.feed, store=store)
    run(again.run(max_bars=10))
    assert again.last_target[BTC] == 1.0
    assert len(store.all_orders()) == sent  # buy and hold: one order in all
    assert again.reconcile_report.ok


def _sleepy(df: pd.DataFrame) -> pd.Series:
    """Long, then blocks the event loop for 1.2 s once (at the 10th bar)."""
    if len(df) == 10:
        time.sleep(1.2)
    return pd.Series(1.0, index=df.index)


def test_watchdog_alerts_on_a_blocked_loop(binance_futures_dir) -> None:
    """A strategy that blocks the event loop: the watchdog thread notices that the loop's
    heartbeat stopped and the alert is stored once the loop runs again."""
    from quantum_trading.strategies import strategy_from_function

    bars = real_bars(binance_futures_dir, "1h", 20)
    sleepy = strategy_from_function(_sleepy, name="sleepy")
    trader, _, store = paper_trader(bars, strategy=sleepy, stall_timeout_s=0.4, speed=50.0)
    summary = run(trader.run())
    assert summary.bars == 20 and summary.status == "stopped"
    stalls = store.alerts("watchdog:loop_stall")
    assert len(stalls) == 1 and stalls[0].level == "critical"
    assert "no loop heartbeat" in stalls[0].message


@pytest.mark.parametrize("module", ["config", "feed", "sizing", "watchdog"])
def test_module_examples_run(module) -> None:
    """The ``>>>`` examples of the trader's modules run as written."""
    import doctest
    import importlib

    mod = importlib.import_module(f"quantum_trading.live.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
