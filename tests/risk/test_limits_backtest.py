"""The loss limits on a real losing backtest (Binance BTC + ETH perpetuals, 1h, July–August
2023): the daily, weekly and drawdown limits each trigger, the fill log shows that no fill
added risk while locked, the daily lock lifts at the next UTC day, the weekly one on Monday
00:00 UTC, and the drawdown lock flattens everything at the next open for good.

The strategy is deliberately bad: every hour it bets 3× equity per asset on the last bar's
direction continuing (10× account leverage), so fees and noise drain it steadily.

The lock periods are recomputed here from the equity the simulator observed (at each open,
checked against the previous close, the price move and the funding paid; and at each close)
with a few lines of plain pandas, independent of the kernels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.data.readers import funding_from_frame
from quantum_trading.domain import BINANCE_BTCUSDT_PERP, BINANCE_ETHUSDT_PERP, Signals
from quantum_trading.risk.config import RiskConfig
from quantum_trading.sim import AccountConfig, SimResult, simulate

SYMBOLS = {"BTC/USDT:USDT": BINANCE_BTCUSDT_PERP, "ETH/USDT:USDT": BINANCE_ETHUSDT_PERP}
ONLY = dict(max_position_frac=5.0, max_gross_exposure=None, max_net_exposure=None,
            max_trades_per_day=None, daily_loss_limit_pct=None, weekly_loss_limit_pct=None,
            max_drawdown_pct=None)
"""Only the limit under test binds (separate configs per limit)."""


@pytest.fixture(scope="module")
def market(binance_futures_dir: Path):
    bars, funding = {}, {}
    for sym in SYMBOLS:
        stem = sym.split("/")[0] + "_USDT_USDT"
        bars[sym] = pd.read_feather(binance_futures_dir / f"{stem}-1h-futures.feather").set_index("date")
        raw = pd.read_feather(binance_futures_dir / f"{stem}-8h-funding_rate.feather")
        funding[sym] = funding_from_frame(raw)["funding_rate"]
    target = pd.DataFrame({s: np.sign(f["close"] - f["open"]).replace(0.0, np.nan) * 3.0
                           for s, f in bars.items()})
    return bars, funding, Signals(target)


def run(market, **limits) -> SimResult:
    bars, funding, signals = market
    return simulate(bars, signals, instruments=SYMBOLS, funding=funding,
                    account=AccountConfig(leverage=10.0),
                    risk=RiskConfig(**(ONLY | limits)))


def observations(res: SimResult, bars: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The equity at each open and close, in time order; the open equity is checked here
    against the previous close, the close-to-open gap PnL and the funding paid at the open."""
    eq_open = res.risk_state["equity_open_usd"]
    prev_pos = res.positions.shift(1, fill_value=0.0)
    gap = sum(prev_pos[s] * (bars[s]["open"] - bars[s]["close"].shift(1)).fillna(0.0)
              for s in res.symbols)
    funding_paid = res.costs["funding_usd"].diff().fillna(res.costs["funding_usd"].iloc[0])
    expected_open = res.equity.shift(1, fill_value=res.initial_cash_usd) + gap - funding_paid
    np.testing.assert_allclose(eq_open.to_numpy(), expected_open.to_numpy(), rtol=1e-9)
    rows = []
    for t, stamp in enumerate(res.index):
        rows.append((t, 0, stamp, eq_open.iloc[t]))
        rows.append((t, 1, stamp, res.equity.iloc[t]))
    return pd.DataFrame(rows, columns=["bar", "at_close", "time", "equity"])


def loss_locks(obs: pd.DataFrame, period: str, pct: float) -> pd.DataFrame:
    """Reference: locked after each observation, a period starting at its first observation
    (UTC days; weeks from Monday 00:00 UTC)."""
    days = obs["time"].dt.floor("D")
    key = days if period == "day" else days - pd.to_timedelta(days.dt.day_of_week, unit="D")
    locked, start, current, out = False, np.nan, None, []
    for k, eq in zip(key, obs["equity"], strict=True):
        if k != current:
            current, start, locked = k, eq, False
        locked = locked or eq <= start * (1.0 - pct / 100.0)
        out.append(locked)
    return obs.assign(locked=out, period=key)


def fills_with_before(res: SimResult) -> pd.DataFrame:
    f = res.fills.copy()
    f["before"] = f["position_after"] - f["side"] * f["size"]
    f["reduces"] = (f["position_after"].abs() < f["before"].abs()) & (
        (f["position_after"] == 0) | (np.sign(f["position_after"]) == np.sign(f["before"])))
    return f


