"""Portfolio VaR/ES: any method on the portfolio's returns, Euler component and marginal VaR,
and Monte Carlo simulation of correlated assets.

Weights are **signed exposures as multiples of equity** (0.5 = long half the equity, -0.2 =
short a fifth; they need not sum to 1: the rest is cash, and a sum above 1 is leverage). The
portfolio's per-bar simple return is then ``r_p = sum_i w_i r_i`` exactly (weights held
constant over the bar). Sign and quantile conventions are those of
:mod:`quantum_trading.risk.measures`: VaR and ES are positive loss fractions of equity.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import special

from quantum_trading.risk.measures import (
    NU_MAX,
    QUANTILE_METHODS,
    QuantileMethod,
    TFit,
    VaRES,
    VaRMethod,
    check_alpha,
    check_choice,
    check_int,
    horizon_note,
    moments_t_params,
    returns_matrix,
    var_es,
    warn_horizon,
)
from quantum_trading.risk.measures_nb import historical_var_es_nb, moments_nb

__all__ = [
    "MonteCarloResult",
    "component_var",
    "monte_carlo_var_es",
    "portfolio_returns",
    "portfolio_var_es",
]


class MonteCarloResult(NamedTuple):
    """Monte Carlo VaR/ES (positive loss fractions) of the portfolio and of each asset."""

    var: float
    es: float
    asset_var: pd.Series
    asset_es: pd.Series
    dof: float | None
    """Degrees of freedom of the multivariate t (None for the normal)."""


def _frame(returns: object) -> tuple[np.ndarray, pd.Index]:
    if not isinstance(returns, pd.DataFrame):
        raise TypeError(
            f"returns must be a pandas DataFrame (one column per asset), got "
            f"{type(returns).__name__}"
        )
    rows, labels, _ = returns_matrix(returns)
    return rows, labels  # type: ignore[return-value]


def _inputs(returns: object, weights: object, what: str) -> tuple[np.ndarray, pd.Index, np.ndarray]:
    """Checked returns rows (at least 10 per asset), their labels and the aligned weights."""
    rows, labels = _frame(returns)
    if rows.shape[1] < 10:
        raise ValueError(f"returns has {rows.shape[1]} rows; {what} needs at least 10")
    return rows, labels, _weights(weights, labels)


def _weights(weights: object, labels: pd.Index) -> np.ndarray:
    """Weights aligned to the columns of ``returns``; every column needs one, no extras."""
    if isinstance(weights, Mapping | pd.Series):
        given = pd.Series(weights, dtype=object) if isinstance(weights, Mapping) else weights
        missing = [c for c in labels if c not in given.index]
        extra = [c for c in given.index if c not in labels]
        if missing or extra:
            raise ValueError(
                f"weights must name exactly the columns of returns; missing {missing}, "
                f"unknown {extra}"
            )
        values = given.reindex(labels).to_numpy()
    else:
        values = np.asarray(weights, dtype=object)
        if values.ndim != 1 or values.shape[0] != len(labels):
            raise ValueError(
                f"weights must have one value per column of returns ({len(labels)}), "
                f"got shape {values.shape}"
            )
    try:
        w = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("weights must be numbers (multiples of equity)") from exc
    if not np.isfinite(w).all():
        raise ValueError("weights must be finite numbers (multiples of equity)")
    return w


def portfolio_returns(
    returns: pd.DataFrame, weights: Mapping[str, float] | pd.Series | np.ndarray
) -> pd.Series:
    """Per-bar simple return of a constant-weight portfolio, ``r_p = returns @ weights``.

    Parameters
    ----------
    returns:
        Per-bar simple returns, one column per asset (finite).
    weights:
        Signed exposure per asset as a multiple of equity: a mapping or Series keyed by
        column, or an array in column order.

    Returns
    -------
    pd.Series
        ``portfolio`` returns on the index of ``returns``.

    Examples
    --------
    >>> r = pd.DataFrame({"BTC": [0.01, -0.02], "ETH": [0.03, 0.0]})
    >>> portfolio_returns(r, {"BTC": 1.0, "ETH": -0.5}).round(6).tolist()
    [-0.005, -0.02]
    """
    rows, labels = _frame(returns)
    w = _weights(weights, labels)
    return pd.Series(w @ rows, index=returns.index, name="portfolio")


def portfolio_var_es(
    returns: pd.DataFrame,
    weights: Mapping[str, float] | pd.Series | np.ndarray,
    method: VaRMethod = "historical",
    alpha: float = 0.99,
    *,
    horizon_bars: int = 1,
    quantile_method: QuantileMethod = "inverted_cdf",
    t_fit: TFit = "mle",
    ewma_lambda: float = 0.94,
) -> VaRES:
    """VaR and ES of the portfolio's returns by any method of
    :func:`~quantum_trading.risk.measures.var_es` (same arguments), as fractions of equity.

    Examples
    --------
    >>> r = pd.DataFrame({"a": [-0.02, 0.01] * 50, "b": [0.01, -0.02] * 50})
    >>> portfolio_var_es(r, {"a": 0.5, "b": 0.5}, "historical", 0.99)
    VaRES(var=0.005, es=0.005)
    """
    series = portfolio_returns(returns, weights)
    return var_es(series, method, alpha, horizon_bars=horizon_bars,
                  quantile_method=quantile_method, t_fit=t_fit, ewma_lambda=ewma_lambda)


def component_var(
    returns: pd.DataFrame,
    weights: Mapping[str, float] | pd.Series | np.ndarray,
    alpha: float = 0.99,
    *,
    horizon_bars: int = 1,
) -> pd.DataFrame:
    """Marginal and component (Euler) VaR and ES per asset, Gaussian parametric.

    With sample means ``mu``, sample covariance ``S`` (ddof 1), ``sigma_p = sqrt(w' S w)`` and
    ``z = Phi^-1(alpha)``, the portfolio VaR is ``-w' mu + z sigma_p``; the marginal VaR of
    asset i is its derivative ``dVaR / dw_i = -mu_i + z (S w)_i / sigma_p`` and the component
    VaR ``w_i * dVaR / dw_i``. VaR is homogeneous of degree 1 in ``w``, so by Euler's theorem
    the components sum to the portfolio VaR, i.e. to
    ``portfolio_var_es(returns, weights, "gaussian", alpha).var``. ES likewise with
    ``phi(z) / (1 - alpha)`` in place of ``z``. Over ``horizon_bars = h`` bars, ``h mu`` and
    ``h S`` (a :class:`~quantum_trading.risk.measures.HorizonScalingWarning` if the portfolio's
    returns are autocorrelated).

    Parameters
    ----------
    returns:
        Per-bar simple returns, one column per asset (finite, >= 10 rows).
    weights:
        Signed exposure per asset as a multiple of equity.
    alpha:
        Confidence level in (0, 1).
    horizon_bars:
        Horizon in bars (default 1).

    Returns
    -------
    pd.DataFrame
        One row per asset: ``weight``, ``marginal_var``, ``component_var``,
        ``component_var_pct`` (share of the portfolio VaR, sums to 1), ``marginal_es``,
        ``component_es``. Loss fractions of equity; a negative component diversifies.

    Examples
    --------
    >>> r = pd.DataFrame({"a": [-0.02, 0.01, 0.0, 0.01] * 5, "b": [0.01, -0.01, 0.0, 0.0] * 5})
    >>> c = component_var(r, {"a": 1.0, "b": 1.0})
    >>> round(float(c["component_var_pct"].sum()), 12)
    1.0
    """
    alpha = check_alpha(alpha)
    horizon_bars = check_int(horizon_bars, "horizon_bars", 1)
    rows, labels, w = _inputs(returns, weights, "component VaR")
    note = horizon_note("gaussian", horizon_bars, (w @ rows)[None, :])
    if note is not None:
        warn_horizon(note)
    h = float(horizon_bars)
    mu = h * rows.mean(axis=1)
    cov = h * np.atleast_2d(np.cov(rows, ddof=1))
    cov_w = cov @ w
    sigma_p = math.sqrt(max(float(w @ cov_w), 0.0))
    if sigma_p == 0.0:
        raise ValueError("the portfolio's returns have zero variance; component VaR is undefined")
    z = special.ndtri(alpha)
    es_factor = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) / (1.0 - alpha)
    marginal_var = -mu + z * cov_w / sigma_p
    marginal_es = -mu + es_factor * cov_w / sigma_p
    component = w * marginal_var
    return pd.DataFrame(
        {
            "weight": w,
            "marginal_var": marginal_var,
            "component_var": component,
            "component_var_pct": component / component.sum(),
            "marginal_es": marginal_es,
            "component_es": w * marginal_es,
        },
        index=labels,
    )


def _cov_root(cov: np.ndarray) -> np.ndarray:
    """A matrix ``A`` with ``A A' = cov``: Cholesky, or the symmetric eigen-root if singular."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(cov)
        return vectors * np.sqrt(np.clip(values, 0.0, None))


def monte_carlo_var_es(
    returns: pd.DataFrame,
    weights: Mapping[str, float] | pd.Series | np.ndarray,
    alpha: float = 0.99,
    *,
    n_draws: int = 10_000,
    distribution: Literal["normal", "t"] = "normal",
    dof: float | None = None,
    seed: int | None = 0,
    horizon_bars: int = 1,
    quantile_method: QuantileMethod = "inverted_cdf",
) -> MonteCarloResult:
    """Monte Carlo VaR and ES of a portfolio of correlated assets.

    Draws ``n_draws`` joint returns ``X = mu + Z A'`` with ``Z`` standard normal (numpy's
    ``default_rng(seed)``), ``mu`` the sample means and ``A`` the Cholesky factor of the sample
    covariance (ddof 1). ``distribution="t"``: multivariate Student-t with the same mean and
    covariance, ``X = mu + Z A' sqrt((dof - 2) / W)``, ``W ~ chi2(dof)`` per draw. VaR/ES are
    the empirical quantiles (``quantile_method``) of ``X @ weights`` and of each asset.

    Parameters
    ----------
    returns, weights, alpha:
        As in :func:`component_var`.
    n_draws:
        Number of simulated bars, at least ``max(100, ceil(1 / (1 - alpha)))``.
    distribution:
        ``"normal"`` (default) or ``"t"``.
    dof:
        Degrees of freedom of the multivariate t, > 2. None (default): method of moments on
        the portfolio's returns (``4 + 6 / K``), which makes the simulated portfolio's
        kurtosis match the sample's; 10,000 when ``K <= 0``.
    seed:
        Seed of the random generator (default 0: the same draws on every call); None draws
        fresh entropy.
    horizon_bars:
        Horizon in bars. Normal: ``h mu`` and ``h`` times the covariance (exact for i.i.d.
        returns); t: one-bar figures times ``sqrt(h)`` with a
        :class:`~quantum_trading.risk.measures.HorizonScalingWarning`.
    quantile_method:
        ``"inverted_cdf"`` (default) or ``"linear"``, as in
        :func:`~quantum_trading.risk.measures.var_es`.

    Returns
    -------
    MonteCarloResult
        Portfolio ``var``/``es`` and per-asset ``asset_var``/``asset_es`` (unit exposure),
        positive loss fractions, and the ``dof`` used (None for the normal).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> r = pd.DataFrame(rng.normal(0.0, 0.01, (2_000, 2)), columns=["a", "b"])
    >>> mc = monte_carlo_var_es(r, {"a": 0.5, "b": 0.5}, 0.99, n_draws=100_000)
    >>> round(mc.var, 3)
    0.016
    """
    alpha = check_alpha(alpha)
    distribution = check_choice(distribution, "distribution", ("normal", "t"))
    quantile_method = check_choice(quantile_method, "quantile_method", QUANTILE_METHODS)
    horizon_bars = check_int(horizon_bars, "horizon_bars", 1)
    need = max(100, math.ceil(1.0 / (1.0 - alpha) - 1e-9))
    n_draws = check_int(n_draws, "n_draws", need)
    if seed is not None:
        seed = check_int(seed, "seed", 0)
    rows, labels, w = _inputs(returns, weights, "Monte Carlo VaR")
    port = (w @ rows)[None, :]
    note = horizon_note(
        "gaussian" if distribution == "normal" else "monte_carlo_t", horizon_bars, port
    )
    if note is not None:
        warn_horizon(note)
    h = float(horizon_bars) if distribution == "normal" else 1.0
    mu = h * rows.mean(axis=1)
    root = _cov_root(h * np.atleast_2d(np.cov(rows, ddof=1)))
    rng = np.random.default_rng(seed)
    sims = rng.standard_normal((n_draws, rows.shape[0])) @ root.T
    used_dof: float | None = None
    if distribution == "t":
        if dof is None:
            mom = moments_nb(port, np.empty((4, 1)))
            used_dof = float(moments_t_params(mom[0], mom[1], mom[3])[2][0])
        else:
            ok = isinstance(dof, numbers.Real) and not isinstance(dof, bool)
            if not ok or not (2.0 < float(dof) <= NU_MAX):
                raise ValueError(f"dof must be a number in (2, {NU_MAX:g}], got {dof!r}")
            used_dof = float(dof)
        chi2 = rng.chisquare(used_dof, n_draws)
        sims *= np.sqrt((used_dof - 2.0) / chi2)[:, None]
    sims += mu
    table = np.empty((rows.shape[0] + 1, n_draws))
    table[0] = sims @ w
    table[1:] = sims.T
    out = historical_var_es_nb(
        table, 1.0 - alpha, quantile_method == "linear", np.empty((2, table.shape[0]))
    )
    scale = math.sqrt(horizon_bars) if distribution == "t" else 1.0
    out *= scale
    return MonteCarloResult(
        var=float(out[0, 0]),
        es=float(out[1, 0]),
        asset_var=pd.Series(out[0, 1:], index=labels, name="var"),
        asset_es=pd.Series(out[1, 1:], index=labels, name="es"),
        dof=used_dof,
    )
