"""Numba kernels of the synthetic market generator (:mod:`quantum_trading.data.synthetic`).

Every kernel is deterministic: the random draws come in as arrays (made by a numpy
``Generator`` in the Python layer), so a seed fixes the output. Arrays are ``[T]`` (one value
per bar) or ``[T, N]`` (bar x asset); the regime codes are those of
:class:`quantum_trading.data.synthetic.Regime` (0 trend up, 1 trend down, 2 mean-reverting,
3 crash).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["log_returns_nb", "premium_path_nb", "regime_path_nb"]

_MEAN_REVERT = 2
_GARCH_SHOCK_CAP = 50.0  # cap on the squared standardised shock fed back into the variance


@njit(cache=True)
def regime_path_nb(transition: np.ndarray, initial: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample a Markov chain of regimes.

    Parameters
    ----------
    transition:
        ``[K, K]`` row-stochastic matrix, ``transition[i, j]`` = P(regime j at bar t+1 | i at t).
    initial:
        ``[K]`` probabilities of the regime of the first bar.
    u:
        ``[T]`` uniform draws in [0, 1); one per bar.

    Returns
    -------
    np.ndarray
        ``[T]`` int64 regime codes.
    """
    n_bars = u.shape[0]
    n_states = transition.shape[0]
    out = np.empty(n_bars, dtype=np.int64)
    if n_bars == 0:
        return out
    state = n_states - 1
    acc = 0.0
    for j in range(n_states):
        acc += initial[j]
        if u[0] < acc:
            state = j
            break
    out[0] = state
    for t in range(1, n_bars):
        acc = 0.0
        nxt = n_states - 1
        for j in range(n_states):
            acc += transition[state, j]
            if u[t] < acc:
                nxt = j
                break
        state = nxt
        out[t] = state
    return out


@njit(cache=True)
def log_returns_nb(
    regimes: np.ndarray,
    shocks: np.ndarray,
    jumps: np.ndarray,
    drift_bar: np.ndarray,
    sigma_bar: np.ndarray,
    vol_multiplier: np.ndarray,
    mr_kappa: float,
    mr_ar1: float,
    garch_alpha: float,
    garch_beta: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Close-to-close log returns with regime drift/volatility, GARCH clustering and reversion.

    ``r[t, i] = drift[k] + sigma[i] * mult[k] * sqrt(h[t, i]) * shocks[t, i] + jumps[t, i]``
    with ``k = regimes[t]``. In the mean-reverting regime two terms are added: ``mr_ar1 *
    r[t-1, i]`` (negative lag-1 autocorrelation) and ``-mr_kappa * (x[t-1, i] - anchor[i])``,
    a pull of the log price ``x`` back to its level when the regime began. ``h`` is a GARCH(1,1)
    variance factor with unconditional mean 1:
    ``h[t] = (1 - a - b) + a * h[t-1] * e[t-1]**2 + b * h[t-1]`` where ``e`` is last bar's
    standardised shock (jump included, squared value capped at 50).

    Parameters
    ----------
    regimes:
        ``[T]`` regime codes.
    shocks:
        ``[T, N]`` correlated standard normal diffusion shocks.
    jumps:
        ``[T, N]`` jump log returns (0 where no jump).
    drift_bar:
        ``[K]`` expected log return per bar of each regime.
    sigma_bar:
        ``[N]`` base volatility per bar of each asset (log-return standard deviation).
    vol_multiplier:
        ``[K]`` volatility multiplier of each regime.
    mr_kappa, mr_ar1:
        Level reversion per bar (0..1) and lag-1 return coefficient of the mean-reverting regime.
    garch_alpha, garch_beta:
        GARCH(1,1) coefficients, ``alpha + beta < 1``.

    Returns
    -------
    returns, sigma:
        ``[T, N]`` log returns, and the diffusion volatility per bar that produced each one
        (used for the intrabar range).
    """
    n_bars, n_assets = shocks.shape
    returns = np.empty((n_bars, n_assets))
    sigma = np.empty((n_bars, n_assets))
    omega = 1.0 - garch_alpha - garch_beta
    for i in range(n_assets):
        h = 1.0
        x = 0.0
        anchor = 0.0
        prev_r = 0.0
        prev_e2 = 1.0
        prev_regime = -1
        for t in range(n_bars):
            k = regimes[t]
            if t > 0:
                h = omega + garch_alpha * h * prev_e2 + garch_beta * h
            s = sigma_bar[i] * vol_multiplier[k] * np.sqrt(h)
            r = drift_bar[k] + s * shocks[t, i] + jumps[t, i]
            if k == _MEAN_REVERT:
                if prev_regime != _MEAN_REVERT:
                    anchor = x
                r += mr_ar1 * prev_r - mr_kappa * (x - anchor)
            returns[t, i] = r
            sigma[t, i] = s
            e = shocks[t, i] + jumps[t, i] / s if s > 0.0 else 0.0
            prev_e2 = min(e * e, _GARCH_SHOCK_CAP)
            prev_r = r
            prev_regime = k
            x += r
    return returns, sigma


@njit(cache=True)
def premium_path_nb(
    returns: np.ndarray,
    regimes: np.ndarray,
    noise: np.ndarray,
    premium_mean: float,
    trend_coef: float,
    trend_alpha: float,
    kappa: float,
    noise_sd: float,
    vol_multiplier: np.ndarray,
    basis_alpha: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Perpetual premium (last vs index) and the smoothed basis that the mark price uses.

    The premium ``p`` is an Ornstein-Uhlenbeck process around a target tied to the recent trend:
    ``target = premium_mean + trend_coef * trend`` where ``trend = ema(returns) / trend_alpha``
    approximates the log return over the last ``1 / trend_alpha`` bars. Each bar
    ``p += kappa * (target - p) + noise_sd * mult[k] * noise`` (clipped to +-5%), and the
    basis ``b += basis_alpha * (p - b)``. Both are fractions (0.001 = 0.1%) and include bar t's
    own return, i.e. they are known at bar t's close.

    Returns
    -------
    premium, basis:
        ``[T, N]`` arrays.
    """
    n_bars, n_assets = returns.shape
    premium = np.empty((n_bars, n_assets))
    basis = np.empty((n_bars, n_assets))
    for i in range(n_assets):
        ema = 0.0
        p = premium_mean
        b = premium_mean
        for t in range(n_bars):
            ema += trend_alpha * (returns[t, i] - ema)
            target = premium_mean + trend_coef * ema / trend_alpha
            p += kappa * (target - p) + noise_sd * vol_multiplier[regimes[t]] * noise[t, i]
            p = min(max(p, -0.05), 0.05)
            b += basis_alpha * (p - b)
            premium[t, i] = p
            basis[t, i] = b
    return premium, basis
