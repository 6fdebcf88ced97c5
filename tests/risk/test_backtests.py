"""Kupiec and Christoffersen tests against published figures and the papers' formulas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from quantum_trading.risk import (
    backtest_var,
    christoffersen,
    kupiec_pof,
    rolling_var,
    var_exceptions,
)

CHI2_1_95 = stats.chi2.ppf(0.95, 1)  # 3.841

# Kupiec (1995), "Techniques for verifying the accuracy of risk measurement models", J. of
# Derivatives 3(2): 95% non-rejection regions for the number of exceptions N, reproduced as
# "Model backtesting, 95% nonrejection test confidence regions" in Jorion, "Value at Risk"
# (backtesting chapter, 3rd ed. 2007): (p, T) -> (a, b) meaning a < N < b.
KUPIEC_TABLE = {
    (0.01, 510): (1, 11),
    (0.01, 1000): (4, 17),
    (0.025, 255): (2, 12),
    (0.025, 510): (6, 21),
    (0.025, 1000): (15, 36),
    (0.05, 255): (6, 21),
    (0.05, 510): (16, 36),
    (0.05, 1000): (37, 65),
    (0.075, 255): (11, 28),
    (0.075, 510): (27, 51),
    (0.075, 1000): (59, 92),
    (0.10, 255): (16, 36),
    (0.10, 510): (38, 65),
    (0.10, 1000): (81, 120),
}


@pytest.mark.parametrize(("key", "bounds"), KUPIEC_TABLE.items(), ids=str)
def test_kupiec_reproduces_the_published_nonrejection_regions(
    key: tuple[float, int], bounds: tuple[int, int]
) -> None:
    """Published: N inside (a, b) is not rejected at 95%, a and b are.

    The same table lists p = 0.01, T = 255 as "N < 7": the upper bound is reproduced below;
    its missing lower bound is not (with N = 0, LR_pof = -2 * 255 * ln(0.99) = 5.13 > 3.84,
    so the formula rejects zero exceptions there, as the table's other cells would imply).
    """
    p, n_obs = key
    low, high = bounds
    alpha = 1.0 - p
    assert kupiec_pof(n_obs, low, alpha).lr_pof > CHI2_1_95
    assert kupiec_pof(n_obs, high, alpha).lr_pof > CHI2_1_95
    for n_exc in range(low + 1, high):
        assert kupiec_pof(n_obs, n_exc, alpha).lr_pof < CHI2_1_95


def test_kupiec_first_cell_upper_bound() -> None:
    assert kupiec_pof(255, 6, 0.99).lr_pof < CHI2_1_95 < kupiec_pof(255, 7, 0.99).lr_pof
    assert kupiec_pof(255, 0, 0.99).lr_pof == pytest.approx(-2 * 255 * np.log(0.99))


def test_kupiec_value_from_the_formula() -> None:
    """T = 250 days at 99% with 8 exceptions, computed from Kupiec's formula by hand."""
    t, x, p = 250, 8, 0.01
    lr = -2 * ((t - x) * np.log(1 - p) + x * np.log(p)) + 2 * (
        (t - x) * np.log(1 - x / t) + x * np.log(x / t)
    )
    res = kupiec_pof(250, 8, 0.99)
    assert res.lr_pof == pytest.approx(lr, rel=1e-12)
    assert res.lr_pof == pytest.approx(7.7336, abs=1e-4)
    assert res.p_value == pytest.approx(stats.chi2.sf(lr, 1), rel=1e-12)
    assert (res.n_obs, res.n_exceptions, res.exception_rate) == (250, 8, 0.032)


def test_kupiec_at_the_expected_rate_is_zero() -> None:
    res = kupiec_pof(1000, 10, 0.99)
    assert res.lr_pof == pytest.approx(0.0, abs=1e-9)
    assert res.p_value == pytest.approx(1.0)
    assert kupiec_pof(100, 100, 0.99).lr_pof == pytest.approx(-2 * 100 * np.log(0.01))


def _independent_lr_ind(hits: np.ndarray) -> float:
    """Christoffersen (1998), eq. for LR_ind, from Bernoulli log-likelihoods of each transition
    (scipy.stats.bernoulli), not from the transition counts."""
    prev, cur = hits[:-1], hits[1:]
    pi = cur.mean()
    pi0 = cur[~prev].mean() if (~prev).any() else 0.0
    pi1 = cur[prev].mean() if prev.any() else 0.0
    restricted = stats.bernoulli.logpmf(cur, pi).sum()
    markov = np.where(
        prev, stats.bernoulli.logpmf(cur, pi1), stats.bernoulli.logpmf(cur, pi0)
    ).sum()
    return -2 * (restricted - markov)


def test_christoffersen_constructed_example() -> None:
    """A constructed example (no published one is reproduced here): 250 days at 99% with 6
    exceptions, two of them clustered as pairs (days 50-51 and 180-181) and two isolated.

    Transition counts: n01 = 4, n11 = 2, n10 = 4, n00 = 239. Expected statistics come from
    the formulas of Christoffersen (1998) evaluated independently with scipy.stats.
    """
    hits = np.zeros(250, dtype=bool)
    hits[[50, 51, 120, 180, 181, 230]] = True
    res = christoffersen(hits, 0.99)
    assert (res.n00, res.n01, res.n10, res.n11) == (239, 4, 4, 2)
    lr_ind = _independent_lr_ind(hits)
    assert res.lr_ind == pytest.approx(lr_ind, rel=1e-10)
    lr_pof = kupiec_pof(250, 6, 0.99).lr_pof
    assert res.lr_pof == lr_pof
    assert res.lr_cc == pytest.approx(lr_pof + lr_ind, rel=1e-12)
    assert res.p_value_ind == pytest.approx(stats.chi2.sf(lr_ind, 1), rel=1e-10)
    assert res.p_value_cc == pytest.approx(stats.chi2.sf(lr_pof + lr_ind, 2), rel=1e-10)
    # clustering of 2 pairs out of 6 exceptions is strong evidence against independence
    assert res.lr_ind > stats.chi2.ppf(0.99, 1)


def test_christoffersen_independent_hits_and_edge_cases() -> None:
    spread = np.zeros(1000, dtype=bool)
    spread[::100] = True  # 10 isolated exceptions: no pairs
    res = christoffersen(spread, 0.99)
    assert res.n11 == 0
    assert res.lr_ind == pytest.approx(_independent_lr_ind(spread), rel=1e-10, abs=1e-12)
    assert res.p_value_ind > 0.5
    none = christoffersen(np.zeros(300, dtype=bool), 0.99)
    assert none.lr_ind == 0.0 and np.isfinite(none.lr_cc)
    assert christoffersen(np.ones(10, dtype=bool), 0.99).lr_ind == 0.0
    assert christoffersen([0, 1, 1, 0], 0.9).n11 == 1  # 0/1 accepted


def test_backtest_timing_uses_the_previous_bars_var() -> None:
    r = pd.Series([0.0, -0.03, -0.03, 0.0, -0.05])
    var = pd.Series([np.nan, 0.04, 0.02, 0.02, 0.06])
    hits = var_exceptions(r, var)
    # bar 1 has no forecast (var[0] is NaN); bar 2 tested against var[1] = 0.04 -> no
    # exception; bar 3 against 0.02 -> no; bar 4 (-5%) against var[3] = 0.02 -> exception
    assert hits.index.tolist() == [2, 3, 4]
    assert hits.tolist() == [False, False, True]
    r_equal = pd.Series([0.0, -0.02])
    assert var_exceptions(r_equal, pd.Series([0.02, 0.02])).tolist() == [False]  # equal: no


def test_backtest_var_on_a_correct_model() -> None:
    r = pd.Series(np.random.default_rng(12).normal(0.0, 0.01, 5_250))
    bt = backtest_var(r, rolling_var(r, 250, "gaussian", 0.99), 0.99)
    assert bt.kupiec.n_obs == 5_000
    assert 25 <= bt.kupiec.n_exceptions <= 80
    assert bt.kupiec.p_value > 0.01 and bt.christoffersen.p_value_cc > 0.01
    assert bt.exceptions.sum() == bt.kupiec.n_exceptions


def test_bad_backtest_inputs() -> None:
    with pytest.raises(ValueError, match="n_exceptions must be an integer in"):
        kupiec_pof(10, 11, 0.99)
    with pytest.raises(ValueError, match="n_obs must be an integer >= 1"):
        kupiec_pof(0, 0, 0.99)
    with pytest.raises(ValueError, match="alpha must be"):
        kupiec_pof(10, 1, 1.5)
    with pytest.raises(ValueError, match="exceptions must hold booleans"):
        christoffersen(np.array([0.0, 0.5, 1.0]), 0.99)
    with pytest.raises(ValueError, match="var must be on the index of returns"):
        var_exceptions(pd.Series([0.0, 0.1]), pd.Series([0.1, 0.1], index=[5, 6]))
