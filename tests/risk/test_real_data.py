"""VaR/ES on the real Binance BTC and ETH hourly returns (July-August 2023, 1,053 returns)."""

from __future__ import annotations

import pandas as pd
import pytest

from quantum_trading.risk import (
    backtest_var,
    component_var,
    fit_student_t,
    monte_carlo_var_es,
    rolling_var,
    var_es,
)

METHODS = ["historical", "gaussian", "student_t", "cornish_fisher", "fhs"]


def test_historical_var99_is_plausible(real_hourly: pd.DataFrame) -> None:
    assert len(real_hourly) == 1_053
    var, es = var_es(real_hourly, "historical", 0.99)
    for symbol in ("BTC", "ETH"):
        assert 0.003 < var[symbol] < 0.05, symbol
        assert var[symbol] <= es[symbol] < 0.1


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_sane_loss(real_hourly: pd.DataFrame, method: str) -> None:
    var, es = var_es(real_hourly, method, 0.99)
    assert ((var > 0.002) & (var < 0.05)).all()
    assert (es >= var).all()


def test_hourly_crypto_returns_are_fat_tailed(real_hourly: pd.DataFrame) -> None:
    fits = fit_student_t(real_hourly)
    assert ((fits["dof"] > 1.5) & (fits["dof"] < 6)).all()
    gauss = var_es(real_hourly, "gaussian", 0.99)
    hist = var_es(real_hourly, "historical", 0.99)
    assert (hist.es > gauss.es).all()  # the normal understates the tail


@pytest.mark.parametrize("method", ["historical", "student_t", "fhs"])
@pytest.mark.parametrize("symbol", ["BTC", "ETH"])
def test_rolling_var_backtest_is_not_absurd(
    real_hourly: pd.DataFrame, method: str, symbol: str
) -> None:
    r = real_hourly[symbol]
    bt = backtest_var(r, rolling_var(r, 500, method, 0.99), 0.99)
    assert bt.kupiec.n_obs == 553
    assert bt.kupiec.n_exceptions <= 4 * 5.53
    assert bt.kupiec.p_value > 0.01
    assert bt.christoffersen.p_value_cc > 0.01


def test_portfolio_measures_on_real_data(real_hourly: pd.DataFrame) -> None:
    weights = {"BTC": 0.5, "ETH": 0.5}
    table = component_var(real_hourly, weights, 0.99)
    assert (table["component_var"] > 0).all()  # BTC and ETH move together: no hedge
    mc = monte_carlo_var_es(real_hourly, weights, 0.99, distribution="t")
    single = var_es(real_hourly, "historical", 0.99).var
    assert mc.var < single.max()  # diversification, however small
