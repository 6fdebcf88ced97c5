"""VaR and ES over time: rolling-window estimates for reports and backtests.

The value at bar ``t`` is exactly :func:`~quantum_trading.risk.measures.var_es` of the
``window`` returns ending at bar ``t`` (``returns[t - window + 1 : t + 1]``): it uses returns
``<= t`` only, is known at bar ``t``'s close and is the VaR forecast for bar ``t + 1`` (what
:func:`~quantum_trading.risk.backtests.backtest_var` compares with the next return). The first
``window - 1`` values are NaN. Conventions (sign, quantiles, methods) are those of
:mod:`quantum_trading.risk.measures`; the one difference is the default Student-t fit, the
method of moments here (a maximum-likelihood fit per bar is available with ``t_fit="mle"``
and costs a few passes over each window).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantum_trading.risk.measures import (
    QuantileMethod,
    TFit,
    VaRMethod,
    check_common,
    check_int,
    check_length,
    horizon_note,
    moments_var_es,
    returns_matrix,
    scale_to_horizon,
    student_t_var_es,
    warn_horizon,
)
from quantum_trading.risk.measures_nb import (
    rolling_fhs_nb,
    rolling_historical_nb,
    rolling_moments_nb,
    rolling_t_mle_nb,
)

__all__ = ["rolling_es", "rolling_var", "rolling_var_es"]


def rolling_var_es(
    returns: pd.Series,
    window: int,
    method: VaRMethod = "historical",
    alpha: float = 0.99,
    *,
    horizon_bars: int = 1,
    quantile_method: QuantileMethod = "inverted_cdf",
    t_fit: TFit = "moments",
    ewma_lambda: float = 0.94,
) -> pd.DataFrame:
    """Rolling VaR and ES of a return series.

    Parameters
    ----------
    returns:
        Per-bar simple returns (a Series; finite, sorted in time).
    window:
        Number of returns in each estimate: at least 10, and for ``"historical"``/``"fhs"``
        at least ``ceil(1 / (1 - alpha))`` (100 at 99%) and not above ``len(returns)``.
    method, alpha, horizon_bars, quantile_method, ewma_lambda:
        As in :func:`~quantum_trading.risk.measures.var_es`.
    t_fit:
        Student-t fit per window: ``"moments"`` (default here) or ``"mle"``.

    Returns
    -------
    pd.DataFrame
        Columns ``var`` and ``es`` (positive loss fractions) on the index of ``returns``; row
        ``t`` uses returns ``t - window + 1 .. t`` (known at bar t's close); the first
        ``window - 1`` rows are NaN.

    Examples
    --------
    >>> r = pd.Series([-0.02, 0.01, -0.01, 0.02] * 30)
    >>> rolling_var_es(r, 100, "historical", 0.95).dropna().iloc[0].tolist()
    [0.02, 0.02]
    """
    method, alpha, horizon_bars, quantile_method, t_fit, ewma_lambda = check_common(
        method, alpha, horizon_bars, quantile_method, t_fit, ewma_lambda
    )
    if not isinstance(returns, pd.Series):
        raise TypeError(f"returns must be a pandas Series, got {type(returns).__name__}")
    window = check_int(window, "window", 1)
    check_length(window, method, alpha, name="window")
    rows, _, _ = returns_matrix(returns)
    x = rows[0]
    if window > x.shape[0]:
        raise ValueError(f"window must be <= len(returns) = {x.shape[0]}, got {window}")
    note = horizon_note(method, horizon_bars, rows)
    if note is not None:
        warn_horizon(note)
    var, es = _rolling(x, window, method, alpha, horizon_bars, quantile_method, t_fit, ewma_lambda)
    return pd.DataFrame({"var": var, "es": es}, index=returns.index)


def _rolling(
    x: np.ndarray,
    window: int,
    method: str,
    alpha: float,
    horizon_bars: int,
    quantile_method: str,
    t_fit: str,
    ewma_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    p = 1.0 - alpha
    linear = quantile_method == "linear"
    n = x.shape[0]
    if method == "historical":
        out = rolling_historical_nb(x, window, p, linear, np.empty((2, n)))
    elif method == "fhs":
        out = rolling_fhs_nb(x, window, p, linear, ewma_lambda, np.empty((2, n)))
    elif method == "student_t" and t_fit == "mle":
        fit = rolling_t_mle_nb(x, window, np.empty((5, n)))
        with np.errstate(invalid="ignore"):
            var, es = student_t_var_es(fit[0], fit[1], fit[2], alpha)
        return scale_to_horizon(var, es, horizon_bars)
    else:
        mom = rolling_moments_nb(x, window, np.empty((4, n)))
        with np.errstate(invalid="ignore"):
            return moments_var_es(method, mom, alpha, horizon_bars)
    return scale_to_horizon(out[0], out[1], horizon_bars)


def rolling_var(
    returns: pd.Series,
    window: int,
    method: VaRMethod = "historical",
    alpha: float = 0.99,
    *,
    horizon_bars: int = 1,
    quantile_method: QuantileMethod = "inverted_cdf",
    t_fit: TFit = "moments",
    ewma_lambda: float = 0.94,
) -> pd.Series:
    """Rolling VaR: the ``var`` column of :func:`rolling_var_es`, named ``var_<method>``.

    Examples
    --------
    >>> r = pd.Series([-0.02, 0.01, -0.01, 0.02] * 30)
    >>> float(rolling_var(r, 100, "historical", 0.99).iloc[-1])
    0.02
    """
    frame = rolling_var_es(returns, window, method, alpha, horizon_bars=horizon_bars,
                           quantile_method=quantile_method, t_fit=t_fit, ewma_lambda=ewma_lambda)
    return frame["var"].rename(f"var_{method}")


def rolling_es(
    returns: pd.Series,
    window: int,
    method: VaRMethod = "historical",
    alpha: float = 0.99,
    *,
    horizon_bars: int = 1,
    quantile_method: QuantileMethod = "inverted_cdf",
    t_fit: TFit = "moments",
    ewma_lambda: float = 0.94,
) -> pd.Series:
    """Rolling ES: the ``es`` column of :func:`rolling_var_es`, named ``es_<method>``.

    Examples
    --------
    >>> r = pd.Series([-0.02, 0.01, -0.01, 0.02] * 30)
    >>> float(rolling_es(r, 100, "historical", 0.99).iloc[-1])
    0.02
    """
    frame = rolling_var_es(returns, window, method, alpha, horizon_bars=horizon_bars,
                           quantile_method=quantile_method, t_fit=t_fit, ewma_lambda=ewma_lambda)
    return frame["es"].rename(f"es_{method}")
