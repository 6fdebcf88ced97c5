"""One implementation of the rules: the checks inside ``simulate`` and the Python RiskEngine
decide identically on random order streams; risk limits that never bind change nothing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trading.domain import Instrument, Signals
from quantum_trading.risk.config import RiskConfig
from quantum_trading.risk.engine import RiskEngine
from quantum_trading.sim import AccountConfig, CostsConfig, SimResult, simulate

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _market(rng: np.random.Generator, n_assets: int, n_bars: int, freq: str, vol: float):
    idx = pd.date_range(pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 170))),
                        periods=n_bars, freq=freq)
    bars = {}
    for k in range(n_assets):
        close = float(rng.uniform(5, 500)) * np.exp(np.cumsum(rng.normal(0.0, vol, n_bars)))
        opens = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0.0, vol / 3, n_bars))
        hi = np.maximum(opens, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n_bars)))
        lo = np.minimum(opens, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n_bars)))
        bars[f"A{k}"] = pd.DataFrame({"open": opens, "high": hi, "low": lo, "close": close},
                                     index=idx)
    return bars


def _targets(rng: np.random.Generator, bars: dict, leverage: float) -> pd.DataFrame:
    idx = next(iter(bars.values())).index
    tgt = rng.uniform(-leverage, leverage, (len(idx), len(bars)))
    tgt[rng.random(tgt.shape) < 0.15] = 0.0
    tgt[rng.random(tgt.shape) < 0.3] = np.nan
    return pd.DataFrame(tgt, index=idx, columns=list(bars))


def _maybe(rng: np.random.Generator, lo: float, hi: float, p_none: float = 0.3) -> float | None:
    return None if rng.random() < p_none else float(rng.uniform(lo, hi))


def _config(rng: np.random.Generator) -> RiskConfig:
    return RiskConfig(
        max_position_frac=float(rng.choice([0.05, 0.3, 1.0, 3.0])),
        max_leverage=float(rng.choice([2.0, 5.0, 50.0])),
        max_gross_exposure=_maybe(rng, 0.2, 4.0),
        max_net_exposure=_maybe(rng, 0.1, 3.0),
        max_trades_per_day=None if rng.random() < 0.4 else int(rng.integers(1, 6)),
        daily_loss_limit_pct=_maybe(rng, 1.0, 8.0),
        weekly_loss_limit_pct=_maybe(rng, 3.0, 20.0),
        max_drawdown_pct=_maybe(rng, 5.0, 40.0),
        risk_multiplier=float(rng.choice([0.0, 0.4, 1.0, 1.0])),
    )


def replay(res: SimResult, bars: dict, cfg: RiskConfig, leverage: float, lots: dict) -> RiskEngine:
    """Feed the simulation's observations and orders into a fresh engine, as a live loop would:
    update at each open, check each order with the positions the orders before it leave,
    update at each close."""
    syms = list(bars)
    eng = RiskEngine(cfg, symbols=syms, leverage=leverage, lot_size=lots)
    opens = np.column_stack([bars[s]["open"].to_numpy() for s in syms])
    closes = np.column_stack([bars[s]["close"].to_numpy() for s in syms])
    rec = res.records["risk_decisions"]
    eq_open = res.risk_state["equity_open_usd"].to_numpy()
    equity = res.equity.to_numpy()
    positions = res.positions.to_numpy()
    bankrupt_bar = (res.index.get_loc(res.bankrupt_time) if res.bankrupt_time is not None
                    else len(res.index))
    k = 0
    prev = np.zeros(len(syms))
    for t, stamp in enumerate(res.index):
        if not math.isnan(eq_open[t]):
            flat = eng.update(stamp, eq_open[t], positions=prev, prices=opens[t])
            proj = prev.copy()
            for d in flat:
                proj[syms.index(d.symbol)] = 0.0
            k += len(flat)
            while k < len(rec) and rec[k]["bar"] == t and rec[k]["at_close"] == 0:
                i = int(rec[k]["asset"])
                d = eng.check_order(stamp, syms[i], float(rec[k]["requested_size"]),
                                    equity_usd=eq_open[t], positions=proj, prices=opens[t])
                a = d.approved_size
                if a != 0.0:
                    proj[i] = 0.0 if a == -proj[i] else proj[i] + a
                k += 1
        if t < bankrupt_bar:
            k += len(eng.update(stamp, equity[t], positions=positions[t], prices=closes[t]))
        prev = positions[t]
    assert k == len(rec)
    return eng


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n_assets=st.sampled_from([1, 2, 3]),
       freq=st.sampled_from(["1h", "4h", "8h"]), vol=st.sampled_from([0.01, 0.04, 0.1]),
       every_bar=st.booleans(), leverage=st.sampled_from([1.0, 3.0, 10.0]))
def test_kernel_and_engine_decide_identically(seed: int, n_assets: int, freq: str, vol: float,
                                              every_bar: bool, leverage: float) -> None:
    rng = np.random.default_rng(seed)
    bars = _market(rng, n_assets, int(rng.integers(30, 250)), freq, vol)
    lots = {s: float(rng.choice([0.0, 0.01, 0.1])) for s in bars}
    instruments = {s: Instrument.generic(s, lot_size=lots[s], max_leverage=125.0) for s in bars}
    cfg = _config(rng)
    account = AccountConfig(leverage=leverage, rebalance="every_bar" if every_bar else "on_change",
                            initial_cash_usd=float(rng.uniform(1_000, 50_000)))
    costs = CostsConfig(default_funding_rate=float(rng.choice([0.0, 0.0005])))
    res = simulate(bars, Signals(_targets(rng, bars, leverage)), instruments=instruments,
                   costs=costs, account=account, risk=cfg)
    eng = replay(res, bars, cfg, leverage, lots)

    kernel = res.risk_decisions
    mine = eng.decision_frame()
    assert len(mine) == len(kernel)
    for col in ("time", "symbol", "action", "reason", "trading_state"):
        assert mine[col].tolist() == kernel[col].tolist(), col
    for col in ("requested_size", "approved_size", "position_before", "price", "equity_usd"):
        assert np.array_equal(mine[col].to_numpy(float), kernel[col].to_numpy(float)), col
    last = res.risk_state.iloc[-1]
    assert eng.trading_state.label == last["trading_state"]
    assert eng.trades_today == last["trades_today"]
    for name in ("peak_equity_usd", "day_start_equity_usd", "week_start_equity_usd"):
        assert getattr(eng, name) == last[name]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n_assets=st.sampled_from([1, 2]),
       every_bar=st.booleans())
def test_limits_that_never_bind_change_nothing(seed: int, n_assets: int, every_bar: bool) -> None:
    rng = np.random.default_rng(seed)
    bars = _market(rng, n_assets, 200, "1h", 0.03)
    target = Signals(_targets(rng, bars, 5.0))
    account = AccountConfig(leverage=5.0, rebalance="every_bar" if every_bar else "on_change")
    loose = RiskConfig(max_position_frac=1000.0, max_leverage=5.0, max_gross_exposure=None,
                       max_net_exposure=None, max_trades_per_day=None,
                       daily_loss_limit_pct=None, weekly_loss_limit_pct=None,
                       max_drawdown_pct=None)
    off = simulate(bars, target, account=account)
    on = simulate(bars, target, account=account, risk=loose)
    for name in ("fills", "orders", "trades"):
        assert on.records[name].tobytes() == off.records[name].tobytes(), name
    assert np.array_equal(on.equity.to_numpy(), off.equity.to_numpy())
    assert set(on.risk_decisions["action"]) <= {"approve"}
    assert off.risk_state is None and off.risk_decisions.empty
