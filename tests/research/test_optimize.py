"""Optimisation: recovers a planted edge, calls noise insignificant, refuses look-ahead,
reports constraints, writes the report, and runs from the command line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.backtest import Backtest
from quantum_trading.cli.main import main
from quantum_trading.research import optimize as optimize_mod
from quantum_trading.research import sweep as sweep_mod
from quantum_trading.research.bias import LookAheadError
from quantum_trading.research.optimize import Constraints, optimize, significance_verdict
from quantum_trading.research.report import SECTION_TITLES, write_optimization_report
from quantum_trading.strategies import strategy_from_function

PLANTED = (10, 60)
COARSE = {"fast": [5, 10, 20, 40], "slow": [30, 60, 120, 200]}  # values a factor 2 apart


def _frame(close: np.ndarray, rng: np.random.Generator, sigma: float) -> pd.DataFrame:
    n = len(close)
    open_ = np.r_[close[0], close[:-1]]
    wig = np.abs(rng.normal(0.0, sigma / 4, (2, n)))
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wig[0]),
                         "low": np.minimum(open_, close) * (1 - wig[1]), "close": close,
                         "volume": 1000.0}, index=idx)


def planted_market(n_bars: int = 10_000, fast: int = PLANTED[0], slow: int = PLANTED[1],
                   mu: float = 0.001, sigma: float = 0.01, seed: int = 3) -> pd.DataFrame:
    """Hourly bars whose next return has a drift of +mu while EMA(fast) > EMA(slow) of the
    closes so far, −mu while below (EMAs seeded with the SMA, as the strategy's), plus
    Gaussian noise of sigma: the EMA(fast/slow) cross rule earns the drift, other periods only
    the part of it their positions happen to share."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(n_bars)
    close = np.empty(n_bars)
    close[0] = 100.0
    kf, ks = 2.0 / (fast + 1), 2.0 / (slow + 1)
    ef = es = math.nan
    for t in range(1, n_bars):
        x = close[t - 1]
        if t - 1 == fast - 1:
            ef = float(close[:fast].mean())
        elif t - 1 >= fast:
            ef = ef + kf * (x - ef)
        if t - 1 == slow - 1:
            es = float(close[:slow].mean())
        elif t - 1 >= slow:
            es = es + ks * (x - es)
        drift = mu if ef > es else (-mu if ef < es else 0.0)
        close[t] = x * math.exp(drift + sigma * eps[t])
    return _frame(close, rng, sigma)


def noise_market(n_bars: int = 10_000, sigma: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """A driftless random walk: log returns demeaned, so the path ends where it started and
    a long-only rule cannot look skilled by riding a realised trend."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(n_bars) * sigma
    r -= r.mean()
    return _frame(100.0 * np.exp(np.cumsum(r)), rng, sigma)


@pytest.fixture(scope="module")
def planted() -> pd.DataFrame:
    return planted_market()


@pytest.fixture(scope="module")
def grid_result(planted):
    return optimize(planted, "trend_following", grid=COARSE, risk=None, min_trades=5,
                    n_workers=1)


def test_grid_recovers_the_planted_parameters(grid_result, planted):
    res = grid_result
    assert (res.best_params["fast"], res.best_params["slow"]) == PLANTED
    assert res.batched and res.n_trials == 15 and res.searched == ("fast", "slow")
    best = res.table.iloc[0]
    assert (best["fast"], best["slow"]) == PLANTED and bool(best["feasible"])
    # the objective is the backtest's Sharpe ratio, and best_stats is the full backtest
    stats = Backtest(planted, "trend_following", params=res.best_params, risk=None).run().stats
    assert best["objective"] == pytest.approx(stats["Sharpe Ratio"], rel=1e-12)
    pd.testing.assert_series_equal(res.best_stats, stats)
    # significant, and not an artefact of selection
    assert res.dsr >= 0.95 and res.verdict.startswith("The best result is significant")
    assert res.pbo is not None and res.pbo.pbo < 0.2
    assert res.best_sharpe > res.sr_benchmark
    # the table is sorted best first
    obj = res.table["objective"].to_numpy()
    assert np.all(np.diff(obj) <= 0)


def test_optuna_recovers_the_planted_parameters(planted):
    kwargs = {"method": "optuna", "grid": COARSE, "n_trials": 12, "risk": None,
              "min_trades": 5, "seed": 0, "n_workers": 1}
    res = optimize(planted, "trend_following", **kwargs)
    assert (res.best_params["fast"], res.best_params["slow"]) == PLANTED
    assert len(res.table) == 12  # 12 distinct sets of the 15
    assert res.dsr >= 0.95
    again = optimize(planted, "trend_following", **kwargs)  # seeded: the same trials
    pd.testing.assert_frame_equal(res.table, again.table)


def test_optuna_prunes_on_data_chunks():
    res = optimize(noise_market(n_bars=4000), "trend_following", method="optuna",
                   n_trials=20, risk=None, seed=1, n_workers=1)
    assert len(res.table) == 20 and res.n_pruned > 0  # median pruning on data chunks
    assert set(res.table["state"]) == {"complete", "pruned"}
    pruned = res.table[res.table["state"] == "pruned"]
    assert np.isneginf(pruned["objective"]).all() and not pruned["feasible"].any()
    assert pruned["reason"].str.startswith("pruned after chunk").all()
    assert pruned[list(optimize_mod.TABLE_STATS)].isna().all().all()
    assert res.n_trials == 20 - res.n_pruned == len(res.trial_sharpes)


def test_noise_is_not_significant():
    res = optimize(noise_market(), "trend_following",
                   grid={"fast": [5, 7, 10, 14, 20, 28, 40], "slow": [30, 42, 60, 85, 120, 170]},
                   risk=None, n_workers=1)
    assert res.n_trials == 41
    assert res.dsr < 0.95
    assert "the best result is not significant" in res.verdict.lower()
    assert res.pbo is not None and 0.0 <= res.pbo.pbo <= 1.0


def test_constraints_exclude_and_report(grid_result, planted):
    res = optimize(planted, "trend_following", grid=COARSE, risk=None, n_workers=1,
                   min_trades=50, max_drawdown_pct=35.0)
    t = res.table
    few = t["# Trades"] < 50
    deep = t["Max. Drawdown [%]"] < -35.0
    assert few.any() and (~few).any()
    bad = few | deep
    assert (t.loc[bad, "feasible"] == False).all()  # noqa: E712
    assert np.isneginf(t.loc[bad, "objective"]).all()
    assert t.loc[few, "reason"].str.startswith("fewer than 50 trades").all()
    assert (deep & ~few).any()
    assert t.loc[deep & ~few, "reason"].str.contains("deeper than 35%").all()
    assert 0 < (~bad).sum() < len(t)
    assert t["feasible"].iloc[: (~bad).sum()].all()  # feasible sets first
    assert (res.best_params["fast"], res.best_params["slow"]) == PLANTED
    assert res.best_stats["# Trades"] >= 50
    none = optimize(planted, "trend_following", grid=COARSE, risk=None, n_workers=1,
                    min_trades=10**6)
    assert none.best_params is None and not none.table["feasible"].any()
    assert none.verdict.startswith("No parameter set met the constraints")
    assert Constraints(max_drawdown_pct=10).violation(
        {"# Trades": 5, "Max. Drawdown [%]": -12.5}) == "drawdown 12.5% deeper than 10%"


def test_look_ahead_is_refused_before_any_search(planted, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the search ran before the causality check")

    monkeypatch.setattr(optimize_mod, "evaluate_chunk", forbidden)
    monkeypatch.setattr(optimize_mod, "evaluate_trial", forbidden)
    monkeypatch.setattr(sweep_mod, "evaluate_chunk", forbidden)
    peek = strategy_from_function(
        lambda df, lag=1: (df["close"].shift(-lag) > df["close"]).astype(float), name="peek")
    for method in ("grid", "optuna"):
        with pytest.raises(LookAheadError, match="refused"):
            optimize(planted.iloc[:2000], peek, method=method, n_trials=3, n_workers=1)


def test_heatmap_and_report(grid_result, tmp_path: Path):
    res = grid_result
    surf = res.surface("fast", "slow")
    assert surf.shape == (4, 4)
    assert surf.loc[60, 10] == pytest.approx(res.table.iloc[0]["objective"])
    assert math.isnan(surf.loc[30, 40])  # fast < slow: never run
    fig = res.heatmap("fast", "slow")
    assert fig.data[0].type == "heatmap" and np.asarray(fig.data[0].z).shape == (4, 4)
    out = write_optimization_report(res, tmp_path / "opt.html")
    text = out.read_text()
    for title in SECTION_TITLES:
        assert title in text
    assert "Deflated Sharpe ratio" in text and "heatmap" in text
    assert res.verdict.split(":")[0] in text


def test_verdict_words():
    assert significance_verdict(0.97, 10).startswith("The best result is significant")
    assert "not significant" in significance_verdict(0.5, 10, pbo=0.7)
    assert "likely overfit" in significance_verdict(0.5, 10, pbo=0.7)
    assert significance_verdict(math.nan, 1).startswith("Significance unknown")


def test_cli_optimize_grid_and_optuna(capsys, binance_futures_dir: Path, tmp_path: Path):
    report = tmp_path / "opt.html"
    code = main(["optimize", "--strategy", "trend_following", "--data", str(binance_futures_dir),
                 "--symbol", "BTC/USDT:USDT", "--grid", "fast=5:20:4", "--grid", "slow=40,80",
                 "--min-trades", "3", "--max-dd", "50", "--workers", "1", "--report",
                 str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "best 8 of 8 parameter sets" in out and "deflated Sharpe ratio" in out
    assert "best parameters: fast=" in out and report.is_file()
    assert "Parameter surface" in report.read_text()
    code = main(["optimize", "-s", "momentum_breakout", "-d", str(binance_futures_dir),
                 "--symbol", "BTC/USDT:USDT", "--trials", "6", "--param", "direction=both",
                 "--objective", "Return [%]", "--no-risk", "--report", str(tmp_path / "o.html")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "optuna search of momentum_breakout" in out
    code = main(["optimize", "-s", "trend_following", "-d", str(binance_futures_dir),
                 "--symbol", "BTC/USDT:USDT", "--objective", "Sharpe", "--report",
                 str(tmp_path / "x.html")])
    assert code == 1 and "objective 'Sharpe'" in capsys.readouterr().out
