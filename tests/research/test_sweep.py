"""Batched sweeps equal one Backtest per parameter set, statistic for statistic."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quantum_trading.backtest import Backtest
from quantum_trading.data import generate_market
from quantum_trading.errors import ConfigError
from quantum_trading.research import sweep_eval, sweep_signals
from quantum_trading.research.sweep import (
    TABLE_STATS,
    batch_signals_for,
    make_job,
    param_grid,
    sweep,
)
from quantum_trading.sim import CostsConfig, RiskConfig, SimState
from quantum_trading.sim.risk_nb import RiskState
from quantum_trading.strategies import get_strategy


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    frame = generate_market(n_assets=1, n_bars=3000, seed=11).ohlcv["BTC/USDT:USDT"]
    assert isinstance(frame, pd.DataFrame)
    return frame


def _params(res, i: int) -> dict:
    row = res.table.loc[i]
    return {k: (row[k].item() if isinstance(row[k], np.generic) else row[k])
            for k in res.param_names}


def _assert_equal_stats(res, i: int, stats: pd.Series) -> None:
    for key in TABLE_STATS:
        a, b = float(res.table.loc[i, key]), float(stats[key])
        if math.isnan(b):
            assert math.isnan(a), (i, key, a, b)
        else:
            assert a == pytest.approx(b, rel=1e-12, abs=1e-12), (i, key, a, b)


def _check_against_backtest(data, strategy, res, rows, **config) -> None:
    for i in rows:
        stats = Backtest(data, strategy, params=_params(res, i), benchmark=None,
                         **config).run().stats
        _assert_equal_stats(res, i, stats)


def test_trend_following_sweep_equals_backtest(bars):
    grid = {"fast": [5, 12, 30], "slow": [40, 90], "direction": ["long", "both"],
            "size": [0.5, 1.0]}
    res = sweep(bars, "trend_following", grid)  # default risk engine, as Backtest
    assert res.batched
    assert len(res.table) == 24
    assert list(res.table.columns[: len(res.param_names)]) == list(res.param_names)
    _check_against_backtest(bars, "trend_following", res, [0, 7, 13, 23])
    assert (res.table["# Trades"] > 0).all()


def test_sweep_with_stops_costs_and_no_risk_equals_backtest(bars):
    costs = CostsConfig(slippage_bps=3.0, half_spread_bps=1.0)
    grid = {"fast": [8, 20], "slow": [50, 120], "direction": ["both"],
            "stop_loss_pct": [1.5], "take_profit_pct": [3.0]}
    res = sweep(bars, "trend_following", grid, costs=costs, risk=None)
    assert res.batched
    _check_against_backtest(bars, "trend_following", res, range(len(res.table)), costs=costs,
                            risk=None)
    atr_grid = {"fast": [8, 20], "slow": [60], "stop_loss_atr": [2.0], "atr_period": [10]}
    res = sweep(bars, "trend_following", atr_grid, risk=None)
    assert res.batched
    _check_against_backtest(bars, "trend_following", res, [0, 1], risk=None)


def test_momentum_breakout_sweep_equals_backtest(bars):
    grid = {"lookback": [10, 40], "exit_lookback": [5, 20], "volume_factor": [1.0, 1.6],
            "volume_period": [10, 30], "direction": ["both"]}
    res = sweep(bars, "momentum_breakout", grid, risk=RiskConfig(max_position_frac=0.5))
    assert res.batched and len(res.table) == 16
    _check_against_backtest(bars, "momentum_breakout", res, [0, 5, 10, 15],
                            risk=RiskConfig(max_position_frac=0.5))


def test_batched_targets_equal_strategy_signals(bars):
    for name, grid in (("trend_following", {"fast": [6, 25], "slow": [30, 100],
                                            "direction": ["short", "both"]}),
                       ("momentum_breakout", {"lookback": [15, 60], "volume_factor": [1.2],
                                              "direction": ["long", "both"]})):
        strat = get_strategy(name)
        sets = param_grid(strat, grid)
        fill = batch_signals_for(strat).plan(bars, sets)
        out = np.empty((len(sets), len(bars)))
        fill(np.arange(len(sets)), out)
        for j, p in enumerate(sets):
            expected = strat.signals(bars, **p).target.iloc[:, 0].to_numpy()
            np.testing.assert_array_equal(out[j], expected)


def test_each_indicator_is_computed_once_per_distinct_value(bars, monkeypatch):
    """A 4 × 3 grid of EMA windows (fast 5, 10, 20, 40; slow 40, 60, 90: 11 sets after the
    fast < slow rule) needs 6 distinct EMAs, not one or two per set; a Donchian/volume grid
    likewise computes each distinct window once."""
    calls: dict[str, list[int]] = {"ema": [], "donchian": [], "sma": []}
    for name, key in (("ema", "ema"), ("donchian_channel", "donchian"), ("sma", "sma")):
        real = getattr(sweep_signals, name)

        def counted(*args, _real=real, _key=key, **kwargs):
            calls[_key].append(next(a for a in args if isinstance(a, int)))  # the window
            return _real(*args, **kwargs)

        monkeypatch.setattr(sweep_signals, name, counted)
    res = sweep(bars, "trend_following", {"fast": [5, 10, 20, 40], "slow": [40, 60, 90]},
                n_threads=1)
    assert res.batched and len(res.table) == 11
    assert sorted(calls["ema"]) == [5, 10, 20, 40, 60, 90]
    grid = {"lookback": [20, 40], "exit_lookback": [10, 20], "volume_period": [10, 20, 30]}
    res = sweep(bars, "momentum_breakout", grid, n_threads=1)
    assert res.batched and len(res.table) == 12
    assert sorted(calls["donchian"]) == [10, 20, 40]  # 20 is both an entry and an exit window
    assert sorted(calls["sma"]) == [10, 20, 30]
    _check_against_backtest(bars, "momentum_breakout", res, [0, 11])


def test_record_buffers_drained_without_loss(bars, monkeypatch):
    """With tiny record buffers the kernel stops for room hundreds of times per run; the
    drained sums must still equal the Backtest."""
    monkeypatch.setattr(sweep_eval, "_RECORD_CAPACITY", 8)
    res = sweep(bars, "trend_following", {"fast": [5], "slow": [20, 25]},
                risk=RiskConfig(max_trades_per_day=1000))
    assert res.table["# Trades"].min() > 50
    _check_against_backtest(bars, "trend_following", res, [0, 1],
                            risk=RiskConfig(max_trades_per_day=1000))


def test_state_reset_covers_every_field():
    """The sweep kernel resets these state arrays between parameter sets; every other field
    must be a write-before-read buffer. A new simulator field fails here until it is handled
    in sweep_nb._reset_state_nb."""
    reset = {"acct", "counters", "pos", "posi", "pend", "last_target", "asset_totals",
             "scratch", "work"}
    write_first = {"fills", "orders", "trades", "out_equity", "out_margin_ratio", "snap_bar",
                   "snap", "risk"}
    assert set(SimState._fields) == reset | write_first
    assert set(RiskState._fields) == {"acct", "ints", "forced", "proj", "prices",
                                      "decisions", "out"}


def test_fallbacks(bars):
    # a strategy without a target builder: one Backtest per set
    res = sweep(bars.iloc[:800], "mean_reversion", {"bb_period": [10, 30]}, risk=None)
    assert not res.batched
    _check_against_backtest(bars.iloc[:800], "mean_reversion", res, [0, 1], risk=None)
    # a varying parameter the builder does not handle (stop distance)
    grid = {"fast": [10], "slow": [50], "stop_loss_pct": [1.0, 2.0]}
    assert not make_job(bars, "trend_following", grid).batched
    with pytest.raises(ConfigError, match="cannot be batched"):
        make_job(bars, "trend_following", grid, batched=True)
    # several assets
    multi = generate_market(n_assets=2, n_bars=400, seed=1).ohlcv
    assert not make_job(multi, "trend_following", {"fast": [10], "slow": [50]}).batched


def test_returns_matrix_sampling(bars):
    res = sweep(bars, "trend_following", {"fast": [10, 20], "slow": [60]}, risk=None,
                max_return_rows=100)
    assert res.returns.shape == (100, 2)  # 2999 returns sampled every 30 bars, last included
    equity = Backtest(bars, "trend_following", params=_params(res, 1), benchmark=None,
                      risk=None).run().equity
    step = math.ceil((len(bars) - 1) / 100)
    idx = np.r_[np.arange(0, len(bars), step), len(bars) - 1]
    sampled = equity.to_numpy()[idx]
    np.testing.assert_allclose(res.returns[1].to_numpy(), sampled[1:] / sampled[:-1] - 1.0,
                               rtol=1e-12)
    full = sweep(bars.iloc[:500], "trend_following", {"fast": [10], "slow": [60]}, risk=None)
    assert len(full.returns) == 499  # every bar when the run is short
    sr = full.per_bar_sharpe[0] * math.sqrt(full.periods_per_year)
    assert sr == pytest.approx(full.table.loc[0, "Sharpe Ratio"], rel=1e-12)


def test_thread_count_does_not_change_numbers(bars):
    grid = {"fast": [5, 9, 14, 21, 33], "slow": [40, 80]}
    one = sweep(bars, "trend_following", grid, n_threads=1)
    two = sweep(bars, "trend_following", grid, n_threads=2)
    pd.testing.assert_frame_equal(one.table, two.table)
    pd.testing.assert_frame_equal(one.returns, two.returns)
