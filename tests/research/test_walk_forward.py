"""Walk-forward analysis on real BTC data: no out-of-sample bar reaches the in-sample search,
and the stitched out-of-sample curve is the chain of the per-fold backtests."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quantum_trading.backtest import metrics as m
from quantum_trading.backtest.inputs import load_bars
from quantum_trading.data import generate_market
from quantum_trading.errors import ConfigError
from quantum_trading.research import walk_forward as wf_module
from quantum_trading.research.optimize import optimize
from quantum_trading.research.reports import (
    WALK_FORWARD_SECTIONS,
    write_walk_forward_report,
)
from quantum_trading.research.walk_forward import walk_forward
from quantum_trading.strategies import get_strategy

GRID = {"fast": [5, 10, 20], "slow": [30, 60]}
SYMBOL = "BTC/USDT:USDT"


@pytest.fixture(scope="module")
def btc(binance_futures_dir: Path) -> pd.DataFrame:
    """Real Binance BTC/USDT perpetual 1h bars (1,054 bars) with funding and mark joined."""
    return load_bars(binance_futures_dir, symbol=SYMBOL, timeframe="1h").bars


class Recorder:
    """trend_following that records the bar positions of every frame it is given."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self.inner = get_strategy("trend_following")
        self.name = "recorded_trend"
        self.params = self.inner.params
        self.index = bars.index
        self.phase = "oos"
        self.calls: list[tuple[str, np.ndarray]] = []

    def signals(self, data: pd.DataFrame, **params: Any):
        pos = self.index.get_indexer(data.index)
        assert (pos >= 0).all()
        self.calls.append((self.phase, pos))
        return self.inner.signals(data, **params)


@pytest.mark.parametrize("anchored", [False, True], ids=["rolling", "anchored"])
def test_no_out_of_sample_bar_is_seen_by_the_in_sample_optimisation(
        btc: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, anchored: bool) -> None:
    rec = Recorder(btc)
    given: list[np.ndarray] = []

    def recording_optimize(data: pd.DataFrame, strategy: Any, **kwargs: Any):
        given.append(btc.index.get_indexer(data.index))
        rec.phase = f"is{len(given) - 1}"
        try:
            return optimize(data, strategy, **kwargs)
        finally:
            rec.phase = "oos"

    monkeypatch.setattr(wf_module, "optimize", recording_optimize)
    res = walk_forward(btc, rec, grid=GRID, train_bars=400, test_bars=150, anchored=anchored,
                       n_workers=1, rank_oos=False)
    assert len(res.folds) == len(given) == 4
    for k in range(len(res.folds)):
        oos = res.oos_positions[k]
        assert oos.tolist() == list(range(400 + 150 * k, 400 + 150 * (k + 1)))
        # the optimiser was handed exactly the recorded bars, all before the test window
        assert np.array_equal(given[k], res.touched[k])
        assert res.touched[k].max() < oos.min()
        start = 0 if anchored else 150 * k
        assert res.touched[k].tolist() == list(range(start, oos.min()))
        # every strategy call made inside fold k's search (backtests of each grid set and the
        # causality check's prefixes) saw only those bars
        seen = [pos for phase, pos in rec.calls if phase == f"is{k}"]
        assert len(seen) >= len(res.optimizations[k].table)
        union = np.unique(np.concatenate(seen))
        assert np.isin(union, res.touched[k]).all()
        assert not np.isin(union, oos).any()
        assert union.max() < oos.min()
    # the out-of-sample runs see warm-up history and their own window, never a later bar
    oos_calls = [pos for phase, pos in rec.calls if phase == "oos"]
    assert len(oos_calls) == len(res.folds)
    for k, pos in enumerate(oos_calls):
        assert pos[-1] == res.oos_positions[k][-1]
        assert pos[0] == max(0, res.oos_positions[k][0] - 400)


def test_stitched_equity_is_the_chain_of_the_fold_backtests(btc: pd.DataFrame) -> None:
    res = walk_forward(btc, "trend_following", grid=GRID, train_bars=400, test_bars=150,
                       n_workers=1)
    initial = res.initial_cash_usd
    assert res.oos_equity.iloc[0] == initial
    assert res.oos_equity.index[0] == btc.index[399]
    assert res.oos_returns.index.equals(btc.index[400:1000])
    chained = initial
    for k, run in enumerate(res.oos_results):
        s, e = int(res.oos_positions[k][0]), int(res.oos_positions[k][-1]) + 1
        eq = run.equity
        assert eq.index[-1] == btc.index[e - 1]
        before = eq.loc[: btc.index[s - 1]]
        # flat until the first decision that fills inside the window
        assert (before == initial).all()
        assert (run.trades["entry_time"] >= btc.index[s]).all()
        growth = eq.iloc[-1] / eq.loc[btc.index[s - 1]]
        chained *= growth
        assert res.oos_equity.loc[btc.index[e - 1]] == pytest.approx(chained, rel=1e-12)
        assert res.folds.loc[k, "OOS Return [%]"] == pytest.approx(100 * (growth - 1),
                                                                   abs=1e-9)
        fold_r = m.bar_returns(eq.loc[btc.index[s - 1]:])
        pd.testing.assert_series_equal(res.oos_returns.loc[fold_r.index], fold_r,
                                       check_names=False)
    assert res.oos_equity.iloc[-1] == pytest.approx(chained, rel=1e-12)
    assert res.stats["Return [%]"] == pytest.approx(100 * (chained / initial - 1))
    assert res.stats["# Trades"] == sum(len(r.trades) for r in res.oos_results)
    # buy and hold over the same bars, bought at the first out-of-sample open
    assert res.benchmark_equity.index[0] == btc.index[399]
    assert res.benchmark_equity.index[-1] == btc.index[999]


