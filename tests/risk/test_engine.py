"""RiskEngine: each rule by hand (approve / resize / reject with the reason), the trading state
and its locks, manual reset / halt, the multiplier; and the one-bar Simulator with risk on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import Signals
from quantum_trading.errors import ConfigError
from quantum_trading.risk.config import RiskConfig
from quantum_trading.risk.engine import RiskEngine
from quantum_trading.risk.limits import RiskAction, RiskReason, TradingState
from quantum_trading.sim import CostsConfig, Simulator, simulate

A = RiskAction
R = RiskReason
OPEN = RiskConfig(max_position_frac=100.0, max_gross_exposure=None, max_net_exposure=None,
                  max_trades_per_day=None, daily_loss_limit_pct=None,
                  weekly_loss_limit_pct=None, max_drawdown_pct=None)
"""No limit binds (each test switches on the one it is about)."""
T0 = pd.Timestamp("2024-01-03 10:00", tz="UTC")  # a Wednesday
H = pd.Timedelta("1h")
ZERO_COSTS = CostsConfig(taker_fee_bps=0.0, maker_fee_bps=0.0, half_spread_bps=0.0,
                         slippage_bps=0.0, default_funding_rate=0.0)


def engine(symbols=("X",), **limits) -> RiskEngine:
    return RiskEngine(OPEN.model_copy(update=limits), symbols=list(symbols))


def check(eng: RiskEngine, size: float, *, pos=0.0, price=100.0, equity=10_000.0, time=T0,
          symbol="X"):
    positions = {symbol: pos} if isinstance(pos, float) else pos
    prices = {s: price for s in eng.symbols}
    return eng.check_order(time, symbol, size, equity_usd=equity, positions=positions,
                           prices=prices)


def test_max_position_resizes_to_the_cap_and_counts_units_after_the_order() -> None:
    eng = engine(max_position_frac=0.10)
    eng.update(T0, 10_000.0)
    d = check(eng, 20.0)  # 2,000 USDT = 0.2 x equity
    assert (d.action, d.reason, d.approved_size) == (A.RESIZE, R.MAX_POSITION, 10.0)
    assert "max_position_frac 0.1" in d.text and "resized to 0.1x equity" in d.text
    assert check(eng, 10.0).action == A.APPROVE  # exactly at the cap
    d = check(eng, 5.0, pos=8.0)  # leaves 13 units > 10: resized to +2
    assert (d.action, d.approved_size) == (A.RESIZE, 2.0)
    d = check(eng, 5.0, pos=12.0)  # already above the cap: nothing can be added
    assert (d.action, d.approved_size, d.reason) == (A.REJECT, 0.0, R.MAX_POSITION)
    d = check(eng, -30.0, pos=12.0)  # flip to -18: the short side capped at -10
    assert (d.action, d.approved_size) == (A.RESIZE, -22.0)


def test_lot_size_rounds_resized_orders_toward_zero() -> None:
    eng = RiskEngine(OPEN.model_copy(update={"max_position_frac": 0.1}), symbols=["X"],
                     lot_size=0.3)
    eng.update(T0, 10_000.0)
    assert check(eng, 20.1).approved_size == pytest.approx(9.9)


def test_reducing_orders_are_always_approved() -> None:
    eng = engine(max_drawdown_pct=10.0)
    eng.update(T0, 10_000.0)
    flat = eng.update(T0 + H, 8_000.0, positions={"X": 5.0}, prices={"X": 100.0})
    assert eng.trading_state == TradingState.HALTED and eng.lock_reason == R.MAX_DRAWDOWN
    assert [(f.action, f.reason, f.approved_size) for f in flat] == [
        (A.APPROVE, R.DRAWDOWN_FLATTEN, -5.0)]
    d = check(eng, -2.0, pos=5.0, time=T0 + H)
    assert (d.action, d.reason, d.approved_size) == (A.APPROVE, R.REDUCES_RISK, -2.0)
    assert (d.trading_state, check(eng, -5.0, pos=5.0).action) == (TradingState.HALTED, A.APPROVE)
    d = check(eng, 1.0, pos=5.0)
    assert (d.action, d.reason) == (A.REJECT, R.MAX_DRAWDOWN)
    d = check(eng, -8.0, pos=5.0)  # a flip while halted: only the close part
    assert (d.action, d.approved_size, d.reason) == (A.RESIZE, -5.0, R.MAX_DRAWDOWN)
    assert "flip cut to a close" in d.text


def test_daily_loss_locks_until_the_next_utc_day() -> None:
    eng = engine(daily_loss_limit_pct=5.0)
    day = pd.Timestamp("2024-01-03", tz="UTC")
    eng.update(day, 10_000.0)  # the day's start equity
    eng.update(day + 5 * H, 10_400.0)
    eng.update(day + 6 * H, 9_501.0)  # -4.99 %: not yet
    assert eng.trading_state == TradingState.ACTIVE
    eng.update(day + 7 * H, 9_500.0)  # -5 % from the day's start (not from the intraday high)
    assert (eng.trading_state, eng.lock_reason) == (TradingState.REDUCING, R.DAILY_LOSS)
    d = check(eng, 1.0, time=day + 7 * H)
    assert (d.action, d.reason) == (A.REJECT, R.DAILY_LOSS)
    assert "until 2024-01-04 00:00 UTC" in d.text
    eng.update(day + 23 * H + pd.Timedelta("59min"), 11_000.0)  # recovering does not unlock
    assert eng.trading_state == TradingState.REDUCING
    eng.update(day + 24 * H, 9_000.0)  # next UTC day: unlocked, new start equity
    assert eng.trading_state == TradingState.ACTIVE and eng.day_start_equity_usd == 9_000.0
    assert check(eng, 1.0, time=day + 24 * H).action == A.APPROVE


def test_weekly_loss_locks_until_monday() -> None:
    eng = engine(weekly_loss_limit_pct=15.0)
    monday = pd.Timestamp("2024-01-01", tz="UTC")  # a Monday
    eng.update(monday + 3 * H, 10_000.0)
    eng.update(monday + 2 * 24 * H, 8_499.0)
    assert (eng.trading_state, eng.lock_reason) == (TradingState.REDUCING, R.WEEKLY_LOSS)
    assert "until 2024-01-08 00:00 UTC" in check(eng, 1.0).text
    eng.update(monday + 7 * 24 * H - H, 9_000.0)  # Sunday 23:00: still the same week
    assert eng.trading_state == TradingState.REDUCING
    eng.update(monday + 7 * 24 * H, 9_000.0)  # Monday 00:00 UTC
    assert eng.trading_state == TradingState.ACTIVE and eng.week_start_equity_usd == 9_000.0


def test_drawdown_halts_across_days_until_reset() -> None:
    eng = engine(max_drawdown_pct=20.0, daily_loss_limit_pct=5.0)
    eng.update(T0, 10_000.0)
    eng.update(T0 + H, 12_000.0)  # the peak
    assert eng.update(T0 + 2 * H, 9_601.0) == []  # -19.99 % from the peak
    assert eng.trading_state == TradingState.ACTIVE
    flat = eng.update(T0 + 3 * H, 9_600.0, positions=[2.0], prices=[100.0])
    assert len(flat) == 1 and eng.trading_state == TradingState.HALTED
    eng.update(T0 + 30 * 24 * H, 20_000.0)  # a month later, far above the peak
    assert eng.trading_state == TradingState.HALTED
    eng.reset()
    assert eng.trading_state == TradingState.ACTIVE and eng.peak_equity_usd == 20_000.0
    assert check(eng, 1.0, time=T0 + 30 * 24 * H, equity=20_000.0).action == A.APPROVE


def test_manual_halt_is_a_kill_switch() -> None:
    eng = engine(symbols=("X", "Y"))
    eng.update(T0, 10_000.0)
    flat = eng.halt(T0, equity_usd=10_000.0, positions={"X": 1.0, "Y": -2.0},
                    prices={"X": 100.0, "Y": 50.0})
    assert [(f.symbol, f.approved_size, f.reason) for f in flat] == [
        ("X", -1.0, R.MANUAL_HALT), ("Y", 2.0, R.MANUAL_HALT)]
    assert eng.halt(T0, equity_usd=10_000.0) == []  # already halted
    assert check(eng, 1.0).reason == R.MANUAL_HALT
    eng.reset()
    assert eng.trading_state == TradingState.ACTIVE


def test_max_trades_per_day_counts_approved_risk_adding_orders() -> None:
    eng = engine(max_trades_per_day=2)
    eng.update(T0, 10_000.0)
    assert check(eng, 1.0).action == A.APPROVE
    assert check(eng, 1.0, pos=1.0).action == A.APPROVE
    assert check(eng, -1.0, pos=2.0).action == A.APPROVE  # a reduction: not counted
    d = check(eng, 1.0, pos=1.0)
    assert (d.action, d.reason, eng.trades_today) == (A.REJECT, R.MAX_TRADES_PER_DAY, 2)
    eng.update(T0 + 24 * H, 10_000.0)
    assert eng.trades_today == 0 and check(eng, 1.0, time=T0 + 24 * H).action == A.APPROVE


def test_max_leverage_rejects_orders_that_add_exposure() -> None:
    eng = RiskEngine(OPEN.model_copy(update={"max_leverage": 5.0}), symbols=["X", "Y"],
                     leverage={"X": 10.0, "Y": 5.0})
    eng.update(T0, 10_000.0)
    d = check(eng, 1.0)
    assert (d.action, d.reason) == (A.REJECT, R.MAX_LEVERAGE)
    assert "account leverage 10x for X above max_leverage 5x" in d.text
    assert check(eng, -1.0, pos=2.0).action == A.APPROVE
    assert check(eng, 1.0, symbol="Y", pos={"Y": 0.0}).action == A.APPROVE


def test_gross_and_net_exposure_caps() -> None:
    eng = engine(symbols=("X", "Y"), max_gross_exposure=1.0, max_net_exposure=0.5)
    eng.update(T0, 10_000.0)
    # Y long 40 units = 4,000 USDT; X long: net cap 5,000 -> 10 units more
    d = check(eng, 50.0, pos={"X": 0.0, "Y": 40.0})
    assert (d.action, d.reason, d.approved_size) == (A.RESIZE, R.MAX_NET_EXPOSURE, 10.0)
    # X short: net is fine down to -5,000 - 4,000; gross caps at 10,000 - 4,000 = 60 units
    d = check(eng, -80.0, pos={"X": 0.0, "Y": 40.0})
    assert (d.action, d.reason, d.approved_size) == (A.RESIZE, R.MAX_GROSS_EXPOSURE, -60.0)


def test_multiplier_scales_the_caps() -> None:
    eng = engine(max_position_frac=0.2)
    eng.update(T0, 10_000.0)
    eng.set_risk_multiplier(0.5)
    assert check(eng, 50.0).approved_size == 10.0
    eng.set_risk_multiplier(0.0)
    d = check(eng, 1.0)
    assert (d.action, d.reason) == (A.REJECT, R.MAX_POSITION) and "multiplier 0" in d.text
    assert check(eng, -1.0, pos=2.0).action == A.APPROVE
    with pytest.raises(ConfigError, match="risk_multiplier"):
        eng.set_risk_multiplier(1.5)
    assert RiskEngine(RiskConfig(risk_multiplier=0.25), symbols="X").risk_multiplier == 0.25


def test_decisions_are_recorded() -> None:
    eng = engine(max_position_frac=0.1)
    eng.update(T0, 10_000.0)
    check(eng, 20.0)
    check(eng, 5.0)
    frame = eng.decision_frame()
    assert frame[["action", "reason", "requested_size", "approved_size"]].values.tolist() == [
        ["resize", "max_position", 20.0, 10.0], ["approve", "ok", 5.0, 5.0]]
    assert frame["trading_state"].tolist() == ["active", "active"]
    assert len(eng.decisions) == 2 and eng.decisions[1].approved


def test_bad_engine_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown symbol"):
        check(engine(), 1.0, symbol="Z")
    eng = engine()
    eng.update(T0, 10_000.0)
    with pytest.raises(ConfigError, match="before the last update"):
        eng.update(T0 - H, 10_000.0)
    with pytest.raises(ConfigError, match="tz-aware"):
        eng.update(pd.Timestamp("2024-01-05"), 10_000.0)
    with pytest.raises(ConfigError, match="prices must be > 0"):
        eng.check_order(T0, "X", 1.0, equity_usd=1.0, prices=[0.0])


# --- the one-bar Simulator runs the same kernels as simulate -----------------------------------
def _bars(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, n)))
    opens = np.r_[100.0, close[:-1]]
    idx = pd.date_range("2024-01-01", periods=n, freq="4h", tz="UTC")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.01,
                         "low": np.minimum(opens, close) * 0.99, "close": close}, index=idx)


def test_simulator_steps_equal_simulate_with_risk() -> None:
    px = _bars(400)
    rng = np.random.default_rng(5)
    target = pd.Series(rng.choice([-3.0, -1.0, 0.0, 1.0, 3.0, np.nan], len(px)), index=px.index,
                       name="X")
    cfg = RiskConfig(max_position_frac=2.0, daily_loss_limit_pct=4.0, weekly_loss_limit_pct=10.0,
                     max_drawdown_pct=30.0, max_trades_per_day=3)
    from quantum_trading.sim import AccountConfig

    account = AccountConfig(leverage=5.0)
    whole = simulate(px, Signals(target), costs=ZERO_COSTS, account=account, risk=cfg)
    sim = Simulator("X", costs=ZERO_COSTS, account=account, risk=cfg, capacity_bars=8)
    for t, (stamp, row) in enumerate(px.iterrows()):
        sim.step(row.to_dict(), target.iloc[t], time=stamp)
    steps = sim.result()
    assert steps.records["risk_decisions"].tobytes() == whole.records["risk_decisions"].tobytes()
    pd.testing.assert_frame_equal(steps.risk_state, whole.risk_state, check_freq=False)
    assert np.array_equal(steps.equity.to_numpy(), whole.equity.to_numpy())
    assert set(whole.risk_decisions["reason"]) >= {"daily_loss", "max_position"}
    assert sim.trading_state == whole.trading_state.iloc[-1]


def test_simulator_risk_controls() -> None:
    px = _bars(3)
    sim = Simulator("X", costs=ZERO_COSTS, risk=RiskConfig(max_position_frac=1.0))
    with pytest.raises(ConfigError, match="time= is required"):
        sim.step(px.iloc[0].to_dict(), 1.0)
    sim.step(px.iloc[0].to_dict(), 1.0, time=px.index[0])
    sim.set_risk_multiplier(0.5)
    sim.step(px.iloc[1].to_dict(), np.nan, time=px.index[1])
    d = sim.result().risk_decisions.iloc[0]
    assert (d["action"], d["reason"]) == ("resize", "max_position")
    assert d["approved_size"] == pytest.approx(0.5 * 10_000.0 / px["open"].iloc[1])
    sim.reset_risk()
    assert sim.trading_state == "active"
    with pytest.raises(ConfigError, match="no risk limits"):
        Simulator("X", costs=ZERO_COSTS).reset_risk()
    assert Simulator("X", costs=ZERO_COSTS).trading_state is None