def check_loss_lock(res: SimResult, bars: dict, period: str, pct: float, reason: str) -> None:
    ref = loss_locks(observations(res, bars), period, pct)
    at_open = ref[ref.at_close == 0].set_index("bar")["locked"]
    at_close = ref[ref.at_close == 1].set_index("bar")["locked"]
    # 1) the kernel's trading state at every close and at every order check = the reference
    state = res.risk_state
    assert state["trading_state"].tolist() == np.where(at_close, "reducing", "active").tolist()
    assert set(state.loc[at_close.to_numpy(), "lock_reason"]) == {reason}
    dec = res.risk_decisions
    assert dec["trading_state"].tolist() == np.where(at_open[dec["bar"]], "reducing",
                                                     "active").tolist()
    blocked = dec[dec["reason"] == reason]
    assert len(blocked) > 10 and set(blocked["action"]) == {"reject", "resize"}
    # 2) the fill log: every fill at a bar that was locked at its open reduced |position|
    fills = fills_with_before(res)
    locked_fills = fills[at_open[fills["bar"]].to_numpy()]
    assert len(locked_fills) > 0 and locked_fills["reduces"].all()
    assert (locked_fills["position_after"] == 0).any()  # flips cut down to closes
    # 3) each lock lifts at the first bar of the next period (trading resumes there)
    periods = ref.groupby("period")["locked"].any()
    locked_periods = periods[periods].index
    assert len(locked_periods) >= (2 if period == "day" else 1)
    first_bar = ref[ref.at_close == 0].groupby("period")["bar"].min()
    resumed = 0
    for p in locked_periods:
        later = first_bar[first_bar.index > p]
        if later.empty:
            continue
        t = int(later.iloc[0])
        step = pd.Timedelta("1D") if period == "day" else pd.Timedelta("7D")
        assert res.index[t] == p + step  # the data has no gaps here: exactly 00:00 UTC
        assert state["trading_state"].iloc[t - 1] == "reducing"
        if not at_open[t]:
            opened = fills[(fills["bar"] == t) & ~fills["reduces"]]
            resumed += len(opened) > 0
            assert (dec[dec["bar"] == t]["trading_state"] == "active").all()
    assert resumed >= 1


def test_daily_loss_limit(market) -> None:
    res = run(market, daily_loss_limit_pct=5.0)
    check_loss_lock(res, market[0], "day", 5.0, "daily_loss")
    free = run(market)
    assert res.final_equity_usd > free.final_equity_usd  # the lock saved money here


def test_weekly_loss_limit(market) -> None:
    res = run(market, weekly_loss_limit_pct=15.0)
    check_loss_lock(res, market[0], "week", 15.0, "weekly_loss")
    assert (res.risk_state["lock_reason"] == "weekly_loss").sum() > 24


def test_drawdown_limit_flattens_everything_for_good(market) -> None:
    res = run(market, max_drawdown_pct=20.0)
    obs = observations(res, market[0])
    peak = obs["equity"].cummax()
    hit = obs[obs["equity"] <= 0.8 * peak].iloc[0]
    t_hit, at_close = int(hit["bar"]), int(hit["at_close"])
    flat_bar = t_hit + at_close  # the next open (this open when the open equity hit it)
    state = res.risk_state["trading_state"]
    assert (state.iloc[:t_hit] == "active").all() and (state.iloc[t_hit:] == "halted").all()
    # the flatten orders, one per open position, recorded with their reason
    dec = res.risk_decisions
    flat = dec[dec["reason"] == "drawdown_flatten"]
    held = (res.positions.iloc[t_hit - 1 + at_close] if flat_bar > 0
            else pd.Series(0.0, index=res.symbols))
    assert sorted(flat["symbol"]) == sorted(held[held != 0].index)
    assert (flat["bar"] == t_hit).all() and (flat["at"] == ("close" if at_close else "open")).all()
    assert np.array_equal(flat["approved_size"].to_numpy(), -held[flat["symbol"]].to_numpy())
    # positions are all zero from the next open on, nothing is opened after
    assert (res.positions.iloc[flat_bar:] == 0.0).all().all()
    fills = fills_with_before(res)
    after = fills[fills["bar"] >= flat_bar]
    assert len(after) == len(flat) and after["reduces"].all()
    assert (after["bar"] == flat_bar).all() and (after["position_after"] == 0).all()
    later = dec[dec["bar"] > t_hit]
    assert len(later) > 100 and set(later["action"]) == {"reject"}
    assert set(later["reason"]) == {"max_drawdown"}
    # without the limit the same strategy kept losing
    assert run(market).final_equity_usd < res.final_equity_usd
