"""Metrics against independent computations: hand-worked series, empyrical-style formulas
written out here, scipy for the PSR's moments and normal CDF, and backtesting.py's
``compute_stats`` on the same equity curve and trades."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from quantum_trading.backtest import STATS_KEYS, BacktestResult
from quantum_trading.backtest import metrics as m

H1 = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")


# ------------------------------------------------------------------ hand-worked small series
def test_returns_drawdown_and_duration_by_hand() -> None:
    equity = pd.Series([100.0, 110.0, 99.0, 104.5, 121.0, 110.0], index=H1)
    assert m.bar_returns(equity).round(12).tolist() == [0.1, -0.1, 0.055555555556, 0.157894736842,
                                                        -0.090909090909]
    assert m.total_return_pct(equity) == pytest.approx(10.0)
    assert m.total_return_pct(equity, initial_usd=50.0) == pytest.approx(120.0)
    # peak 110 at 01:00, trough 99 (−10 %); new peak 121 at 04:00; 110 at 05:00 is −9.09 %
    assert m.drawdown(equity).round(6).tolist() == [0.0, 0.0, -0.1, -0.05, 0.0, -0.090909]
    assert m.max_drawdown_pct(equity) == pytest.approx(-10.0)
    # under water 01:00 → 04:00 (3 h), then 04:00 → the end, unrecovered (1 h)
    assert m.max_drawdown_duration(equity) == pd.Timedelta("3h")
    assert m.max_drawdown_duration(pd.Series([1.0, 2.0, 3.0], index=H1[:3])) == pd.Timedelta(0)
    # unrecovered drawdown counts to the last bar
    assert m.max_drawdown_duration(pd.Series([1.0, 2.0, 1.0, 1.5, 1.9, 1.0], index=H1)) == \
        pd.Timedelta("4h")


def test_bankrupt_equity_gives_zero_returns_after_zero() -> None:
    r = m.bar_returns(pd.Series([100.0, 50.0, 0.0, 0.0], index=H1[:4]))
    assert r.tolist() == [-0.5, -1.0, 0.0]
    eq = pd.Series([100.0, 0.0], index=pd.to_datetime(["2023-01-01", "2024-01-01"], utc=True))
    assert m.cagr_pct(eq) == -100.0


def test_trade_metrics_by_hand() -> None:
    pnl = np.array([30.0, -10.0, 20.0, -20.0, 0.0])
    assert m.win_rate_pct(pnl) == pytest.approx(40.0)  # 2 of 5
    assert m.profit_factor(pnl) == pytest.approx(50.0 / 30.0)
    assert m.payoff_ratio(pnl) == pytest.approx(25.0 / 15.0)
    assert m.expectancy_usd(pnl) == pytest.approx(4.0)
    # expectancy = win rate × avg win − loss rate × avg loss
    assert m.expectancy_usd(pnl) == pytest.approx(0.4 * 25.0 - 0.4 * 15.0)
    assert math.isnan(m.win_rate_pct(np.array([])))
    assert m.profit_factor(np.array([5.0])) == math.inf
    assert math.isnan(m.payoff_ratio(np.array([5.0, 3.0])))


def test_exposure_and_turnover_by_hand() -> None:
    # trades on bars 2..4 and 3..6 overlap: bars 2..6 held = 5 of 10
    assert m.exposure_time_pct(np.array([2, 3]), np.array([4, 6]), 10) == pytest.approx(50.0)
    assert m.turnover(np.array([5_000.0, 5_000.0, 10_000.0]),
                      np.array([9_000.0, 11_000.0])) == pytest.approx(2.0)


def test_cagr_and_calmar_by_hand() -> None:
    idx = pd.to_datetime(["2023-01-01 00:00", "2025-01-01 12:00"], utc=True)  # 731.5 d = 2.0027 y
    eq = pd.Series([100.0, 144.0], index=idx)
    years = 731.5 / 365.25
    assert m.cagr_pct(eq) == pytest.approx(100.0 * (1.44 ** (1 / years) - 1))
    assert m.calmar_ratio(20.0, -10.0) == 2.0
    assert math.isnan(m.calmar_ratio(20.0, 0.0))


def test_monthly_returns_chain_to_the_total() -> None:
    idx = pd.date_range("2024-01-15", periods=24 * 80, freq="1h", tz="UTC")
    rng = np.random.default_rng(0)
    eq = pd.Series(1_000.0 * np.exp(np.cumsum(rng.normal(0, 0.002, len(idx)))), index=idx)
    monthly = m.monthly_returns_pct(eq, initial_usd=1_000.0)
    assert list(monthly.index.month) == [1, 2, 3, 4]
    chained = np.prod(1 + monthly.to_numpy() / 100) - 1
    assert chained * 100 == pytest.approx(m.total_return_pct(eq, 1_000.0))


# ------------------------------------------------------------------ annualisation
def test_periods_per_year_from_the_real_bar_frequency() -> None:
    assert m.periods_per_year(pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC")) == 8766.0
    assert m.periods_per_year(pd.date_range("2024-01-01", periods=50, freq="4h", tz="UTC")) == 2191.5
    assert m.periods_per_year(pd.date_range("2024-01-01", periods=50, freq="1D", tz="UTC")) == 365.25
    assert m.periods_per_year(pd.date_range("2024-01-01", periods=50, freq="1min", tz="UTC")) == \
        pytest.approx(525_960.0)
    # the median spacing shrugs off a few gaps
    idx = pd.date_range("2024-01-01", periods=100, freq="1h", tz="UTC").delete([10, 11, 50])
    assert m.periods_per_year(idx) == 8766.0
    assert math.isnan(m.periods_per_year(idx[:1]))


def test_sharpe_is_sqrt_periods_times_the_per_bar_sharpe_for_1h_bars() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.0002, 0.01, 2_000)
    per_bar = r.mean() / r.std(ddof=1)
    ppy = m.periods_per_year("1h")
    assert ppy == 8766.0
    assert m.sharpe_ratio(r, 1.0) == pytest.approx(per_bar, rel=1e-12)
    assert m.sharpe_ratio(r, ppy) == pytest.approx(per_bar * math.sqrt(8766.0), rel=1e-12)
    assert m.annualized_volatility_pct(r, ppy) == pytest.approx(
        100 * r.std(ddof=1) * math.sqrt(8766.0), rel=1e-12)


# ------------------------------------------------------------------ empyrical-style formulas
def _empyrical_sharpe(r: np.ndarray, ann: float) -> float:
    return np.mean(r) / np.std(r, ddof=1) * np.sqrt(ann)


def _empyrical_sortino(r: np.ndarray, ann: float) -> float:
    downside = np.clip(r, -np.inf, 0.0)
    downside_risk = np.sqrt(np.mean(np.square(downside))) * np.sqrt(ann)
    return np.mean(r) * ann / downside_risk


def _empyrical_max_drawdown(r: np.ndarray) -> float:
    cum = np.cumprod(1 + r)
    cum = np.insert(cum, 0, 1.0)
    running_max = np.maximum.accumulate(cum)
    return float(np.min((cum - running_max) / running_max))


def _empyrical_annual_return(r: np.ndarray, ann: float) -> float:
    return float(np.prod(1 + r) ** (ann / len(r)) - 1)


def test_ratios_match_empyrical_style_formulas() -> None:
    rng = np.random.default_rng(7)
    r = rng.standard_t(4, 3_000) * 0.004 + 0.0001
    idx = pd.date_range("2024-01-01", periods=len(r) + 1, freq="1h", tz="UTC")
    equity = pd.Series(10_000.0 * np.r_[1.0, np.cumprod(1 + r)], index=idx)
    ann = m.periods_per_year(idx)
    returns = m.bar_returns(equity).to_numpy()
    np.testing.assert_allclose(returns, r, rtol=1e-9, atol=1e-15)
    assert m.sharpe_ratio(returns, ann) == pytest.approx(_empyrical_sharpe(r, ann), rel=1e-9)
    assert m.sortino_ratio(returns, ann) == pytest.approx(_empyrical_sortino(r, ann), rel=1e-9)
    assert m.max_drawdown_pct(equity) / 100 == pytest.approx(_empyrical_max_drawdown(r), rel=1e-9)
    cagr = m.cagr_pct(equity)
    assert cagr / 100 == pytest.approx(_empyrical_annual_return(r, ann), rel=1e-9)
    calmar = _empyrical_annual_return(r, ann) / abs(_empyrical_max_drawdown(r))
    assert m.calmar_ratio(cagr, m.max_drawdown_pct(equity)) == pytest.approx(calmar, rel=1e-9)
    window = 24 * 30
    rolling = m.rolling_sharpe(pd.Series(r), window, ann)
    last = r[-window:]
    assert rolling.iloc[-1] == pytest.approx(_empyrical_sharpe(last, ann), rel=1e-9)
    assert rolling.iloc[: window - 1].isna().all()


# ------------------------------------------------------------------ probabilistic Sharpe ratio
def test_psr_matches_the_paper_formula_computed_by_hand() -> None:
    rng = np.random.default_rng(3)
    r = rng.standard_t(5, 1_500) * 0.01 + 0.0008
    sr = r.mean() / r.std(ddof=1)
    skew = sps.skew(r, bias=True)
    kurt = sps.kurtosis(r, fisher=False, bias=True)  # Pearson: 3 for a normal law
    n = len(r)
    z = sr * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    expected = sps.norm.cdf(z)
    assert m.return_moments(r) == pytest.approx((skew, kurt, n), rel=1e-12)
    assert m.probabilistic_sharpe_ratio(r) == pytest.approx(expected, rel=1e-12)
    # against a non-zero benchmark Sharpe ratio
    z_star = (sr - 0.05) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    assert m.probabilistic_sharpe_ratio(r, 0.05) == pytest.approx(sps.norm.cdf(z_star), rel=1e-12)


def test_psr_worked_example() -> None:
    # SR = 0.1 per bar, n = 101, normal returns (γ3 = 0, γ4 = 3):
    # z = 0.1·√100 / √(1 + 0.5·0.01) = 1 / √1.005 = 0.997509; Φ(z) = 0.840741
    assert m.psr_from_moments(0.1, 101, 0.0, 3.0) == pytest.approx(0.840741, abs=1e-6)
    # negative skew and fat tails make the same Sharpe ratio less convincing
    assert m.psr_from_moments(0.1, 101, -1.0, 8.0) < m.psr_from_moments(0.1, 101, 0.0, 3.0)
    assert math.isnan(m.probabilistic_sharpe_ratio([0.01]))


# ------------------------------------------------------------------ backtesting.py parity
def _backtesting_stats(result: BacktestResult) -> pd.Series:
    """backtesting.py's compute_stats on our equity curve and trades.

    Its Profit Factor and Expectancy are computed on the ``ReturnPct`` column; giving it the
    net PnL there makes them the PnL-based quantities we report (Expectancy then reads
    ``100 × mean PnL``).
    """
    from backtesting._stats import compute_stats

    t = result.trades
    trades = pd.DataFrame({
        "Size": np.where(t["direction"] == "long", 1.0, -1.0) * t["size"],
        "EntryBar": t["entry_bar"], "ExitBar": t["exit_bar"],
        "EntryPrice": t["entry_price"], "ExitPrice": t["exit_price"],
        "PnL": t["pnl_usd"], "ReturnPct": t["pnl_usd"],
        "EntryTime": t["entry_time"], "ExitTime": t["exit_time"],
    })
    trades["Duration"] = trades["ExitTime"] - trades["EntryTime"]
    bars = result.bars[result.symbols[0]]
    ohlc = bars[["open", "high", "low", "close"]].rename(columns=str.capitalize)
    return compute_stats(trades, result.equity.to_numpy(), ohlc, None)


@pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek is deprecated")
def test_stats_match_backtesting_py_on_the_same_equity_and_trades(momentum_result) -> None:
    ours = momentum_result.stats
    theirs = _backtesting_stats(momentum_result)
    assert list(ours.index) == list(STATS_KEYS)
    assert ours["# Trades"] == theirs["# Trades"] > 20
    for key in ("Start", "End", "Duration", "Max. Drawdown Duration"):
        assert ours[key] == theirs[key], key
    for key in ("Exposure Time [%]", "Equity Final [$]", "Equity Peak [$]", "Return [%]",
                "CAGR [%]", "Max. Drawdown [%]", "Win Rate [%]", "Profit Factor"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-9), key
    assert ours["Expectancy [$]"] == pytest.approx(theirs["Expectancy [%]"] / 100, rel=1e-9)
    assert ours["Avg. Holding Time"].ceil("h") == theirs["Avg. Trade Duration"]
