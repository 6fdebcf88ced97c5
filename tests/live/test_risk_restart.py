"""The risk engine's state survives a trader restart: a drawdown halt stays halted after a
SIGKILL (until a person resets it), a daily loss lock still holds after a restart on the same
UTC day, and today's count of trades is kept. The trader runs in a forked process against the
local exchange (real ccxt client, lock-step replay of real BTC 1h bars) and kills itself with
SIGKILL the moment its risk engine locks — once after the bar was written, once before
anything of it was."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from typing import Any

import pandas as pd
import pytest

from quantum_trading.errors import ConfigError
from quantum_trading.execution.ccxt_exchange import CcxtExchange
from quantum_trading.execution.local_exchange import (
    Credentials,
    MarketData,
    TradingOptions,
    create_app,
    serve_in_thread,
)
from quantum_trading.live.config import TraderConfig
from quantum_trading.live.feed import ExchangeFeed, LocalClockDriver
from quantum_trading.live.store import TradingStore
from quantum_trading.live.target_tag import parse_target_tag
from quantum_trading.live.trader import Trader
from quantum_trading.risk.engine import RiskEngine
from quantum_trading.risk.limits import RiskAction, RiskReason, TradingState
from quantum_trading.sim import CostsConfig, RiskConfig

from ._trader_helpers import BTC, WAVES, run

pytestmark = pytest.mark.network_local

KEY, SECRET = "risk-restart-test-key", "risk-restart-test-secret"
KEY_ENV, SECRET_ENV = "QUANTUM_RISK_RESTART_KEY", "QUANTUM_RISK_RESTART_SECRET"
COSTS = CostsConfig(default_funding_rate=0.0)
DRAWDOWN = RiskConfig(max_position_frac=1.0, max_drawdown_pct=1.0, daily_loss_limit_pct=None,
                      weekly_loss_limit_pct=None)
DAILY = RiskConfig(max_position_frac=1.0, max_drawdown_pct=None, daily_loss_limit_pct=0.5,
                   weekly_loss_limit_pct=None, max_trades_per_day=50)


def _trader(url: str, db: str, risk: RiskConfig) -> Trader:
    exchange = CcxtExchange.create("binanceusdm", base_url=url, api_key_env=KEY_ENV,
                                   secret_env=SECRET_ENV, rate_limit_ms=1)
    feed = ExchangeFeed(exchange, [BTC], "1h", poll_s=0.01,
                        clock_driver=LocalClockDriver(url).advance)
    cfg = TraderConfig(symbols=(BTC,), timeframe="1h", strategy=WAVES.name,
                       params={"amp": 1.5}, costs=COSTS, risk=risk, position_monitor=None,
                       warmup_bars=30)
    return Trader(cfg, exchange=exchange, feed=feed, store=TradingStore.open(db, exchange="local"),
                  strategy=WAVES)


def _crash_on_lock(url: str, db: str, risk: RiskConfig, when: str) -> None:
    """Trade until the risk engine leaves ``active``, then SIGKILL this process: right
    after the bar was handled and written (``after_bar``), or inside the engine's update,
    before anything of that bar was written (``in_update``)."""
    trader = _trader(url, db, risk)

    def die_if_locked() -> None:
        if trader.risk is not None and trader.risk.trading_state is not TradingState.ACTIVE:
            os.kill(os.getpid(), signal.SIGKILL)

    if when == "after_bar":
        on_bar = trader.on_bar

        async def handled(event: Any) -> None:
            await on_bar(event)
            die_if_locked()

        trader.on_bar = handled  # type: ignore[method-assign]
    else:
        start = trader.start

        async def started() -> None:
            await start()
            assert trader.risk is not None
            update = trader.risk.update

            def observed(*args: Any, **kwargs: Any) -> Any:
                out = update(*args, **kwargs)
                die_if_locked()
                return out

            trader.risk.update = observed  # type: ignore[method-assign]

        trader.start = started  # type: ignore[method-assign]
    asyncio.run(trader.run())
    os._exit(3)  # the replay ended without a lock


def _killed_at_lock(url: str, db: str, risk: RiskConfig, when: str) -> None:
    proc = multiprocessing.get_context("fork").Process(
        target=_crash_on_lock, args=(url, db, risk, when), daemon=True)
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL, f"the trader did not lock (exit {proc.exitcode})"


@pytest.fixture
def venue(binance_futures_dir, monkeypatch) -> Any:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    app = create_app(MarketData(binance_futures_dir), trading=TradingOptions(
        Credentials(KEY, SECRET), timeframe="1h", symbols=(BTC,), warmup_bars=40, costs=COSTS,
        end="2023-07-25 00:00"))
    with serve_in_thread(app) as url:
        yield url, app


def _restarted(url: str, db: str, risk: RiskConfig) -> Trader:
    trader = _trader(url, db, risk)
    run(trader.run(max_bars=0))  # start (reconcile, restore) and stop: no bar observed
    return trader


def _adding_order(trader: Trader, app: Any) -> Any:
    assert trader.risk is not None
    now = pd.Timestamp(app.state.trading.now_ms, unit="ms", tz="UTC")
    price = app.state.trading.paper.quote(BTC)[2]
    return trader.risk.check_order(now, BTC, 0.01, equity_usd=10_000.0, positions={BTC: 0.0},
                                   prices={BTC: price})


def test_drawdown_halt_survives_sigkill_until_reset(venue, tmp_path) -> None:
    url, app = venue
    db = f"sqlite:///{tmp_path / 'dd.sqlite'}"
    _killed_at_lock(url, db, DRAWDOWN, "after_bar")
    stored = TradingStore.open(db, exchange="local").get_state("trader")["risk"]["snapshot"]
    trader = _restarted(url, db, DRAWDOWN)
    risk = trader.risk
    assert risk is not None
    assert risk.trading_state is TradingState.HALTED
    assert risk.lock_reason is RiskReason.MAX_DRAWDOWN
    assert risk.peak_equity_usd == stored["acct"][2] and risk.peak_equity_usd > 0
    d = _adding_order(trader, app)
    assert d.action is RiskAction.REJECT and d.reason is RiskReason.MAX_DRAWDOWN
    assert any(a.kind == "risk" and "halted" in a.message for a in trader.store.alerts())
    # a restart again: still halted (the restart itself changed nothing)
    assert _restarted(url, db, DRAWDOWN).risk.trading_state is TradingState.HALTED
    # a person lifts it (what `quantum kill --reset` writes): the next start may trade
    TradingStore.open(db, exchange="local").set_state("trading_state", "active")
    again = _restarted(url, db, DRAWDOWN)
    assert again.risk is not None and again.risk.trading_state is TradingState.ACTIVE
    assert _adding_order(again, app).approved


def test_daily_lock_survives_sigkill_on_the_same_utc_day(venue, tmp_path) -> None:
    url, app = venue
    db = f"sqlite:///{tmp_path / 'daily.sqlite'}"
    _killed_at_lock(url, db, DAILY, "in_update")
    state = TradingStore.open(db, exchange="local").get_state("trader") or {}
    snap = (state.get("risk") or {}).get("snapshot")
    assert snap is not None and snap["ints"][2] == int(TradingState.ACTIVE)  # written before
    trader = _restarted(url, db, DAILY)
    risk = trader.risk
    assert risk is not None
    day = pd.Timestamp(app.state.trading.now_ms, unit="ms", tz="UTC").normalize()
    assert pd.Timestamp(risk._last_ns, tz="UTC").normalize() == day  # the same UTC day
    # the restart has not observed anything yet; the lock comes back with the day's start
    # equity it kept: the equity now is still below it by the limit
    equity = run(_balance(url)).equity_usd
    assert equity <= risk.day_start_equity_usd * (1 - DAILY.daily_loss_limit_pct / 100)
    assert risk.trades_today >= 1 and risk.trades_today == snap["ints"][6] + _later(trader, snap)
    risk.update(pd.Timestamp(app.state.trading.now_ms, unit="ms", tz="UTC"), equity)
    assert risk.trading_state is TradingState.REDUCING
    assert risk.lock_reason is RiskReason.DAILY_LOSS
    d = _adding_order(trader, app)
    assert d.action is RiskAction.REJECT and d.reason is RiskReason.DAILY_LOSS
    fresh = RiskEngine(DAILY, symbols=[BTC])  # what a restart without the state would do
    fresh.update(pd.Timestamp(app.state.trading.now_ms, unit="ms", tz="UTC"), equity)
    assert fresh.trading_state is TradingState.ACTIVE


def _later(trader: Trader, snap: dict) -> int:
    """Risk-adding target orders written after the snapshot (its UTC day)."""
    day = snap["last_ns"] // 86_400_000_000_000
    n = 0
    for row in trader.store.all_orders():
        tag = parse_target_tag(row.tag)
        if tag is not None and not row.reduce_only:
            ref = tag.bar_ns + 3_600_000_000_000
            n += ref > snap["last_ns"] and ref // 86_400_000_000_000 == day
    return n


async def _balance(url: str) -> Any:
    async with CcxtExchange.create("binanceusdm", base_url=url, api_key_env=KEY_ENV,
                                   secret_env=SECRET_ENV, rate_limit_ms=1) as ex:
        return await ex.balance()


def test_snapshot_restore_checks_what_it_takes() -> None:
    t0 = pd.Timestamp("2024-01-01 10:00", tz="UTC")
    eng = RiskEngine(DAILY, symbols=[BTC], lot_size=0.001)
    eng.update(t0, 10_000.0)
    assert eng.check_order(t0, BTC, 0.1, equity_usd=10_000.0, prices={BTC: 40_000.0}).approved
    eng.update(t0 + pd.Timedelta("1h"), 9_900.0)  # -1 %: daily lock
    snap = eng.snapshot()
    other = RiskEngine(DAILY, symbols=[BTC], lot_size=0.001)
    other.restore(snap, trades_after=2)
    assert (other.trading_state, other.lock_reason) == (TradingState.REDUCING,
                                                        RiskReason.DAILY_LOSS)
    assert other.trades_today == 3 and other.day_start_equity_usd == 10_000.0
    assert other.snapshot()["ints"][:6] == snap["ints"][:6]
    with pytest.raises(ConfigError, match="before the last update"):
        other.update(t0, 9_900.0)  # the last observation time came back too
    other.update(t0 + pd.Timedelta("1D"), 9_900.0)  # a new UTC day lifts the lock
    assert other.trading_state is TradingState.ACTIVE and other.trades_today == 0
    for bad, match in (({**snap, "version": 99}, "version"), ({**snap, "symbols": ["ETH"]},
                                                            "symbols"),
                       ({**snap, "ints": [0]}, "length")):
        fresh = RiskEngine(DAILY, symbols=[BTC])
        with pytest.raises(ConfigError, match=match):
            fresh.restore(bad)
        assert not fresh.started  # unchanged


def test_a_peak_stored_after_the_snapshot_is_restored(tmp_path) -> None:
    """The peak is not written at each new high: a restart takes the highest equity stored
    after the snapshot, so the drawdown is measured from it."""
    from quantum_trading.execution.models import Balance

    t0 = pd.Timestamp("2024-01-01 10:00", tz="UTC")
    store = TradingStore.open(f"sqlite:///{tmp_path / 'p.sqlite'}", exchange="x")
    eng = RiskEngine(DRAWDOWN, symbols=[BTC])
    eng.update(t0, 10_000.0)
    snap = eng.snapshot()
    for k, equity in enumerate((10_000.0, 10_400.0, 10_250.0)):  # bar closes, stored
        store.record_equity(Balance(equity, equity, equity), time=t0 + pd.Timedelta(hours=k))
    assert store.max_equity_since(t0) == 10_400.0
    assert store.max_equity_since(t0 + pd.Timedelta(hours=5)) is None
    again = RiskEngine(DRAWDOWN, symbols=[BTC])
    again.restore(snap)
    again.raise_peak(store.max_equity_since(t0))
    again.raise_peak(9_000.0)  # never lowers it
    assert again.peak_equity_usd == 10_400.0
    again.update(t0 + pd.Timedelta(hours=3), 10_290.0)  # -1.06 % from 10,400: halted
    assert again.trading_state is TradingState.HALTED
    eng.update(t0 + pd.Timedelta(hours=3), 10_290.0)  # the old peak alone would not halt
    assert eng.trading_state is TradingState.ACTIVE
    with pytest.raises(ConfigError):
        again.raise_peak(float("nan"))
