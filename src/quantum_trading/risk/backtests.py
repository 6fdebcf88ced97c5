"""VaR backtests: Kupiec's proportion of failures, Christoffersen's independence and
conditional-coverage tests.

An *exception* (a "failure" or "hit") is a bar whose loss exceeds the VaR forecast for it:
``r_{t+1} < -VaR_t`` where ``VaR_t`` is computed at bar ``t``'s close from returns ``<= t``
(as :func:`~quantum_trading.risk.measures_rolling.rolling_var` does). A loss exactly equal to
the VaR is not an exception. Under a correct VaR at level ``alpha`` exceptions are independent
Bernoulli(``p = 1 - alpha``) draws.

- **Kupiec (1995)**, proportion of failures, with ``x`` exceptions in ``T`` bars:
  ``LR_pof = -2 ln[(1 - p)^(T - x) p^x] + 2 ln[(1 - x/T)^(T - x) (x/T)^x]`` ~ chi2(1).
- **Christoffersen (1998)**, independence: with ``n_ij`` the number of bars in state ``j``
  following a bar in state ``i`` (1 = exception), ``pi_0 = n01 / (n00 + n01)``, ``pi_1 = n11 /
  (n10 + n11)``, ``pi = (n01 + n11) / (T - 1)``:
  ``LR_ind = -2 ln[(1 - pi)^(n00 + n10) pi^(n01 + n11)]
  + 2 ln[(1 - pi_0)^n00 pi_0^n01 (1 - pi_1)^n10 pi_1^n11]`` ~ chi2(1).
- **Conditional coverage**: ``LR_cc = LR_pof + LR_ind`` ~ chi2(2), with ``LR_pof`` over all
  ``T`` bars (as Jorion and MATLAB's ``varbacktest``; Christoffersen drops the first bar from
  ``LR_pof`` to make the sum an exact likelihood ratio, a difference of one bar).

``0 ln 0`` is taken as 0, so no exceptions (or only exceptions) give finite statistics.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import xlogy

from quantum_trading.errors import DataError
from quantum_trading.risk.measures import check_alpha

__all__ = [
    "ChristoffersenResult",
    "KupiecResult",
    "VaRBacktest",
    "backtest_var",
    "christoffersen",
    "kupiec_pof",
    "var_exceptions",
]


class KupiecResult(NamedTuple):
    """Kupiec's proportion-of-failures test."""

    n_obs: int
    n_exceptions: int
    expected_rate: float
    """``1 - alpha``."""
    exception_rate: float
    """``n_exceptions / n_obs``."""
    lr_pof: float
    p_value: float
    """``P(chi2(1) > lr_pof)``: a small value rejects the VaR model's coverage."""


class ChristoffersenResult(NamedTuple):
    """Christoffersen's independence and conditional-coverage tests (with Kupiec's POF)."""

    n00: int
    n01: int
    n10: int
    n11: int
    lr_pof: float
    lr_ind: float
    lr_cc: float
    p_value_pof: float
    p_value_ind: float
    p_value_cc: float


class VaRBacktest(NamedTuple):
    """Exceptions of a VaR forecast series and the tests on them."""

    exceptions: pd.Series
    kupiec: KupiecResult
    christoffersen: ChristoffersenResult


def _lr_pof(n_obs: int, n_exc: int, p: float) -> float:
    rate = n_exc / n_obs
    null = xlogy(n_obs - n_exc, 1.0 - p) + xlogy(n_exc, p)
    alt = xlogy(n_obs - n_exc, 1.0 - rate) + xlogy(n_exc, rate)
    return max(float(-2.0 * (null - alt)), 0.0)


def kupiec_pof(n_obs: int, n_exceptions: int, alpha: float) -> KupiecResult:
    """Kupiec's proportion-of-failures likelihood-ratio test.

    Parameters
    ----------
    n_obs:
        Number of bars tested, >= 1.
    n_exceptions:
        Number of exceptions among them, 0 to ``n_obs``.
    alpha:
        VaR confidence level in (0, 1); the expected exception rate is ``1 - alpha``.

    Returns
    -------
    KupiecResult
        ``lr_pof`` and its chi2(1) ``p_value``.

    Examples
    --------
    >>> r = kupiec_pof(250, 8, 0.99)
    >>> round(r.lr_pof, 3), round(r.p_value, 4)
    (7.734, 0.0054)
    """
    alpha = check_alpha(alpha)
    if isinstance(n_obs, bool) or not isinstance(n_obs, numbers.Integral) or n_obs < 1:
        raise ValueError(f"n_obs must be an integer >= 1, got {n_obs!r}")
    if (
        isinstance(n_exceptions, bool)
        or not isinstance(n_exceptions, numbers.Integral)
        or not 0 <= n_exceptions <= n_obs
    ):
        raise ValueError(
            f"n_exceptions must be an integer in [0, n_obs={n_obs}], got {n_exceptions!r}"
        )
    n_obs, n_exceptions = int(n_obs), int(n_exceptions)
    lr = _lr_pof(n_obs, n_exceptions, 1.0 - alpha)
    return KupiecResult(
        n_obs=n_obs,
        n_exceptions=n_exceptions,
        expected_rate=1.0 - alpha,
        exception_rate=n_exceptions / n_obs,
        lr_pof=lr,
        p_value=float(stats.chi2.sf(lr, 1)),
    )


def _as_hits(exceptions: object) -> np.ndarray:
    values = exceptions.to_numpy() if isinstance(exceptions, pd.Series) else exceptions
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"exceptions must be one-dimensional, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
            raise ValueError("exceptions must hold booleans (or 0/1), one per bar")
        arr = arr.astype(bool)
    return arr


