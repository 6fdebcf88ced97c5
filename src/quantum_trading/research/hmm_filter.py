"""The Gaussian HMM's causal filter: log densities of the observations under each state and
the forward recursion ``P(state_t | x_1..t)``, used by
:class:`~quantum_trading.research.regimes.HMMRegimes` for labels that use data up to t only
(hmmlearn's own ``predict_proba`` smooths with future data).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["forward_filter", "gaussian_log_density", "stationary_distribution"]


def stationary_distribution(transmat: np.ndarray) -> np.ndarray:
    """The stationary distribution π of a Markov transition matrix (π A = π, Σ π = 1),
    least squares, clipped at 0; uniform if degenerate.

    >>> stationary_distribution(np.array([[0.9, 0.1], [0.2, 0.8]])).round(4).tolist()
    [0.6667, 0.3333]
    """
    k = transmat.shape[0]
    system = np.vstack([transmat.T - np.eye(k), np.ones(k)])
    probs = np.linalg.lstsq(system, np.r_[np.zeros(k), 1.0], rcond=None)[0]
    probs = np.clip(probs, 0.0, None)
    return probs / probs.sum() if probs.sum() > 0 else np.full(k, 1.0 / k)


def gaussian_log_density(x: np.ndarray, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """``[T, K]`` log N(x_t; mean_k, cov_k) for full ``[K, D, D]`` covariances."""
    n, d = x.shape
    out = np.empty((n, means.shape[0]))
    for k in range(means.shape[0]):
        chol = np.linalg.cholesky(covars[k])
        sol = np.linalg.solve(chol, (x - means[k]).T)
        out[:, k] = (-0.5 * np.sum(sol * sol, axis=0) - np.sum(np.log(np.diag(chol)))
                     - 0.5 * d * math.log(2.0 * math.pi))
    return out


def forward_filter(loglik: np.ndarray, valid: np.ndarray, transmat: np.ndarray,
                    start: np.ndarray) -> np.ndarray:
    """Filtered ``P(state_t | x_1..t)`` per row; NaN rows where ``valid`` is False.

    The recursion starts at the first valid row from ``start``; an invalid row later on
    only advances the prediction one step (time passes, nothing is observed).
    """
    n, k = loglik.shape
    out = np.full((n, k), np.nan)
    pred = start.copy()
    started = False
    for t in range(n):
        if not valid[t]:
            if started:
                pred = pred @ transmat
            continue
        started = True
        row = loglik[t]
        weights = pred * np.exp(row - row.max())
        total = weights.sum()
        if not (total > 0.0 and np.isfinite(total)):  # impossible under the prediction
            weights = np.exp(row - row.max())
            total = weights.sum()
        alpha = weights / total
        out[t] = alpha
        pred = alpha @ transmat
    return out
