"""Position sizing on hand-computed cases, timing and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quantum_trading.errors import DataError
from quantum_trading.risk import (
    apply_regime_multipliers,
    atr_position_size,
    cap_cluster_exposure,
    correlation_aware_caps,
    correlation_clusters,
    exposure_to_units,
    fixed_fractional,
    kelly_fraction,
    kelly_from_trades,
    periods_per_year,
    volatility_target,
)


def test_periods_per_year_is_24_7() -> None:
    assert periods_per_year("1h") == 24 * 365.25
    assert periods_per_year("4h") == 6 * 365.25
    assert periods_per_year("1m") == 60 * 24 * 365.25
    assert periods_per_year("1w") == 365.25 / 7
    with pytest.raises(ValueError, match="timeframe"):
        periods_per_year("1 hour")


def test_fixed_fractional() -> None:
    assert fixed_fractional(1.0, fraction=0.1) == 0.1
    assert fixed_fractional(-0.5, fraction=0.2) == -0.1
    frame = pd.DataFrame({"a": [1.0, np.nan], "b": [-1.0, 0.5]})
    pd.testing.assert_frame_equal(
        fixed_fractional(frame, fraction=0.1), pd.DataFrame({"a": [0.1, 0.0], "b": [-0.1, 0.05]})
    )
    with pytest.raises(ValueError, match=r"signal must lie in \[-1, 1\]"):
        fixed_fractional(pd.Series([2.0]), fraction=0.1)
    with pytest.raises(ValueError, match="fraction must be a finite number > 0"):
        fixed_fractional(1.0, fraction=0.0)


def test_exposure_to_units() -> None:
    assert exposure_to_units(2.0, 10_000.0, 50_000.0) == pytest.approx(0.4)


@pytest.fixture
def hourly_close() -> pd.Series:
    rng = np.random.default_rng(21)
    idx = pd.date_range("2024-01-01", periods=400, freq="1h", tz="UTC")
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400))), index=idx, name="BTC")


def test_volatility_target_by_hand(hourly_close: pd.Series) -> None:
    window = 48
    got = volatility_target(
        hourly_close, target_vol_annual=0.4, window=window, timeframe="1h", max_leverage=5.0
    )
    log_r = np.diff(np.log(hourly_close.to_numpy()))
    for t in [window, 100, 399]:
        rv = np.std(log_r[t - window : t], ddof=1) * math.sqrt(8766)  # returns ending at bar t
        assert got.iloc[t] == pytest.approx(min(0.4 / rv, 5.0), rel=1e-10)
    assert (got.iloc[:window] == 0.0).all()  # flat during warm-up
    inferred = volatility_target(
        hourly_close, target_vol_annual=0.4, window=window, max_leverage=5.0
    )
    pd.testing.assert_series_equal(got, inferred)


def test_volatility_target_caps_and_signal(hourly_close: pd.Series) -> None:
    capped = volatility_target(hourly_close, target_vol_annual=50.0, window=24, max_leverage=1.5)
    assert capped.iloc[24:].eq(1.5).all()
    signal = pd.Series(np.where(np.arange(400) % 2 == 0, 1.0, -1.0), index=hourly_close.index)
    base = volatility_target(hourly_close, target_vol_annual=0.3, window=24)
    signed = volatility_target(hourly_close, target_vol_annual=0.3, window=24, signal=signal)
    np.testing.assert_allclose(signed, base * signal)
    frame = pd.concat([hourly_close, hourly_close.rename("ETH") * 2], axis=1)
    both = volatility_target(frame, target_vol_annual=0.3, window=24)
    np.testing.assert_allclose(both["BTC"], base)
    np.testing.assert_allclose(both["ETH"], base)  # scaling prices leaves vol unchanged


def test_volatility_target_is_causal(hourly_close: pd.Series) -> None:
    full = volatility_target(hourly_close, target_vol_annual=0.3, window=24, timeframe="1h")
    prefix = volatility_target(
        hourly_close.iloc[:200], target_vol_annual=0.3, window=24, timeframe="1h"
    )
    pd.testing.assert_series_equal(full.iloc[:200], prefix)


def test_volatility_target_needs_a_bar_length() -> None:
    with pytest.raises(ValueError, match="timeframe is needed"):
        volatility_target(pd.Series([1.0, 2.0, 3.0]), target_vol_annual=0.2, window=2)
    with pytest.raises(ValueError, match="target_vol_annual must be a finite number > 0"):
        volatility_target(
            pd.Series([1.0, 2.0, 3.0]), target_vol_annual=-1, window=2, timeframe="1h"
        )


def test_atr_position_size_loses_r_percent_at_the_stop() -> None:
    units = atr_position_size(25_000.0, 400.0, risk_fraction=0.02, atr_multiple=1.5)
    assert units == pytest.approx(0.02 * 25_000 / (1.5 * 400))
    assert units * 1.5 * 400 == pytest.approx(0.02 * 25_000)  # the loss at the stop
    atr = pd.Series([np.nan, 0.0, 200.0, 400.0])
    got = atr_position_size(10_000.0, atr, risk_fraction=0.01, atr_multiple=2.0)
    assert got.tolist() == [0.0, 0.0, 0.25, 0.125]
    equity = pd.Series([10_000.0, 10_000.0, 20_000.0, 20_000.0])
    assert atr_position_size(equity, atr).tolist() == [0.0, 0.0, 0.5, 0.25]
    assert atr_position_size(10_000.0, float("nan")) == 0.0
    with pytest.raises(ValueError, match=r"risk_fraction must be a number in \(0, 1\]"):
        atr_position_size(10_000.0, 100.0, risk_fraction=2.0)


@pytest.mark.parametrize(
    ("p", "b", "fraction", "cap", "want"),
    [
        (0.6, 2.0, 1.0, 1.0, 0.4),  # 0.6 - 0.4 / 2
        (0.6, 2.0, 0.5, 1.0, 0.2),
        (0.6, 2.0, 0.5, 0.15, 0.15),  # capped
        (0.5, 1.0, 1.0, 1.0, 0.0),  # no edge
        (0.3, 1.0, 0.5, 1.0, 0.0),  # negative edge floored
        (1.0, 0.5, 0.25, 1.0, 0.25),
    ],
)
def test_kelly_fraction(p: float, b: float, fraction: float, cap: float, want: float) -> None:
    assert kelly_fraction(p, b, fraction=fraction, cap=cap) == pytest.approx(want, abs=1e-15)


def test_kelly_from_trades() -> None:
    est = kelly_from_trades(pd.Series([0.03, -0.01, 0.0, 0.03, -0.02, 0.03]), fraction=0.5, cap=1.0)
    p, b = 3 / 5, 0.03 / 0.015
    assert est.win_rate == pytest.approx(p)
    assert est.payoff_ratio == pytest.approx(b)
    assert est.full_kelly == pytest.approx(p - (1 - p) / b)
    assert est.exposure == pytest.approx(0.5 * (p - (1 - p) / b))
    assert kelly_from_trades(np.array([0.01, 0.02]), fraction=1.0, cap=0.5).exposure == 0.5
    assert kelly_from_trades(np.array([-0.01, -0.02])).exposure == 0.0
    with pytest.raises(ValueError, match="win_rate must be a number in"):
        kelly_fraction(1.2, 1.0)
    with pytest.raises(ValueError, match="payoff_ratio must be a finite number > 0"):
        kelly_fraction(0.5, 0.0)
    with pytest.raises(ValueError, match="no winning or losing trade"):
        kelly_from_trades(np.zeros(3))


@pytest.fixture
def clustered_returns() -> pd.DataFrame:
    """Two blocks: BTC/ETH/SOL share one factor, GOLD/SILVER another (seed 3)."""
    rng = np.random.default_rng(3)
    crypto, metal = rng.normal(0, 0.01, (2, 500))
    noise = rng.normal(0, 0.004, (5, 500))
    return pd.DataFrame(
        {
            "BTC": crypto + noise[0],
            "ETH": crypto + noise[1],
            "SOL": crypto + noise[2],
            "GOLD": metal + noise[3],
            "SILVER": metal + noise[4],
        }
    )


def test_correlation_clusters_find_the_blocks(clustered_returns: pd.DataFrame) -> None:
    labels = correlation_clusters(clustered_returns)
    assert labels["BTC"] == labels["ETH"] == labels["SOL"]
    assert labels["GOLD"] == labels["SILVER"] != labels["BTC"]
    # distance sqrt(0.5 (1 - rho)): a tight cut leaves everything apart
    assert correlation_clusters(clustered_returns, max_distance=0.05).nunique() == 5
    assert correlation_clusters(clustered_returns, max_distance=1.0).nunique() == 1


def test_cap_cluster_exposure_by_hand() -> None:
    exposure = pd.Series({"BTC": 0.8, "ETH": -0.4, "SOL": 0.4, "GOLD": 0.3})
    clusters = pd.Series({"BTC": 1, "ETH": 1, "SOL": 1, "GOLD": 2})
    got = cap_cluster_exposure(exposure, clusters, max_cluster_gross=1.0)
    # crypto gross 1.6 > 1.0: scaled by 1 / 1.6; gold under the cap
    assert got.tolist() == pytest.approx([0.5, -0.25, 0.25, 0.3])
    assert cap_cluster_exposure(exposure, clusters, max_cluster_gross=2.0).equals(exposure)


def test_correlation_aware_caps_over_time(clustered_returns: pd.DataFrame) -> None:
    exposure = pd.DataFrame(0.4, index=clustered_returns.index, columns=clustered_returns.columns)
    got = correlation_aware_caps(exposure, clustered_returns, window=100, max_cluster_gross=0.6)
    # warm-up: one cluster of gross 2.0 scaled to 0.6
    assert got.iloc[0].tolist() == pytest.approx([0.12] * 5)
    # afterwards crypto (gross 1.2) -> 0.2 each, metals (gross 0.8) -> 0.3 each
    assert got.iloc[-1].tolist() == pytest.approx([0.2, 0.2, 0.2, 0.3, 0.3])
    sparse = correlation_aware_caps(
        exposure, clustered_returns, window=100, max_cluster_gross=0.6, every=50
    )
    assert sparse.iloc[-1].tolist() == pytest.approx([0.2, 0.2, 0.2, 0.3, 0.3])
    prefix = correlation_aware_caps(
        exposure.iloc[:300], clustered_returns.iloc[:300], window=100, max_cluster_gross=0.6
    )
    pd.testing.assert_frame_equal(got.iloc[:300], prefix)  # causal


def test_correlation_inputs_are_checked(clustered_returns: pd.DataFrame) -> None:
    bad = clustered_returns.copy()
    bad.iloc[7, 1] = np.nan
    with pytest.raises(DataError, match="column ETH at row 7"):
        correlation_clusters(bad)
    with pytest.raises(ValueError, match="linkage_method must be one of"):
        correlation_clusters(clustered_returns, linkage_method="ward")


def test_regime_multipliers() -> None:
    size = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [-1.0, -1.0, -1.0]})
    regimes = pd.Series(["trend", "chop", "crash"])
    got = apply_regime_multipliers(size, regimes, {"trend": 1.0, "chop": 0.5, "crash": 0.0})
    assert got["a"].tolist() == [1.0, 1.0, 0.0]
    assert got["b"].tolist() == [-1.0, -0.5, -0.0]
    with pytest.raises(ValueError, match="no entry for regime"):
        apply_regime_multipliers(size, regimes, {"trend": 1.0})
    partial = apply_regime_multipliers(size["a"], regimes, {"trend": 1.0}, default=0.25)
    assert partial.tolist() == [1.0, 0.5, 0.75]
    with pytest.raises(ValueError, match=r"multipliers\['chop'\] must be a finite number >= 0"):
        apply_regime_multipliers(size, regimes, {"trend": 1.0, "chop": -1.0, "crash": 0.0})
