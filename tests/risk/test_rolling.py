"""Rolling VaR/ES: each value is the point estimate of its window, and nothing looks ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantum_trading.errors import DataError
from quantum_trading.risk import (
    HorizonScalingWarning,
    rolling_es,
    rolling_var,
    rolling_var_es,
    var_es,
)

METHODS = ["historical", "gaussian", "student_t", "cornish_fisher", "fhs"]


@pytest.fixture(scope="module")
def returns(fat_tailed: pd.Series) -> pd.Series:
    return fat_tailed.iloc[:600]


@pytest.mark.parametrize("quantile_method", ["inverted_cdf", "linear"])
@pytest.mark.parametrize("method", METHODS)
def test_each_value_is_the_point_estimate_of_its_window(
    returns: pd.Series, method: str, quantile_method: str
) -> None:
    window = 150
    frame = rolling_var_es(returns, window, method, 0.99, quantile_method=quantile_method)
    assert frame.index.equals(returns.index)
    assert frame.iloc[: window - 1].isna().all().all()
    assert frame.iloc[window - 1 :].notna().all().all()
    for t in [window - 1, 300, 451, len(returns) - 1]:
        point = var_es(
            returns.iloc[t - window + 1 : t + 1],
            method,
            0.99,
            quantile_method=quantile_method,
            t_fit="moments",
        )
        assert frame["var"].iloc[t] == pytest.approx(point.var, rel=1e-12, abs=1e-15)
        assert frame["es"].iloc[t] == pytest.approx(point.es, rel=1e-12, abs=1e-15)


def test_student_t_mle_per_window(returns: pd.Series) -> None:
    r = returns.iloc[:260]
    frame = rolling_var_es(r, 200, "student_t", 0.99, t_fit="mle")
    for t in [199, 230, 259]:
        point = var_es(r.iloc[t - 199 : t + 1], "student_t", 0.99, t_fit="mle")
        assert frame["var"].iloc[t] == pytest.approx(point.var, rel=1e-12)
        assert frame["es"].iloc[t] == pytest.approx(point.es, rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_causal_prefix_gives_the_same_values(returns: pd.Series, method: str) -> None:
    full = rolling_var_es(returns, 120, method, 0.975)
    prefix = rolling_var_es(returns.iloc[:400], 120, method, 0.975)
    pd.testing.assert_frame_equal(full.iloc[:400], prefix)


def test_rolling_historical_with_ties_matches_sorting() -> None:
    r = pd.Series(np.random.default_rng(2).integers(-5, 5, 500) / 100.0)
    got = rolling_var(r, 100, "historical", 0.95)
    for t in range(99, 500, 37):
        window = np.sort(r.iloc[t - 99 : t + 1].to_numpy())
        assert got.iloc[t] == -window[4]


def test_names_and_horizon(returns: pd.Series) -> None:
    assert rolling_var(returns, 200, "gaussian").name == "var_gaussian"
    assert rolling_es(returns, 200, "fhs").name == "es_fhs"
    with pytest.warns(HorizonScalingWarning):
        ten = rolling_var(returns, 200, "historical", horizon_bars=10)
    one = rolling_var(returns, 200, "historical")
    np.testing.assert_allclose(ten.dropna(), np.sqrt(10) * one.dropna(), rtol=1e-12)


def test_window_too_small_or_too_large(returns: pd.Series) -> None:
    with pytest.raises(
        ValueError, match=r"window has 50 observations; historical VaR .* at least 100"
    ):
        rolling_var(returns, 50, "historical", 0.99)
    with pytest.raises(ValueError, match="window has 5 observations"):
        rolling_var(returns, 5, "gaussian", 0.99)
    with pytest.raises(ValueError, match="window must be <= len"):
        rolling_var(returns, 601, "gaussian")
    with pytest.raises(ValueError, match="window must be an integer"):
        rolling_var(returns, 100.0, "gaussian")  # type: ignore[arg-type]


def test_nan_inside_returns_is_refused(returns: pd.Series) -> None:
    bad = returns.copy()
    bad.iloc[10] = np.nan
    with pytest.raises(DataError, match=r"returns holds non-finite values .* row 10"):
        rolling_var(bad, 100, "gaussian")
