"""Point VaR/ES of every method against independent computations.

Independent means: sorted samples and exact fractions for the historical conventions,
``np.quantile`` and ``scipy.integrate.quad`` for the linear one, ``scipy.stats`` for the
parametric quantiles, densities and tail expectations, a hand-written Cornish-Fisher formula and
a plain-Python EWMA loop for FHS.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from quantum_trading.errors import DataError
from quantum_trading.risk import (
    HorizonScalingWarning,
    expected_shortfall,
    fit_student_t,
    value_at_risk,
    var_es,
)
from quantum_trading.risk.measures_nb import NU_MAX, digamma_nb, trigamma_nb

ALPHAS = [0.9, 0.95, 0.975, 0.99]


def _order_statistic_var_es(r: np.ndarray, alpha: float) -> tuple[float, float]:
    """VaR = -(the ceil(n(1-alpha))-th smallest return), ES = Acerbi-Tasche, in exact fractions
    of the decimal alpha."""
    s = np.sort(r)
    x = len(r) * (1 - Fraction(str(alpha)))
    k = math.ceil(x)
    es = -(s[: k - 1].sum() + float(x - (k - 1)) * s[k - 1]) / float(x)
    return -s[k - 1], es


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("n", [100, 250, 1_000, 1_003])
def test_historical_inverted_cdf_is_the_order_statistic(n: int, alpha: float) -> None:
    r = np.random.default_rng(n).standard_t(3, n) * 0.01
    var, es = var_es(pd.Series(r), "historical", alpha)
    ref_var, ref_es = _order_statistic_var_es(r, alpha)
    assert var == ref_var
    assert es == pytest.approx(ref_es, rel=1e-12)
    x = n * (1 - Fraction(str(alpha)))
    if x.denominator == 1:  # an integer tail count: ES is the mean of the k smallest returns
        assert es == pytest.approx(-np.sort(r)[: int(x)].mean(), rel=1e-12)
    else:  # numpy's inverted_cdf agrees away from the float-rounding edge at integer n p
        assert var == -np.quantile(r, 1 - alpha, method="inverted_cdf")


def test_decimal_alpha_at_an_integer_tail_count() -> None:
    """n = 100 at 99%: the 1st smallest, although 100 * (1 - 0.99) = 1.0000000000000009."""
    r = np.arange(1.0, 101.0) / -1000.0  # -0.001 ... -0.1
    assert value_at_risk(pd.Series(r), "historical", 0.99) == 0.1
    assert expected_shortfall(pd.Series(r), "historical", 0.99) == pytest.approx(0.1)
    assert value_at_risk(pd.Series(r), "historical", 0.95) == pytest.approx(0.096)
    assert expected_shortfall(pd.Series(r), "historical", 0.95) == pytest.approx(0.098)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("n", [100, 257])
def test_historical_linear_against_numpy_and_quadrature(n: int, alpha: float) -> None:
    r = np.random.default_rng(n + 1).standard_t(4, n) * 0.02
    var, es = var_es(pd.Series(r), "historical", alpha, quantile_method="linear")
    p = 1 - alpha
    assert var == pytest.approx(-np.quantile(r, p), rel=1e-12, abs=1e-15)
    knots = [i / (n - 1) for i in range(1, n) if i / (n - 1) < p]
    integral, _ = integrate.quad(lambda u: np.quantile(r, u), 0.0, p, points=knots, limit=500)
    assert es == pytest.approx(-integral / p, rel=1e-9)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_gaussian_against_scipy(fat_tailed: pd.Series, alpha: float) -> None:
    r = fat_tailed.to_numpy()
    mu, sd = r.mean(), r.std(ddof=1)
    z = stats.norm.ppf(alpha)
    var, es = var_es(fat_tailed, "gaussian", alpha)
    assert var == pytest.approx(-(mu + sd * stats.norm.ppf(1 - alpha)), rel=1e-12)
    assert es == pytest.approx(-mu + sd * stats.norm.pdf(z) / (1 - alpha), rel=1e-12)
    tail = stats.norm.expect(lambda x: x, loc=mu, scale=sd, ub=-var, conditional=True)
    assert es == pytest.approx(-tail, rel=1e-8)


@pytest.mark.parametrize("t_fit", ["mle", "moments"])
@pytest.mark.parametrize("alpha", [0.95, 0.99])
def test_student_t_against_scipy(fat_tailed: pd.Series, alpha: float, t_fit: str) -> None:
    loc, scale, dof = fit_student_t(fat_tailed, t_fit)
    var, es = var_es(fat_tailed, "student_t", alpha, t_fit=t_fit)
    q = stats.t.ppf(alpha, dof)
    assert var == pytest.approx(-(loc + scale * stats.t.ppf(1 - alpha, dof)), rel=1e-10)
    closed = -loc + scale * stats.t.pdf(q, dof) * (dof + q * q) / ((dof - 1) * (1 - alpha))
    assert es == pytest.approx(closed, rel=1e-10)
    tail = stats.t.expect(lambda x: x, args=(dof,), loc=loc, scale=scale, ub=-var, conditional=True)
    assert es == pytest.approx(-tail, rel=1e-7)


def test_student_t_mle_is_at_least_as_good_as_scipy_fit(fat_tailed: pd.Series) -> None:
    r = fat_tailed.to_numpy()
    ours = fit_student_t(fat_tailed, "mle")
    dof, loc, scale = stats.t.fit(r)
    ll_ours = stats.t.logpdf(r, ours.dof, ours.loc, ours.scale).sum()
    ll_scipy = stats.t.logpdf(r, dof, loc, scale).sum()
    assert ll_ours >= ll_scipy - 1e-6
    assert ours.dof == pytest.approx(dof, rel=1e-3)
    assert ours.loc == pytest.approx(loc, rel=1e-3, abs=1e-6)
    assert ours.scale == pytest.approx(scale, rel=1e-3)


def test_student_t_moments_fit_formula(fat_tailed: pd.Series) -> None:
    r = fat_tailed.to_numpy()
    kurt = stats.kurtosis(r)  # excess, biased (fisher=True, bias=True)
    dof = 4 + 6 / kurt
    fit = fit_student_t(fat_tailed, "moments")
    assert fit.dof == pytest.approx(dof, rel=1e-10)
    assert fit.scale == pytest.approx(r.std(ddof=1) * math.sqrt((dof - 2) / dof), rel=1e-10)
    assert fit.loc == pytest.approx(r.mean(), rel=1e-10)


def test_student_t_fit_of_gaussian_data_hits_the_dof_ceiling() -> None:
    r = pd.Series(np.random.default_rng(3).normal(0.0, 0.01, 5_000))
    assert fit_student_t(r, "mle").dof == pytest.approx(NU_MAX)
    var_t = value_at_risk(r, "student_t", 0.99)
    assert var_t == pytest.approx(value_at_risk(r, "gaussian", 0.99), rel=2e-3)


def test_student_t_fit_of_a_dataframe(three_assets: pd.DataFrame) -> None:
    table = fit_student_t(three_assets)
    assert list(table.columns) == ["loc", "scale", "dof"]
    assert table.loc["ETH", "dof"] == fit_student_t(three_assets["ETH"]).dof


@pytest.mark.parametrize("x", [0.3, 1.05, 2.5, 9.99, 10.0, 57.3, 5e3])
def test_digamma_and_trigamma_against_scipy(x: float) -> None:
    from scipy import special

    assert digamma_nb(x) == pytest.approx(special.digamma(x), rel=1e-13, abs=1e-13)
    assert trigamma_nb(x) == pytest.approx(special.polygamma(1, x), rel=1e-13)


def _cornish_fisher_quantile(z: float, s: float, k: float) -> float:
    """The textbook expansion (Zangari 1996), written out independently."""
    return z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36


@pytest.mark.parametrize("alpha", [0.95, 0.99])
def test_cornish_fisher_against_hand_formula(fat_tailed: pd.Series, alpha: float) -> None:
    r = fat_tailed.to_numpy()
    mu, sd = r.mean(), r.std(ddof=1)
    s, k = stats.skew(r), stats.kurtosis(r)
    var, es = var_es(fat_tailed, "cornish_fisher", alpha)
    z = stats.norm.ppf(1 - alpha)
    assert var == pytest.approx(-(mu + sd * _cornish_fisher_quantile(z, s, k)), rel=1e-12)
    p = 1 - alpha

    def quantile(u: float) -> float:
        return mu + sd * _cornish_fisher_quantile(stats.norm.ppf(u), s, k)

    integral, _ = integrate.quad(quantile, 0.0, p, limit=200)
    assert es == pytest.approx(-integral / p, rel=1e-7)


def test_cornish_fisher_is_gaussian_without_skew_and_kurtosis() -> None:
    r = pd.Series(np.tile([-1.0, 1.0], 50) * 0.01)  # skew 0, excess kurtosis -2
    sym = pd.Series(stats.norm.ppf(np.linspace(0.001, 0.999, 999)) * 0.01)  # ~ Gaussian
    cf, gauss = var_es(sym, "cornish_fisher", 0.99), var_es(sym, "gaussian", 0.99)
    assert cf.var == pytest.approx(gauss.var, rel=0.02)
    assert np.isfinite(var_es(r, "cornish_fisher", 0.99).var)


def _fhs_manual(r: np.ndarray, lam: float) -> np.ndarray:
    variance = sum(x * x for x in r) / len(r)
    z = []
    for x in r:
        z.append(x / math.sqrt(variance))
        variance = lam * variance + (1 - lam) * x * x
    return np.array(z) * math.sqrt(variance)


@pytest.mark.parametrize("lam", [0.94, 0.97])
@pytest.mark.parametrize("quantile_method", ["inverted_cdf", "linear"])
def test_fhs_against_manual_ewma(fat_tailed: pd.Series, lam: float, quantile_method: str) -> None:
    r = fat_tailed.to_numpy()[:700]
    scenarios = _fhs_manual(r, lam)
    got = var_es(pd.Series(r), "fhs", 0.99, ewma_lambda=lam, quantile_method=quantile_method)
    want = var_es(pd.Series(scenarios), "historical", 0.99, quantile_method=quantile_method)
    assert got.var == pytest.approx(want.var, rel=1e-10)
    assert got.es == pytest.approx(want.es, rel=1e-10)
    if quantile_method == "inverted_cdf":
        assert got.var == pytest.approx(-np.sort(scenarios)[6], rel=1e-10)  # ceil(700 * 0.01)


def test_fhs_follows_the_latest_volatility() -> None:
    rng = np.random.default_rng(5)
    calm_then_wild = np.concatenate([rng.normal(0, 0.005, 900), rng.normal(0, 0.03, 100)])
    wild_then_calm = calm_then_wild[::-1].copy()
    hist = value_at_risk(pd.Series(calm_then_wild), "historical", 0.99)
    assert value_at_risk(pd.Series(calm_then_wild), "fhs", 0.99) > 1.5 * hist
    assert value_at_risk(pd.Series(wild_then_calm), "fhs", 0.99) < 0.7 * hist


def test_dataframe_gives_one_value_per_column(three_assets: pd.DataFrame) -> None:
    for method in ["historical", "gaussian", "student_t", "cornish_fisher", "fhs"]:
        both = var_es(three_assets, method, 0.99)
        assert list(both.var.index) == ["BTC", "ETH", "SOL"]
        for col in three_assets:
            single = var_es(three_assets[col], method, 0.99)
            assert both.var[col] == pytest.approx(single.var, rel=1e-12)
            assert both.es[col] == pytest.approx(single.es, rel=1e-12)


def test_numpy_input() -> None:
    r = np.random.default_rng(0).normal(0, 0.01, (500, 2))
    assert isinstance(value_at_risk(r[:, 0], "gaussian"), float)
    assert value_at_risk(r, "gaussian").shape == (2,)


# --------------------------------------------------------------------------- horizon
def test_gaussian_horizon_is_exact_for_iid_returns() -> None:
    r = pd.Series(np.random.default_rng(8).normal(0.0001, 0.01, 4_000))
    mu, sd = r.mean(), r.std(ddof=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        var = value_at_risk(r, "gaussian", 0.99, horizon_bars=24)
    assert var == pytest.approx(-24 * mu + math.sqrt(24) * sd * stats.norm.ppf(0.99), rel=1e-12)


def test_gaussian_horizon_warns_for_autocorrelated_returns() -> None:
    rng = np.random.default_rng(9)
    e = rng.normal(0, 0.01, 3_000)
    r = e.copy()
    for t in range(1, len(r)):
        r[t] = 0.4 * r[t - 1] + e[t]
    with pytest.warns(HorizonScalingWarning, match="autocorrelation") as record:
        value_at_risk(pd.Series(r), "gaussian", 0.99, horizon_bars=10)
    assert record[0].filename == __file__  # points at the caller, not at the library


@pytest.mark.parametrize("method", ["historical", "student_t", "cornish_fisher", "fhs"])
def test_non_gaussian_horizon_is_sqrt_time_with_a_warning(
    fat_tailed: pd.Series, method: str
) -> None:
    one = var_es(fat_tailed, method, 0.99)
    with pytest.warns(HorizonScalingWarning, match="sqrt"):
        ten = var_es(fat_tailed, method, 0.99, horizon_bars=10)
    assert ten.var == pytest.approx(math.sqrt(10) * one.var, rel=1e-12)
    assert ten.es == pytest.approx(math.sqrt(10) * one.es, rel=1e-12)


# --------------------------------------------------------------------------- bad inputs
def test_nan_returns_name_the_argument_and_rows() -> None:
    r = pd.Series(np.r_[np.zeros(50), np.nan, np.zeros(60)] + 0.01, name="BTC")
    with pytest.raises(DataError, match=r"returns holds non-finite values .* column BTC at row 50"):
        value_at_risk(r, "gaussian")
    frame = pd.DataFrame({"a": np.full(120, 0.01), "b": np.r_[np.full(119, 0.01), np.inf]})
    with pytest.raises(DataError, match=r"column b at row 119"):
        value_at_risk(frame, "historical")


@pytest.mark.parametrize("alpha", [0.0, 1.0, 99, -0.5, float("nan"), "0.99", True])
def test_alpha_outside_the_unit_interval(alpha: object) -> None:
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\)"):
        value_at_risk(pd.Series(np.zeros(200)), "gaussian", alpha)  # type: ignore[arg-type]


def test_too_few_observations() -> None:
    with pytest.raises(
        ValueError, match=r"returns has 99 observations; historical .* at least 100"
    ):
        value_at_risk(pd.Series(np.zeros(99)), "historical", 0.99)
    with pytest.raises(ValueError, match="at least 10"):
        value_at_risk(pd.Series(np.zeros(9)), "gaussian", 0.99)
    assert value_at_risk(pd.Series(np.zeros(10)), "gaussian", 0.99) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "var"}, "method must be one of"),
        ({"quantile_method": "nearest"}, "quantile_method must be one of"),
        ({"t_fit": "em"}, "t_fit must be one of"),
        ({"horizon_bars": 0}, "horizon_bars must be an integer >= 1"),
        ({"ewma_lambda": 1.0}, r"ewma_lambda must be a number in \(0, 1\)"),
    ],
)
def test_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        var_es(pd.Series(np.zeros(200)), **kwargs)


def test_unsorted_time_index_and_wrong_type() -> None:
    idx = pd.date_range("2024-01-01", periods=200, freq="1h", tz="UTC")[::-1]
    with pytest.raises(DataError, match="returns index is not sorted"):
        value_at_risk(pd.Series(np.zeros(200), index=idx))
    with pytest.raises(TypeError, match="returns must be a pandas Series"):
        value_at_risk([0.01] * 200)  # type: ignore[arg-type]