def christoffersen(exceptions: pd.Series | np.ndarray, alpha: float) -> ChristoffersenResult:
    """Christoffersen's independence (``lr_ind``) and conditional-coverage (``lr_cc``) tests.

    Parameters
    ----------
    exceptions:
        One boolean (or 0/1) per bar in time order, True where the loss exceeded the VaR;
        at least 2 bars.
    alpha:
        VaR confidence level in (0, 1).

    Returns
    -------
    ChristoffersenResult
        Transition counts, ``lr_pof`` (Kupiec, all bars), ``lr_ind`` (chi2(1)), ``lr_cc =
        lr_pof + lr_ind`` (chi2(2)) and their p-values.

    Examples
    --------
    >>> hits = np.zeros(100, dtype=bool)
    >>> hits[[10, 11, 50]] = True
    >>> res = christoffersen(hits, 0.99)
    >>> (res.n00, res.n01, res.n10, res.n11), round(res.lr_ind, 3)
    ((94, 2, 2, 1), 3.625)
    """
    alpha = check_alpha(alpha)
    hits = _as_hits(exceptions)
    if hits.shape[0] < 2:
        raise ValueError(f"exceptions needs at least 2 bars, got {hits.shape[0]}")
    prev, cur = hits[:-1], hits[1:]
    n01 = int(np.count_nonzero(~prev & cur))
    n10 = int(np.count_nonzero(prev & ~cur))
    n11 = int(np.count_nonzero(prev & cur))
    n00 = int(prev.shape[0]) - n01 - n10 - n11
    pi0 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi1 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    null = xlogy(n00 + n10, 1.0 - pi) + xlogy(n01 + n11, pi)
    alt = xlogy(n00, 1.0 - pi0) + xlogy(n01, pi0) + xlogy(n10, 1.0 - pi1) + xlogy(n11, pi1)
    lr_ind = max(float(-2.0 * (null - alt)), 0.0)
    lr_pof = _lr_pof(int(hits.shape[0]), int(np.count_nonzero(hits)), 1.0 - alpha)
    lr_cc = lr_pof + lr_ind
    return ChristoffersenResult(
        n00=n00,
        n01=n01,
        n10=n10,
        n11=n11,
        lr_pof=lr_pof,
        lr_ind=lr_ind,
        lr_cc=lr_cc,
        p_value_pof=float(stats.chi2.sf(lr_pof, 1)),
        p_value_ind=float(stats.chi2.sf(lr_ind, 1)),
        p_value_cc=float(stats.chi2.sf(lr_cc, 2)),
    )


def var_exceptions(returns: pd.Series, var: pd.Series) -> pd.Series:
    """Exceptions of a VaR forecast series: ``returns[t + 1] < -var[t]``.

    Parameters
    ----------
    returns:
        Per-bar simple returns (finite).
    var:
        VaR at each bar as a positive loss fraction, computed at that bar's close from returns
        ``<= t`` (e.g. :func:`~quantum_trading.risk.measures_rolling.rolling_var`); on the
        index of ``returns``. NaN (warm-up) bars are not tested.

    Returns
    -------
    pd.Series
        Boolean ``exception`` for each bar ``t + 1`` whose previous bar has a VaR, on those
        bars' index.

    Examples
    --------
    >>> r = pd.Series([0.0, -0.03, 0.01, -0.01])
    >>> var_exceptions(r, pd.Series([0.02, 0.02, 0.02, 0.02])).tolist()
    [True, False, False]
    """
    if not isinstance(returns, pd.Series) or not isinstance(var, pd.Series):
        raise TypeError("returns and var must be pandas Series")
    if not var.index.equals(returns.index):
        raise ValueError("var must be on the index of returns (VaR at bar t, from returns <= t)")
    forecast = var.shift(1).to_numpy(dtype=np.float64, na_value=np.nan)
    r = returns.to_numpy(dtype=np.float64, na_value=np.nan)
    tested = np.isfinite(forecast)
    bad = np.flatnonzero(tested & ~np.isfinite(r))
    if bad.size:
        raise DataError(
            "returns holds non-finite values (NaN or inf)", rows=bad, column=returns.name
        )
    hits = r[tested] < -forecast[tested]
    return pd.Series(hits, index=returns.index[tested], name="exception")


def backtest_var(returns: pd.Series, var: pd.Series, alpha: float) -> VaRBacktest:
    """Backtest a VaR forecast series: exceptions, Kupiec's and Christoffersen's tests.

    Parameters
    ----------
    returns, var:
        As in :func:`var_exceptions` (``var[t]`` is the forecast for bar ``t + 1``).
    alpha:
        The VaR's confidence level in (0, 1).

    Returns
    -------
    VaRBacktest
        ``exceptions`` (boolean Series), ``kupiec`` and ``christoffersen`` results.

    Examples
    --------
    >>> r = pd.Series(np.random.default_rng(0).normal(0.0, 0.01, 600))
    >>> from quantum_trading.risk.measures_rolling import rolling_var
    >>> bt = backtest_var(r, rolling_var(r, 250, "gaussian", 0.99), 0.99)
    >>> bt.kupiec.n_obs, bt.kupiec.p_value > 0.05
    (350, True)
    """
    alpha = check_alpha(alpha)
    hits = var_exceptions(returns, var)
    if hits.shape[0] < 2:
        raise ValueError(f"only {hits.shape[0]} bars have a VaR forecast; need at least 2")
    kupiec = kupiec_pof(int(hits.shape[0]), int(hits.sum()), alpha)
    return VaRBacktest(hits, kupiec, christoffersen(hits.to_numpy(), alpha))
