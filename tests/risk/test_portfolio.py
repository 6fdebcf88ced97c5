"""Portfolio VaR: Euler components, Monte Carlo convergence and weight handling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from quantum_trading.risk import (
    component_var,
    monte_carlo_var_es,
    portfolio_returns,
    portfolio_var_es,
    var_es,
)

WEIGHTS = {"BTC": 0.6, "ETH": -0.3, "SOL": 0.9}


def test_portfolio_returns_are_the_weighted_sum(three_assets: pd.DataFrame) -> None:
    got = portfolio_returns(three_assets, WEIGHTS)
    want = 0.6 * three_assets["BTC"] - 0.3 * three_assets["ETH"] + 0.9 * three_assets["SOL"]
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-18)
    assert portfolio_returns(three_assets, pd.Series(WEIGHTS)[::-1]).equals(got)
    np.testing.assert_allclose(portfolio_returns(three_assets, np.array([0.6, -0.3, 0.9])), got)


@pytest.mark.parametrize("alpha", [0.95, 0.99])
def test_components_sum_to_the_gaussian_portfolio_var(
    three_assets: pd.DataFrame, alpha: float
) -> None:
    table = component_var(three_assets, WEIGHTS, alpha)
    total = portfolio_var_es(three_assets, WEIGHTS, "gaussian", alpha)
    assert table["component_var"].sum() == pytest.approx(total.var, rel=1e-12)
    assert table["component_es"].sum() == pytest.approx(total.es, rel=1e-12)
    assert table["component_var_pct"].sum() == pytest.approx(1.0, rel=1e-12)
    assert table["weight"].tolist() == [0.6, -0.3, 0.9]


def test_marginal_var_is_the_derivative(three_assets: pd.DataFrame) -> None:
    table = component_var(three_assets, WEIGHTS, 0.99)
    w = pd.Series(WEIGHTS)
    eps = 1e-6
    for asset in w.index:
        up, down = w.copy(), w.copy()
        up[asset] += eps
        down[asset] -= eps
        slope = (
            portfolio_var_es(three_assets, up, "gaussian", 0.99).var
            - portfolio_var_es(three_assets, down, "gaussian", 0.99).var
        ) / (2 * eps)
        assert table.loc[asset, "marginal_var"] == pytest.approx(slope, rel=1e-6)


def test_component_var_by_hand_for_two_assets() -> None:
    rng = np.random.default_rng(4)
    r = pd.DataFrame(rng.normal(0, 0.01, (500, 2)), columns=["a", "b"])
    w = np.array([1.0, 2.0])
    mu, cov = r.mean().to_numpy(), r.cov().to_numpy()
    sigma = np.sqrt(w @ cov @ w)
    z = stats.norm.ppf(0.99)
    want = w * (-mu + z * (cov @ w) / sigma)
    np.testing.assert_allclose(component_var(r, w)["component_var"], want, rtol=1e-12)


def test_monte_carlo_normal_converges_to_gaussian(three_assets: pd.DataFrame) -> None:
    parametric = portfolio_var_es(three_assets, WEIGHTS, "gaussian", 0.99)
    mc = monte_carlo_var_es(three_assets, WEIGHTS, 0.99, n_draws=1_000_000, seed=0)
    assert mc.var == pytest.approx(parametric.var, rel=0.01)
    assert mc.es == pytest.approx(parametric.es, rel=0.01)
    per_asset = var_es(three_assets, "gaussian", 0.99)
    np.testing.assert_allclose(mc.asset_var, per_asset.var, rtol=0.015)
    assert mc.dof is None


def test_monte_carlo_t_converges_to_the_student_t_portfolio(three_assets: pd.DataFrame) -> None:
    """A linear combination of a multivariate t is a univariate t with the same dof."""
    dof = 5.0
    mc = monte_carlo_var_es(
        three_assets, WEIGHTS, 0.99, n_draws=1_000_000, distribution="t", dof=dof
    )
    port = portfolio_returns(three_assets, WEIGHTS)
    scale = port.std(ddof=1) * np.sqrt((dof - 2) / dof)
    q = stats.t.ppf(0.99, dof)
    want_var = -port.mean() + scale * q
    want_es = -port.mean() + scale * stats.t.pdf(q, dof) * (dof + q * q) / ((dof - 1) * 0.01)
    assert mc.var == pytest.approx(want_var, rel=0.015)
    assert mc.es == pytest.approx(want_es, rel=0.015)
    assert mc.dof == dof


def test_monte_carlo_t_default_dof_is_the_moments_fit(fat_tailed: pd.Series) -> None:
    frame = pd.DataFrame({"x": fat_tailed, "y": fat_tailed.to_numpy()[::-1]})
    mc = monte_carlo_var_es(frame, {"x": 1.0, "y": 0.0}, 0.99, distribution="t")
    assert mc.dof == pytest.approx(4 + 6 / stats.kurtosis(fat_tailed), rel=1e-10)


def test_monte_carlo_is_seeded_and_handles_singular_covariance(three_assets: pd.DataFrame) -> None:
    a = monte_carlo_var_es(three_assets, WEIGHTS, seed=3)
    b = monte_carlo_var_es(three_assets, WEIGHTS, seed=3)
    assert a.var == b.var and a.es == b.es
    assert monte_carlo_var_es(three_assets, WEIGHTS, seed=4).var != a.var
    twin = three_assets.assign(BTC2=three_assets["BTC"])
    mc = monte_carlo_var_es(twin, {**WEIGHTS, "BTC2": 0.0}, n_draws=200_000)
    assert mc.var == pytest.approx(
        portfolio_var_es(three_assets, WEIGHTS, "gaussian").var, rel=0.02
    )


def test_bad_weights_and_draws(three_assets: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing \['SOL'\], unknown \['XRP'\]"):
        portfolio_returns(three_assets, {"BTC": 1.0, "ETH": 1.0, "XRP": 1.0})
    with pytest.raises(ValueError, match="one value per column"):
        portfolio_returns(three_assets, [1.0, 2.0])
    with pytest.raises(ValueError, match="weights must be finite"):
        component_var(three_assets, [1.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="n_draws must be an integer >= 1000"):
        monte_carlo_var_es(three_assets, WEIGHTS, 0.999, n_draws=500)
    with pytest.raises(ValueError, match=r"dof must be a number in \(2"):
        monte_carlo_var_es(three_assets, WEIGHTS, distribution="t", dof=2.0)
    with pytest.raises(TypeError, match="returns must be a pandas DataFrame"):
        component_var(three_assets["BTC"], [1.0])  # type: ignore[arg-type]