def test_each_fold_trades_the_in_sample_best(btc: pd.DataFrame) -> None:
    res = walk_forward(btc, "trend_following", grid=GRID, train_bars=500, test_bars=250,
                       anchored=True, n_workers=1)
    assert len(res.folds) == 2
    for k, split in enumerate(res.splits):
        alone = optimize(btc.iloc[split.train], "trend_following", grid=GRID,
                         backend="local", n_workers=1)
        assert res.params[k] == alone.best_params
        assert res.oos_results[k].params == alone.best_params
        assert res.folds.loc[k, "fast"] == alone.best_params["fast"]
        assert res.folds.loc[k, "IS Objective"] == pytest.approx(
            alone.table["objective"].iloc[0])
        assert res.folds.loc[k, "IS DSR"] == pytest.approx(alone.dsr)
        assert res.folds.loc[k, "# Trials"] == 6
        assert 0.0 <= res.folds.loc[k, "OOS Rank [%]"] <= 100.0
        assert res.folds.loc[k, "IS Start"] == btc.index[0]
        assert res.folds.loc[k, "IS End"] == btc.index[split.train[-1]]


@pytest.fixture(scope="module")
def trending() -> pd.DataFrame:
    market = generate_market(n_assets=1, n_bars=2000, seed=1,
                             regime_drift_annual=(8.0, -8.0, 0.0, -20.0),
                             regime_durations_h=(240.0, 240.0, 120.0, 12.0))
    return market.ohlcv[SYMBOL]


def test_efficiency_dsr_and_pbo_on_a_market_with_an_edge(trending: pd.DataFrame) -> None:
    res = walk_forward(trending, "trend_following", grid=GRID,
                       params={"direction": "both"}, train_bars=500, test_bars=300,
                       n_workers=1, risk=None, dsr_trials=3)
    s = res.stats
    ppy = res.periods_per_year
    oos_ann = 100 * res.oos_returns.mean() * ppy
    is_ann = res.folds["IS Ann. Return [%]"].mean()
    assert s["Ann. Return [%]"] == pytest.approx(oos_ann)
    assert is_ann > 0 and s["Walk-Forward Efficiency"] == pytest.approx(oos_ann / is_ann)
    # measured: OOS Sharpe 8.3, +118 %, WFE 1.3 on this planted-trend market
    assert s["Sharpe Ratio"] > 2 and s["Return [%]"] > 20
    assert s["Deflated Sharpe Ratio"] < s["Probabilistic Sharpe Ratio"]  # 3 trials deflate
    assert 0.0 <= s["Walk-Forward PBO"] <= 1.0
    assert all(p["direction"] == "both" for p in res.params)
    assert res.searched == ("fast", "slow")
    assert s["# Folds"] == 5 and s["OOS Bars"] == 1500
    assert "walk-forward efficiency" in res.summary()


def test_optuna_folds_and_the_report(btc: pd.DataFrame, tmp_path: Path) -> None:
    res = walk_forward(btc, "trend_following", method="optuna", n_trials=6,
                       grid={"fast": [5, 10, 20], "slow": [30, 60, 100]}, train_bars=600,
                       test_bars=200, step=200, anchored=True, n_workers=1)
    assert res.method == "optuna" and len(res.folds) == 2
    for k in range(2):
        assert res.touched[k].max() < res.oos_positions[k].min()
        assert res.folds.loc[k, "# Trials"] >= 1
    out = write_walk_forward_report(res, tmp_path / "wf" / "report.html", notes=("note x",))
    text = out.read_text(encoding="utf-8")
    assert out.stat().st_size > 1_000_000  # plotly.js embedded once: opens offline
    assert len(re.findall(r"plotly\.js v\d", text)) == 1
    for title in WALK_FORWARD_SECTIONS:
        assert title.replace("&", "&amp;") in text
    assert "note x" in text and "Walk-forward PBO" in text


def test_argument_errors(btc: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"step \(100\) must be >= test_bars"):
        walk_forward(btc, "trend_following", train_bars=400, test_bars=150, step=100)
    with pytest.raises(ConfigError, match="no fold fits"):
        walk_forward(btc, "trend_following", train_bars=1000, test_bars=100)
    with pytest.raises(ConfigError, match="method"):
        walk_forward(btc, "trend_following", train_bars=400, test_bars=150, method="random")
    with pytest.raises(ConfigError, match="warmup_bars"):
        walk_forward(btc, "trend_following", train_bars=400, test_bars=150, warmup_bars=0)


def test_a_fold_without_a_feasible_set_stays_flat(btc: pd.DataFrame) -> None:
    res = walk_forward(btc, "trend_following", grid={"fast": [10], "slow": [30]},
                       train_bars=400, test_bars=300, min_trades=10_000, n_workers=1)
    assert all(p is None for p in res.params)
    assert (res.oos_returns == 0.0).all()
    assert res.folds["Note"].str.contains("flat").all()
    assert math.isnan(res.stats["Walk-Forward Efficiency"])
