"""The one-bar-at-a-time Simulator equals the whole-array run, bit for bit; and the whole-array
kernel's quiet-bar shortcut equals stepping every bar."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trading.domain import StopSpec
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.sim import CostsConfig, Simulator, new_state, prepare, simulate
from quantum_trading.sim.costs_nb import flex_nb
from quantum_trading.sim.engine_nb import simulate_nb, simulate_steps_nb
from quantum_trading.sim.state import ensure_capacity

from ._random import scenario
from ._util import ZERO_COSTS


def _row(a: np.ndarray, t: int, n: int) -> np.ndarray:
    return np.array([flex_nb(a, t, i) for i in range(n)])


def _kind(frac, dist, price) -> str:
    if price.shape != (1, 1) or not np.isnan(price).all():
        return "price"
    if dist.shape != (1, 1) or not np.isnan(dist).all():
        return "distance"
    return "fraction"


def _by_steps(sc):
    prep = prepare(sc.bars, sc.signals, instruments=sc.instruments, costs=sc.costs,
                   account=sc.account)
    b, s = prep.bars, prep.signals
    n = len(prep.symbols)
    kinds = {
        "sl": _kind(s.sl_frac, s.sl_dist, s.sl_price),
        "tp": _kind(s.tp_frac, s.tp_dist, s.tp_price),
        "trail": _kind(s.trail_frac, s.trail_dist, np.full((1, 1), np.nan)),
    }
    col = {"fraction": "frac", "distance": "dist", "price": "price"}
    sim = Simulator(prep.symbols, instruments=sc.instruments, costs=sc.costs, account=sc.account,
                    stop_loss=StopSpec(kinds["sl"], np.nan), take_profit=StopSpec(kinds["tp"], np.nan),
                    trailing_stop=StopSpec(kinds["trail"], np.nan),
                    time_stop_bars=sc.signals.time_stop_bars, capacity_bars=4)
    frames = [sc.bars[x] for x in prep.symbols]
    for t, ts in enumerate(prep.index):
        bar = {k: _row(getattr(b, k), t, n) for k in ("open", "high", "low", "close")}
        bar["volume"] = np.array([f.volume.iloc[t] for f in frames])
        info = sim.step(
            bar, _row(s.target, t, n), time=ts,
            funding_rate=_row(b.funding_rate, t, n), mark=_row(b.mark, t, n),
            stop_loss=_row(getattr(s, "sl_" + col[kinds["sl"]]), t, n),
            take_profit=_row(getattr(s, "tp_" + col[kinds["tp"]]), t, n),
            trailing_stop=_row(getattr(s, "trail_" + col[kinds["trail"]]), t, n),
        )
        assert info.bar == t
    return sim.result()


def assert_identical(a, b) -> None:
    for name in ("equity", "cash", "margin_ratio"):
        assert np.array_equal(getattr(a, name).to_numpy(), getattr(b, name).to_numpy()), name
    assert np.array_equal(a.positions.to_numpy(), b.positions.to_numpy())
    assert np.array_equal(a.costs.to_numpy(), b.costs.to_numpy())
    for name in ("fills", "orders", "trades"):
        ra, rb = a.records[name], b.records[name]
        assert ra.shape == rb.shape and ra.tobytes() == rb.tobytes(), name
    assert a.totals == b.totals
    assert a.bankrupt_time == b.bankrupt_time


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n_assets=st.sampled_from([1, 2, 3]),
    isolated=st.booleans(),
    every_bar=st.booleans(),
    leverage=st.sampled_from([1.0, 5.0, 20.0]),
    vol=st.sampled_from([0.01, 0.05, 0.15]),
    stops=st.booleans(),
    impact=st.booleans(),
    funding=st.booleans(),
)
def test_step_api_equals_whole_array_run(seed, n_assets, isolated, every_bar, leverage, vol, stops,
                                         impact, funding):
    sc = scenario(seed, n_assets=n_assets, n_bars=50, isolated=isolated, every_bar=every_bar,
                  leverage=leverage, vol=vol, stops=stops, impact=impact, lot=seed % 2 == 0,
                  funding=funding)
    whole = simulate(sc.bars, sc.signals, instruments=sc.instruments, costs=sc.costs,
                     account=sc.account)
    assert_identical(whole, _by_steps(sc))


def test_whole_array_run_survives_buffer_growth():
    # many orders on few bars: the record buffers must grow, never truncate
    sc = scenario(7, n_assets=3, n_bars=3000, isolated=False, every_bar=True, leverage=3.0,
                  vol=0.01, stops=True, impact=False, lot=False, funding=False)
    res = simulate(sc.bars, sc.signals, instruments=sc.instruments, costs=sc.costs,
                   account=sc.account)
    assert len(res.orders) > 1024 and len(res.fills) > 1024
    assert (np.diff(res.fills.bar.to_numpy()) >= 0).all()


def test_simulator_reports_step_info_and_positions():
    sim = Simulator("X", costs=ZERO_COSTS, take_profit=StopSpec.fraction(0.05))
    bar = {"open": 100.0, "high": 100.0, "low": 100.0, "close": 100.0}
    assert sim.step(bar, 1.0).fills.size == 0
    info = sim.step(bar, None)
    assert info.fills["size"].tolist() == [100.0] and info.positions.tolist() == [100.0]
    (pos,) = sim.position_list()
    assert pos.size == 100.0 and pos.take_profit == pytest.approx(105.0)
    info = sim.step({"open": 101.0, "high": 106.0, "low": 100.0, "close": 104.0}, None)
    assert info.fills["order_type"].tolist() == [2] and info.positions.tolist() == [0.0]
    assert sim.equity_usd == pytest.approx(10_500.0)
    assert sim.n_bars == 3 and len(sim.result().equity) == 3


def test_simulator_checks_its_inputs():
    sim = Simulator(["A", "B"], costs=ZERO_COSTS)
    with pytest.raises(DataError):
        sim.step({"open": 1.0, "high": 0.5, "low": 1.0, "close": 1.0}, 0.0)
    with pytest.raises(DataError):
        sim.step({"open": 1.0, "high": 1.0, "low": 1.0}, 0.0)
    with pytest.raises(ConfigError):
        sim.step({"open": [1.0, 1.0, 1.0], "high": 1.0, "low": 1.0, "close": 1.0}, 0.0)
    with pytest.raises(ConfigError):
        Simulator("X", costs=CostsConfig()).step(
            {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, 0.0)  # funding needs time
    with pytest.raises(ConfigError):
        Simulator("X", time_stop_bars=0)


def _run_kernel(kernel, prep, cash: float):
    st = new_state(len(prep.symbols), cash, n_bars=3, n_tiers_max=prep.params.tiers.shape[1],
                   fills_capacity=4, orders_capacity=2, trades_capacity=4)
    n_bars, t = len(prep.index), 0
    while t < n_bars:  # small buffers: the kernels stop and resume many times
        t = int(kernel(st, prep.bars, prep.signals, prep.params, t, n_bars))
        if t < n_bars:
            st = ensure_capacity(st, bars_needed=t + 1)
    return st


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n_assets=st.sampled_from([1, 1, 1, 2]),
    isolated=st.booleans(),
    every_bar=st.booleans(),
    leverage=st.sampled_from([1.0, 5.0, 20.0, 50.0]),
    vol=st.sampled_from([0.001, 0.003, 0.03, 0.15]),
    stops=st.booleans(),
    funding=st.booleans(),
    nan_frac=st.sampled_from([None, 0.9, 0.98]),
)
def test_quiet_bar_shortcut_equals_stepping_every_bar(seed, n_assets, isolated, every_bar,
                                                      leverage, vol, stops, funding, nan_frac):
    """``simulate_nb`` runs bars where nothing can happen in a tight loop; it must leave
    exactly the state that :func:`step_nb` on every bar leaves (records, outputs, positions,
    trailing references, counters)."""
    sc = scenario(seed, n_assets=n_assets, n_bars=150, isolated=isolated, every_bar=every_bar,
                  leverage=leverage, vol=vol, stops=stops, impact=seed % 3 == 0,
                  lot=seed % 2 == 0, funding=funding, nan_frac=nan_frac)
    prep = prepare(sc.bars, sc.signals, instruments=sc.instruments, costs=sc.costs,
                   account=sc.account)
    a = _run_kernel(simulate_nb, prep, sc.account.initial_cash_usd)
    b = _run_kernel(simulate_steps_nb, prep, sc.account.initial_cash_usd)
    assert np.array_equal(a.counters, b.counters)
    n_bars = len(prep.index)
    for name in ("out_equity", "out_margin_ratio"):
        assert getattr(a, name)[:n_bars].tobytes() == getattr(b, name)[:n_bars].tobytes(), name
    k = int(a.counters[6])
    assert a.snap_bar[:k].tobytes() == b.snap_bar[:k].tobytes()
    assert a.snap[:k].tobytes() == b.snap[:k].tobytes()
    for name, c in (("fills", 0), ("orders", 1), ("trades", 2)):
        m = int(a.counters[c])
        assert getattr(a, name)[:m].tobytes() == getattr(b, name)[:m].tobytes(), name
    for name in ("acct", "pos", "posi", "pend", "last_target", "asset_totals"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
