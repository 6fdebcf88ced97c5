"""Value at Risk and Expected Shortfall of return series.

Conventions
-----------
- **Inputs** are per-bar **simple** returns ``r_t = V_t / V_{t-1} - 1`` of an asset or a
  portfolio (a ``pd.Series``; a ``pd.DataFrame`` is one series per column). Simple returns are
  used because a portfolio's return is then exactly the weighted sum of its assets' returns;
  convert log returns with ``np.expm1`` first.
- **Sign.** VaR and ES are **positive loss fractions** of the position's value over the return
  horizon (one bar unless ``horizon_bars`` says otherwise) at confidence level ``alpha``
  (0.99 = 99%): ``VaR = -Q(1 - alpha)``, the loss exceeded with probability ``1 - alpha``, and
  ``ES = -(1 / (1 - alpha)) * integral_0^{1-alpha} Q(u) du``, the average loss beyond it, where
  ``Q`` is the quantile function of the return distribution (fitted, empirical, rescaled or
  simulated). A negative VaR means that even the ``1 - alpha`` quantile is a gain. ES >= VaR
  and both grow with ``alpha`` (for Cornish-Fisher only where its expansion is monotone).
- **Empirical quantiles** (historical, filtered historical, Monte Carlo), ``quantile_method``:

  ``"inverted_cdf"`` (default; numpy's ``method="inverted_cdf"``): with ``k = ceil(n (1 -
  alpha))``, VaR = -(the k-th smallest return) and ES = -(sum of the k - 1 smallest + (n (1 -
  alpha) - k + 1) x the k-th) / (n (1 - alpha)) (Acerbi & Tasche 2002), which is the mean of
  the k smallest returns when ``n (1 - alpha)`` is an integer. ``ceil`` uses a 1e-9 tolerance,
  so that n = 100 at alpha = 0.99 gives k = 1 although ``100 * (1 - 0.99) > 1`` in floating
  point.

  ``"linear"`` (numpy's default ``np.quantile``): ``h = (n - 1)(1 - alpha)``, VaR =
  -(r_(j) + (h - j)(r_(j+1) - r_(j))) with ``j = floor(h)`` (0-based sorted returns), and ES
  the exact average of that piecewise-linear quantile function over ``[0, 1 - alpha]``.
- **Methods** (``method``):

  ``"historical"``: the empirical quantiles of the returns.
  ``"gaussian"``: ``VaR = -mu + sigma z_alpha``, ``ES = -mu + sigma phi(z_alpha) / (1 -
  alpha)``; ``mu`` the sample mean, ``sigma`` the sample standard deviation (ddof 1).
  ``"student_t"``: location-scale Student-t; ``VaR = -loc + scale t_nu^-1(alpha)``, ``ES =
  -loc + scale f_nu(q) (nu + q^2) / ((nu - 1)(1 - alpha))`` with ``q = t_nu^-1(alpha)``.
  Fitted by maximum likelihood (``t_fit="mle"``: damped Newton with exact derivatives; agrees
  with ``scipy.stats.t.fit``, in a few milliseconds for 40,000 returns) or by the method of
  moments (``t_fit="moments"``: ``nu = 4 + 6 / K`` from the excess kurtosis ``K``, the scale
  matching the sample variance). ``nu`` is kept in ``[1.1, 10,000]``; ``K <= 0`` gives 10,000.
  ``"cornish_fisher"``: the Gaussian quantile corrected for sample skewness ``S`` and excess
  kurtosis ``K`` (biased estimators, as ``scipy.stats.skew``/``kurtosis``):
  ``z_cf = z + (z^2 - 1) S / 6 + (z^3 - 3z) K / 24 - (2z^3 - 5z) S^2 / 36`` with ``z =
  Phi^-1(1 - alpha)``; ``VaR = -(mu + sigma z_cf)``; ES is the exact tail average of that
  quantile function, ``-(mu + sigma E[z_cf(Z) | Z <= z])``, in closed form from the
  truncated moments of the normal distribution. With large ``|S|`` or ``K`` (hourly crypto
  returns often have K > 10) the expansion leaves its domain of validity (Maillard 2012):
  it is no longer monotone and overstates the tail; prefer ``"student_t"`` or ``"fhs"``.
  ``"fhs"`` (filtered historical simulation, Barone-Adesi et al. 1999; Hull & White 1998):
  EWMA variance ``v_{t+1} = lambda v_t + (1 - lambda) r_t^2`` (RiskMetrics, ``lambda`` =
  ``ewma_lambda``, default 0.94) seeded with ``v_0 = mean(r^2)``; residuals ``z_t = r_t /
  sqrt(v_t)`` are rescaled to the next bar's volatility ``sqrt(v_n)`` and their empirical
  quantiles taken. Returns are not demeaned (zero-mean RiskMetrics convention).
- **Horizon** (``horizon_bars = h > 1``): Gaussian VaR/ES use ``h mu`` and ``sqrt(h) sigma``,
  exact for i.i.d. Gaussian returns (up to compounding); every other method multiplies the
  one-bar figures by ``sqrt(h)``. A :class:`HorizonScalingWarning` is issued whenever this is
  an approximation: always for the non-Gaussian methods (fat tails do not aggregate by
  ``sqrt(h)``; volatility clustering makes FHS a one-bar forecast), and for the Gaussian method
  when the lag-1 autocorrelation lies outside ``+-1.96 / sqrt(n)`` (autocorrelated returns
  make ``sqrt(h)`` too small for positive and too large for negative autocorrelation).
- **Minimum sample.** 10 observations; historical and FHS also need ``n (1 - alpha) >= 1``
  (e.g. 100 at 99%), so that the tail holds at least one return.

References: Jorion, *Value at Risk* (3rd ed., 2007); Acerbi & Tasche (2002), *On the coherence
of Expected Shortfall*; Zangari (1996) for Cornish-Fisher VaR.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import special

from quantum_trading.errors import DataError
from quantum_trading.risk.measures_nb import (
    NU_MAX,
    fhs_var_es_nb,
    historical_var_es_nb,
    moments_nb,
    t_fit_mle_nb,
)

__all__ = [
    "HorizonScalingWarning",
    "QuantileMethod",
    "StudentTFit",
    "TFit",
    "VaRES",
    "VaRMethod",
    "expected_shortfall",
    "fit_student_t",
    "value_at_risk",
    "var_es",
]

VaRMethod = Literal["historical", "gaussian", "student_t", "cornish_fisher", "fhs"]
QuantileMethod = Literal["inverted_cdf", "linear"]
TFit = Literal["mle", "moments"]

METHODS: tuple[str, ...] = ("historical", "gaussian", "student_t", "cornish_fisher", "fhs")
QUANTILE_METHODS: tuple[str, ...] = ("inverted_cdf", "linear")
T_FITS: tuple[str, ...] = ("mle", "moments")
MIN_OBS = 10
_EMPIRICAL = ("historical", "fhs")


class HorizonScalingWarning(UserWarning):
    """VaR/ES were scaled to a multi-bar horizon by a rule that is only approximate here."""


class VaRES(NamedTuple):
    """VaR and ES as positive loss fractions: floats for one series, Series for several."""

    var: float | pd.Series
    es: float | pd.Series


class StudentTFit(NamedTuple):
    """A fitted location-scale Student-t: ``r = loc + scale * T_dof``."""

    loc: float
    scale: float
    dof: float


# --------------------------------------------------------------------------- argument checks
def check_alpha(alpha: object, name: str = "alpha") -> float:
    """``alpha`` as a float strictly inside (0, 1); a clear ``ValueError`` otherwise."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise ValueError(f"{name} must be a number in (0, 1), e.g. 0.99, got {alpha!r}")
    value = float(alpha)
    if not (0.0 < value < 1.0):
        raise ValueError(f"{name} must be a number in (0, 1), e.g. 0.99, got {value:g}")
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; a ``ValueError`` listing them otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_int(value: object, name: str, minimum: int) -> int:
    """``value`` as an ``int >= minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_unit_float(value: object, name: str, *, closed_high: bool = False) -> float:
    """``value`` as a float in ``(0, 1)`` (``(0, 1]`` with ``closed_high``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    if not (0.0 < v < 1.0 or (closed_high and v == 1.0)):
        bound = "(0, 1]" if closed_high else "(0, 1)"
        raise ValueError(f"{name} must be a number in {bound}, got {value!r}")
    return v


def min_observations(method: str, alpha: float) -> int:
    """Fewest returns the estimate needs (see the module's *Minimum sample*)."""
    if method in _EMPIRICAL:
        return max(MIN_OBS, math.ceil(1.0 / (1.0 - alpha) - 1e-9))
    return MIN_OBS


def returns_matrix(
    returns: object, name: str = "returns"
) -> tuple[np.ndarray, pd.Index | None, bool]:
    """Validate ``returns`` and return ``(rows, labels, several)``.

    ``rows`` is a C-contiguous ``(n_series, n_obs)`` float64 array, ``labels`` the column
    labels of a DataFrame (else None) and ``several`` whether the input had several series.
    Non-finite values raise :class:`DataError` naming the column and rows; an unsorted
    ``DatetimeIndex`` raises too (order matters to FHS and to rolling estimates).
    """
    if isinstance(returns, pd.Series | pd.DataFrame):
        index = returns.index
        if isinstance(index, pd.DatetimeIndex) and not index.is_monotonic_increasing:
            raise DataError(f"{name} index is not sorted in increasing time")
    if isinstance(returns, pd.Series):
        values, labels, several = _numbers(returns, name)[None, :], None, False
        columns = [returns.name]
    elif isinstance(returns, pd.DataFrame):
        values, labels, several = _numbers(returns, name).T, returns.columns, True
        columns = list(returns.columns)
    elif isinstance(returns, np.ndarray) and returns.ndim in (1, 2):
        values = _numbers(returns, name)
        several = values.ndim == 2
        values = values.T if several else values[None, :]
        labels, columns = None, list(range(values.shape[0]))
    else:
        raise TypeError(
            f"{name} must be a pandas Series or DataFrame (or a 1-D/2-D array), "
            f"got {type(returns).__name__}"
        )
    values = np.ascontiguousarray(values)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.nonzero(bad.T)
        column = columns[int(col[0])]
        rows = row[col == col[0]]
        raise DataError(
            f"{name} holds non-finite values (NaN or inf)",
            rows=rows,
            column=None if column is None else str(column),
        )
    return values, labels, several


def _numbers(data: pd.Series | pd.DataFrame | np.ndarray, name: str) -> np.ndarray:
    try:
        if isinstance(data, np.ndarray):
            return np.asarray(data, dtype=np.float64)
        return data.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers") from exc


def check_length(n_obs: int, method: str, alpha: float, name: str = "returns") -> None:
    """Raise ``ValueError`` when ``n_obs`` is below :func:`min_observations`."""
    need = min_observations(method, alpha)
    if n_obs < need:
        why = " (one expected tail observation)" if method in _EMPIRICAL and need > MIN_OBS else ""
        raise ValueError(
            f"{name} has {n_obs} observations; {method} VaR at alpha={alpha:g} needs at "
            f"least {need}{why}"
        )


# --------------------------------------------------------------------------- closed forms
def gaussian_var_es(
    mu: np.ndarray, sigma: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian VaR and ES (positive losses) of returns with mean ``mu`` and sd ``sigma``."""
    z = special.ndtri(alpha)
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return -mu + sigma * z, -mu + sigma * pdf / (1.0 - alpha)


def student_t_var_es(
    loc: np.ndarray, scale: np.ndarray, dof: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t VaR and ES (positive losses): ``VaR = -loc + scale q`` with ``q =
    t_dof^-1(alpha)``, ``ES = -loc + scale f(q) (dof + q^2) / ((dof - 1)(1 - alpha))``."""
    dof = np.asarray(dof, dtype=np.float64)
    q = special.stdtrit(dof, alpha)
    log_pdf = (
        special.gammaln(0.5 * (dof + 1.0))
        - special.gammaln(0.5 * dof)
        - 0.5 * np.log(np.pi * dof)
        - 0.5 * (dof + 1.0) * np.log1p(q * q / dof)
    )
    tail = np.exp(log_pdf) * (dof + q * q) / ((dof - 1.0) * (1.0 - alpha))
    return -loc + scale * q, -loc + scale * tail


def cornish_fisher_var_es(
    mu: np.ndarray, sigma: np.ndarray, skew: np.ndarray, kurt: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cornish-Fisher VaR and ES (positive losses); ``kurt`` is the excess kurtosis.

    ES averages the expansion ``z_cf(Z) = c0 + c1 Z + c2 Z^2 + c3 Z^3`` over ``Z <= z``:
    ``E[Z^k | Z <= z]`` from ``M_k = -z^(k-1) phi(z) + (k - 1) M_(k-2)``, ``M_0 = Phi(z)``.
    """
    z = special.ndtri(1.0 - alpha)
    z_cf = (
        z
        + (z * z - 1.0) * skew / 6.0
        + (z**3 - 3.0 * z) * kurt / 24.0
        - (2.0 * z**3 - 5.0 * z) * skew * skew / 36.0
    )
    c0 = -skew / 6.0
    c1 = 1.0 - kurt / 8.0 + 5.0 * skew * skew / 36.0
    c2 = skew / 6.0
    c3 = kurt / 24.0 - skew * skew / 18.0
    phi = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    m0 = 1.0 - alpha
    m1 = -phi
    m2 = -z * phi + m0
    m3 = -(z * z + 2.0) * phi
    tail_mean = (c0 * m0 + c1 * m1 + c2 * m2 + c3 * m3) / m0
    return -(mu + sigma * z_cf), -(mu + sigma * tail_mean)


def moments_t_params(
    mean: np.ndarray, std: np.ndarray, kurt: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Method-of-moments Student-t: ``dof = 4 + 6 / K`` (``NU_MAX`` when ``K <= 0``) and the
    scale that matches the sample variance, ``std * sqrt((dof - 2) / dof)``."""
    kurt = np.asarray(kurt, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = np.where(kurt > 0.0, 4.0 + 6.0 / np.where(kurt > 0.0, kurt, 1.0), NU_MAX)
    dof = np.minimum(dof, NU_MAX)
    return np.asarray(mean, dtype=np.float64), std * np.sqrt((dof - 2.0) / dof), dof


def _t_params(rows: np.ndarray, t_fit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if t_fit == "mle":
        out = t_fit_mle_nb(rows, np.empty((5, rows.shape[0])))
        return out[0], out[1], out[2]
    mom = moments_nb(rows, np.empty((4, rows.shape[0])))
    return moments_t_params(mom[0], mom[1], mom[3])


# --------------------------------------------------------------------------- horizon
def horizon_note(method: str, horizon_bars: int, rows: np.ndarray) -> str | None:
    """The warning text when scaling ``method`` to ``horizon_bars`` is approximate, else None."""
    if horizon_bars == 1:
        return None
    if method != "gaussian":
        return (
            f"{method} VaR/ES scaled to {horizon_bars} bars by sqrt(time): exact only for "
            "i.i.d. Gaussian returns; fat tails and volatility clustering make it an "
            "approximation"
        )
    centred = rows - rows.mean(axis=1, keepdims=True)
    denom = np.einsum("ij,ij->i", centred, centred)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.einsum("ij,ij->i", centred[:, 1:], centred[:, :-1]) / denom
    band = 1.96 / math.sqrt(rows.shape[1])
    worst = np.nanmax(np.abs(rho)) if np.isfinite(rho).any() else 0.0
    if worst > band:
        return (
            f"gaussian VaR/ES scaled to {horizon_bars} bars assumes independent returns, but "
            f"the lag-1 autocorrelation {worst:.3f} lies outside +-{band:.3f}; sqrt(time) "
            "scaling is an approximation here"
        )
    return None


# --------------------------------------------------------------------------- estimation
def estimate_rows(
    rows: np.ndarray,
    method: str,
    alpha: float,
    *,
    horizon_bars: int = 1,
    quantile_method: str = "inverted_cdf",
    t_fit: str = "mle",
    ewma_lambda: float = 0.94,
) -> tuple[np.ndarray, np.ndarray]:
    """VaR and ES of each row of ``rows`` (validated ``(n_series, n_obs)`` array)."""
    p = 1.0 - alpha
    linear = quantile_method == "linear"
    k = rows.shape[0]
    if method == "historical":
        out = historical_var_es_nb(rows, p, linear, np.empty((2, k)))
    elif method == "fhs":
        out = fhs_var_es_nb(rows, p, linear, ewma_lambda, np.empty((2, k)))
    elif method == "student_t" and t_fit == "mle":
        fit = t_fit_mle_nb(rows, np.empty((5, k)))
        return scale_to_horizon(*student_t_var_es(fit[0], fit[1], fit[2], alpha), horizon_bars)
    else:
        return moments_var_es(method, moments_nb(rows, np.empty((4, k))), alpha, horizon_bars)
    return scale_to_horizon(out[0], out[1], horizon_bars)


def moments_var_es(
    method: str, mom: np.ndarray, alpha: float, horizon_bars: int
) -> tuple[np.ndarray, np.ndarray]:
    """VaR and ES of the moment-based methods (``"gaussian"``, ``"student_t"`` fitted by
    moments, ``"cornish_fisher"``) from ``mom`` = rows of mean, std, skewness and excess
    kurtosis (as :func:`~quantum_trading.risk.measures_nb.moments_nb` returns them)."""
    if method == "gaussian":
        h = float(horizon_bars)
        return gaussian_var_es(h * mom[0], math.sqrt(h) * mom[1], alpha)
    if method == "student_t":
        var, es = student_t_var_es(*moments_t_params(mom[0], mom[1], mom[3]), alpha)
    else:
        var, es = cornish_fisher_var_es(mom[0], mom[1], mom[2], mom[3], alpha)
    return scale_to_horizon(var, es, horizon_bars)


def scale_to_horizon(
    var: np.ndarray, es: np.ndarray, horizon_bars: int
) -> tuple[np.ndarray, np.ndarray]:
    """One-bar VaR and ES times ``sqrt(horizon_bars)`` (the non-Gaussian horizon rule), as
    float64 arrays."""
    if horizon_bars != 1:
        root = math.sqrt(float(horizon_bars))
        var, es = var * root, es * root
    return np.asarray(var, dtype=np.float64), np.asarray(es, dtype=np.float64)


def check_common(
    method: object,
    alpha: object,
    horizon_bars: object,
    quantile_method: object,
    t_fit: object,
    ewma_lambda: object,
) -> tuple[str, float, int, str, str, float]:
    """The arguments shared by :func:`var_es` and its relatives, checked in this order."""
    return (
        check_choice(method, "method", METHODS),
        check_alpha(alpha),
        check_int(horizon_bars, "horizon_bars", 1),
        check_choice(quantile_method, "quantile_method", QUANTILE_METHODS),
        check_choice(t_fit, "t_fit", T_FITS),
        check_unit_float(ewma_lambda, "ewma_lambda"),
    )


def var_es(
    returns: pd.Series | pd.DataFrame,
    method: VaRMethod = "historical",
    alpha: float = 0.99,
    *,
    horizon_bars: int = 1,
    quantile_method: QuantileMethod = "inverted_cdf",
    t_fit: TFit = "mle",
    ewma_lambda: float = 0.94,
) -> VaRES:
    """Value at Risk and Expected Shortfall of per-bar simple returns.

    Parameters
    ----------
    returns:
        Per-bar simple returns (fractions): a Series, or a DataFrame with one column per
        asset. Must be finite; at least 10 (historical/FHS: ``ceil(1 / (1 - alpha))``).
    method:
        ``"historical"`` (default), ``"gaussian"``, ``"student_t"``, ``"cornish_fisher"`` or
        ``"fhs"`` (see the module docstring for each definition).
    alpha:
        Confidence level in (0, 1), e.g. 0.99 (default).
    horizon_bars:
        Horizon in bars (default 1). Above 1, see *Horizon* in the module docstring; a
        :class:`HorizonScalingWarning` is issued where the scaling is approximate.
    quantile_method:
        Empirical quantile convention of the historical and FHS methods: ``"inverted_cdf"``
        (default, VaR = minus the ``ceil(n (1 - alpha))``-th smallest return) or ``"linear"``.
    t_fit:
        Student-t fit: ``"mle"`` (default) or ``"moments"``.
    ewma_lambda:
        EWMA decay of the FHS volatility filter, in (0, 1) (default 0.94, RiskMetrics).

    Returns
    -------
    VaRES
        ``(var, es)`` as positive loss fractions of value over ``horizon_bars`` bars; floats
        for a Series, Series indexed by column for a DataFrame. An estimate from returns up to
        bar t is known at bar t's close and is the forecast for the next ``horizon_bars``.

    Examples
    --------
    >>> r = pd.Series([-0.03, -0.01, 0.0, 0.01, 0.02] * 20)
    >>> var_es(r, "historical", 0.95)
    VaRES(var=0.03, es=0.03)
    >>> round(var_es(r, "gaussian", 0.99).var, 4)  # 0.002 + 2.3263 * 0.01744
    0.0422
    """
    method, alpha, horizon_bars, quantile_method, t_fit, ewma_lambda = check_common(
        method, alpha, horizon_bars, quantile_method, t_fit, ewma_lambda
    )
    rows, labels, several = returns_matrix(returns)
    check_length(rows.shape[1], method, alpha)
    if quantile_method == "linear" and rows.shape[1] < 2:
        raise ValueError("returns needs at least 2 observations for quantile_method='linear'")
    note = horizon_note(method, horizon_bars, rows)
    if note is not None:
        warn_horizon(note)
    var, es = estimate_rows(
        rows,
        method,
        alpha,
        horizon_bars=horizon_bars,
        quantile_method=quantile_method,
        t_fit=t_fit,
        ewma_lambda=ewma_lambda,
    )
    if not several:
        return VaRES(float(var[0]), float(es[0]))
    if labels is None:
        return VaRES(var, es)  # type: ignore[arg-type]
    return VaRES(pd.Series(var, index=labels, name="var"), pd.Series(es, index=labels, name="es"))


def warn_horizon(message: str) -> None:
    """Issue a :class:`HorizonScalingWarning` pointing at the first caller outside ``risk``."""
    level = 1
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
        "quantum_trading.risk"
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(message, HorizonScalingWarning, stacklevel=level + 1)


def value_at_risk(
    returns: pd.Series | pd.DataFrame,
    method: VaRMethod = "historical",
    alpha: float = 0.99,
    *,
    horizon_bars: int = 1,
    quantile_method: QuantileMethod = "inverted_cdf",
    t_fit: TFit = "mle",
    ewma_lambda: float = 0.94,
) -> float | pd.Series:
    """Value at Risk: the ``var`` of :func:`var_es` (same arguments and conventions).

    Examples
    --------
    >>> r = pd.Series(np.linspace(-0.05, 0.05, 101))
    >>> value_at_risk(r, "historical", 0.99)  # the ceil(101 * 0.01) = 2nd smallest return
    0.049
    """
    return var_es(returns, method, alpha, horizon_bars=horizon_bars,
                  quantile_method=quantile_method, t_fit=t_fit, ewma_lambda=ewma_lambda).var


def expected_shortfall(
    returns: pd.Series | pd.DataFrame,
    method: VaRMethod = "historical",
    alpha: float = 0.99,
    *,
    horizon_bars: int = 1,
    quantile_method: QuantileMethod = "inverted_cdf",
    t_fit: TFit = "mle",
    ewma_lambda: float = 0.94,
) -> float | pd.Series:
    """Expected Shortfall: the ``es`` of :func:`var_es` (same arguments and conventions).

    Examples
    --------
    >>> r = pd.Series(np.linspace(-0.05, 0.05, 101))
    >>> round(expected_shortfall(r, "historical", 0.99), 6)  # (0.05 + 0.01 * 0.049) / 1.01
    0.04999
    """
    return var_es(returns, method, alpha, horizon_bars=horizon_bars,
                  quantile_method=quantile_method, t_fit=t_fit, ewma_lambda=ewma_lambda).es


def fit_student_t(
    returns: pd.Series | pd.DataFrame, method: TFit = "mle"
) -> StudentTFit | pd.DataFrame:
    """Fit a location-scale Student-t to returns.

    Parameters
    ----------
    returns:
        Finite per-bar returns: a Series (or a DataFrame, one fit per column), >= 10 values.
    method:
        ``"mle"`` (default): maximum likelihood by damped Newton on (loc, log scale², log dof)
        with exact gradient and Hessian, started from the method of moments; ``"moments"``:
        ``dof = 4 + 6 / K`` from the excess kurtosis K, scale from the sample variance.
        ``dof`` is kept in ``[1.1, 10,000]`` (a sample with ``K <= 0`` gets 10,000). When
        one value fills more than half the sample (e.g. many zero returns) the likelihood is
        unbounded, or nearly so, as the scale goes to 0 (unbounded once that share exceeds
        ``dof / (dof + 1)``), and ``"mle"`` returns the method-of-moments fit.

    Returns
    -------
    StudentTFit or pd.DataFrame
        ``(loc, scale, dof)``; for a DataFrame, one row per column.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> fit = fit_student_t(pd.Series(0.01 * rng.standard_t(4, 20_000)))
    >>> round(fit.dof, 1), round(fit.scale, 3)
    (4.0, 0.01)
    """
    method = check_choice(method, "method", T_FITS)
    rows, labels, several = returns_matrix(returns)
    check_length(rows.shape[1], "student_t", 0.5)
    loc, scale, dof = _t_params(rows, method)
    if not several:
        return StudentTFit(float(loc[0]), float(scale[0]), float(dof[0]))
    return pd.DataFrame({"loc": loc, "scale": scale, "dof": dof}, index=labels)
