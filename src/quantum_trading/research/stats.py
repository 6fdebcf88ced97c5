"""Statistics against self-deception: deflated Sharpe ratio, minimum track record length and
the probability of backtest overfitting (CSCV).

Conventions (as :mod:`quantum_trading.backtest.metrics`, whose PSR is reused here):

* **Sharpe ratios are per bar** (non-annualised) unless a name or argument says otherwise:
  ``SR = mean(r) / std(r, ddof=1)`` of simple per-bar returns, risk-free rate 0. Annualise
  with ``× √periods_per_year`` (:func:`~quantum_trading.data.timeframes.periods_per_year`);
  de-annualise a quoted figure with ``÷ √periods_per_year`` before passing it in.
* **Skewness and kurtosis** are population moments; kurtosis is Pearson's (3 for a normal
  law), as :func:`~quantum_trading.backtest.metrics.return_moments` returns them.
* Probabilities are fractions in [0, 1]. Undefined results are NaN, not exceptions; bad
  arguments raise ``ValueError`` naming the argument.

References
----------
* Bailey, D. H. and López de Prado, M. (2012), "The Sharpe Ratio Efficient Frontier",
  *Journal of Risk* 15(2) — PSR and MinTRL.
* Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe Ratio: Correcting for
  Selection Bias, Backtest Overfitting and Non-Normality", *Journal of Portfolio Management*
  40(5) — DSR.
* Bailey, D. H., Borwein, J., López de Prado, M. and Zhu, Q. J. (2015), "The Probability of
  Backtest Overfitting", *Journal of Computational Finance* 20(4) — CSCV and PBO.

>>> round(expected_max_sharpe(100, 0.5 / 250), 4)  # the DSR paper's example, per day
0.1132
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd
from numba import njit

from quantum_trading.backtest.metrics import psr_from_moments, return_moments, sharpe_ratio

__all__ = [
    "PBOResult",
    "deflated_sharpe_ratio",
    "dsr_from_moments",
    "expected_max_sharpe",
    "min_track_record_length",
    "probability_of_backtest_overfitting",
    "sharpe_ratios",
]

_NORMAL = NormalDist()


# --------------------------------------------------------------------------------------------
# Sharpe ratios of many strategies
# --------------------------------------------------------------------------------------------

def sharpe_ratios(returns_matrix: pd.DataFrame | np.ndarray,
                  periods: float = 1.0) -> pd.Series | np.ndarray:
    """Sharpe ratio of every column: ``mean(r) / std(r, ddof=1) × √periods``.

    The column-wise :func:`~quantum_trading.backtest.metrics.sharpe_ratio`: NaN values are
    dropped per column; a column with fewer than two values or zero variance gives NaN.

    Parameters
    ----------
    returns_matrix:
        Per-bar simple returns, one row per bar and one column per strategy (a ``T × N``
        DataFrame or array; a 1-D array is one strategy).
    periods:
        Bars per year to annualise (e.g. ``periods_per_year("1h")`` = 8,766); the default 1
        gives per-bar Sharpe ratios, the unit the DSR and MinTRL formulas use.

    Returns
    -------
    pd.Series or np.ndarray
        One Sharpe ratio per column: a Series named ``"sharpe"`` on the DataFrame's columns,
        else a 1-D float64 array.

    >>> m = pd.DataFrame({"a": [0.02, 0.0, 0.01, -0.01], "b": [0.01, 0.01, 0.01, 0.01]})
    >>> sharpe_ratios(m).round(6).tolist()
    [0.387298, nan]
    """
    if not (isinstance(periods, numbers.Real) and math.isfinite(periods) and periods > 0):
        raise ValueError(f"periods must be a positive number of bars per year, not {periods!r}")
    values = np.asarray(returns_matrix, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"returns_matrix must be 1-D or 2-D (bars × strategies), "
                         f"not {values.ndim}-D")
    valid = ~np.isnan(values)
    count = valid.sum(axis=0)
    safe_count = np.maximum(count, 1)
    filled = np.where(valid, values, 0.0)
    mean = filled.sum(axis=0) / safe_count
    dev = np.where(valid, values - mean, 0.0)
    var = (dev * dev).sum(axis=0) / np.maximum(count - 1, 1)
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((count >= 2) & (sd > 0), mean / sd, np.nan) * math.sqrt(periods)
    if isinstance(returns_matrix, pd.DataFrame):
        return pd.Series(out, index=returns_matrix.columns, name="sharpe")
    return out


# --------------------------------------------------------------------------------------------
# Deflated Sharpe ratio (Bailey & López de Prado, 2014)
# --------------------------------------------------------------------------------------------

def _check_trials(n_trials: int, sr_variance: float) -> None:
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer >= 1, not {n_trials!r}")
    if not (isinstance(sr_variance, numbers.Real) and math.isfinite(sr_variance)
            and sr_variance >= 0):
        raise ValueError(f"sr_variance must be a finite number >= 0, not {sr_variance!r}")


def expected_max_sharpe(n_trials: int, sr_variance: float, sr_mean: float = 0.0) -> float:
    """Expected maximum of ``n_trials`` independent Sharpe ratio estimates (the DSR's
    benchmark ``SR₀``, Bailey & López de Prado 2014, eq. 2, via the false strategy theorem):

    ``E[max SR] ≈ E[SR] + √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N·e)))``

    with ``γ`` ≈ 0.5772 the Euler–Mascheroni constant, ``Φ⁻¹`` the standard normal quantile
    and ``e`` Euler's number. Under the null hypothesis of no skill ``E[SR] = 0``.

    Parameters
    ----------
    n_trials:
        ``N``, the number of (effectively independent) trials, ≥ 1. One trial gives
        ``sr_mean`` (there is no selection).
    sr_variance:
        ``V``, the variance of the trials' Sharpe ratios, in the squared unit of the result
        (per-bar Sharpe ratios give a per-bar ``SR₀``).
    sr_mean:
        ``E[SR]``, the trials' mean Sharpe ratio under the null (0).

    >>> round(expected_max_sharpe(100, 1.0), 4)
    2.5306
    >>> expected_max_sharpe(1, 1.0)
    0.0
    """
    _check_trials(n_trials, sr_variance)
    if n_trials == 1:
        return float(sr_mean)
    n = float(n_trials)
    z = ((1.0 - np.euler_gamma) * _NORMAL.inv_cdf(1.0 - 1.0 / n)
         + np.euler_gamma * _NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e)))
    return float(sr_mean) + math.sqrt(sr_variance) * z


def dsr_from_moments(sr: float, n_obs: int, skew: float, kurtosis: float, *,
                     n_trials: int, sr_variance: float) -> float:
    """Deflated Sharpe ratio from its ingredients (Bailey & López de Prado 2014):

    ``DSR = PSR(SR₀)`` with ``SR₀ =`` :func:`expected_max_sharpe` ``(N, V)``, i.e.

    ``DSR = Φ( (SR − SR₀) √(T − 1) / √(1 − γ3·SR + (γ4 − 1)/4 · SR²) )``

    the probability that the selected strategy's true Sharpe ratio exceeds what the best of
    ``N`` skill-less trials would show. The PSR is
    :func:`~quantum_trading.backtest.metrics.psr_from_moments`.

    Parameters
    ----------
    sr:
        The selected strategy's Sharpe ratio, **per bar** (annualised ÷ √periods per year).
    n_obs:
        ``T``, the number of returns it was estimated on.
    skew, kurtosis:
        Skewness ``γ3`` and Pearson kurtosis ``γ4`` (3 = normal) of those returns.
    n_trials:
        ``N``, the number of independent trials the strategy was selected from (≥ 1).
    sr_variance:
        ``V``, the variance of the trials' **per-bar** Sharpe ratios (an annualised variance
        ÷ periods per year).

    Returns
    -------
    float
        A probability in [0, 1]; NaN when undefined (``n_obs < 2``, non-finite moments).

    >>> sr = 2.5 / math.sqrt(250)   # annualised 2.5 over 1,250 daily returns
    >>> round(dsr_from_moments(sr, 1250, -3.0, 10.0, n_trials=100, sr_variance=0.5 / 250), 4)
    0.9004
    """
    sr0 = expected_max_sharpe(n_trials, sr_variance)
    return psr_from_moments(sr, n_obs, skew, kurtosis, sr_benchmark=sr0)


def deflated_sharpe_ratio(returns: pd.Series | np.ndarray, *,
                          trial_sharpes: pd.Series | np.ndarray | None = None,
                          n_trials: int | None = None,
                          sr_variance: float | None = None) -> float:
    """Deflated Sharpe ratio of the selected strategy's per-bar ``returns``.

    :func:`dsr_from_moments` with the per-bar Sharpe ratio and the moments of ``returns``
    (:func:`~quantum_trading.backtest.metrics.return_moments`), ``N`` and ``V`` taken from
    the trials:

    * ``V`` = ``sr_variance`` if given, else the sample variance (ddof 1) of
      ``trial_sharpes`` — the **per-bar** Sharpe ratios of every trial tried, the selected
      one included (e.g. :func:`sharpe_ratios` of the sweep's returns matrix);
    * ``N`` = ``n_trials`` if given (use the number of *effectively independent* trials when
      they are correlated), else the number of finite ``trial_sharpes``.

    >>> rng = np.random.default_rng(0)
    >>> sweep = rng.normal(0.0, 0.01, size=(1000, 50))
    >>> sweep[:, 7] += 0.004                 # one configuration with a real edge
    >>> srs = sharpe_ratios(sweep)
    >>> best = sweep[:, int(np.argmax(srs))]
    >>> deflated_sharpe_ratio(best, trial_sharpes=srs) > 0.95
    True
    """
    finite: np.ndarray | None = None
    if trial_sharpes is not None:
        values = np.asarray(trial_sharpes, dtype=np.float64).reshape(-1)
        finite = values[np.isfinite(values)]
    if sr_variance is None:
        if finite is None or finite.size < 2:
            raise ValueError("sr_variance is needed, or trial_sharpes with at least two "
                             "finite per-bar Sharpe ratios to estimate it")
        sr_variance = float(np.var(finite, ddof=1))
    if n_trials is None:
        if finite is None or finite.size < 1:
            raise ValueError("n_trials is needed, or trial_sharpes to count the trials")
        n_trials = int(finite.size)
    sr = sharpe_ratio(returns, 1.0)
    skew, kurt, n = return_moments(returns)
    return dsr_from_moments(sr, n, skew, kurt, n_trials=n_trials, sr_variance=sr_variance)


# --------------------------------------------------------------------------------------------
# Minimum track record length (Bailey & López de Prado, 2012)
# --------------------------------------------------------------------------------------------

def min_track_record_length(sr: float, skew: float, kurtosis: float, *,
                            sr_benchmark: float = 0.0, confidence: float = 0.95) -> float:
    """Minimum track record length, in bars, for the observed Sharpe ratio to exceed
    ``sr_benchmark`` with probability ``confidence`` (Bailey & López de Prado 2012):

    ``MinTRL = 1 + (1 − γ3·SR + (γ4 − 1)/4 · SR²) · (Φ⁻¹(confidence) / (SR − SR*))²``

    the ``T`` at which :func:`~quantum_trading.backtest.metrics.psr_from_moments` equals
    ``confidence``. Divide by periods per year for years.

    Parameters
    ----------
    sr, sr_benchmark:
        Observed and benchmark Sharpe ratios, **per bar**.
    skew, kurtosis:
        Skewness ``γ3`` and Pearson kurtosis ``γ4`` (3 = normal) of the returns.
    confidence:
        Required probability, in (0, 1).

    Returns
    -------
    float
        Bars (not rounded up); ``inf`` when ``sr ≤ sr_benchmark`` (no track record is long
        enough); NaN for non-finite inputs or a non-positive variance term.

    >>> round(min_track_record_length(0.1, 0.0, 3.0), 3)
    272.907
    >>> round(min_track_record_length(0.1, -1.0, 6.0), 3)  # fat left tail: longer
    301.992
    """
    if not (isinstance(confidence, numbers.Real) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be a probability in (0, 1), not {confidence!r}")
    if not all(math.isfinite(v) for v in (sr, skew, kurtosis, sr_benchmark)):
        return math.nan
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not var > 0:
        return math.nan
    if sr <= sr_benchmark:
        return math.inf
    z = _NORMAL.inv_cdf(confidence)
    return 1.0 + var * (z / (sr - sr_benchmark)) ** 2


# --------------------------------------------------------------------------------------------
# Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado & Zhu, 2015)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class PBOResult:
    """Outcome of combinatorially symmetric cross-validation (CSCV).

    Arrays have one entry per combination ``c`` (an in-sample choice of half the blocks).

    Attributes
    ----------
    pbo:
        Probability of backtest overfitting: the share of combinations with ``λ_c ≤ 0``,
        i.e. where the in-sample best ranks at or below the out-of-sample median.
    logits:
        ``λ_c = ln(ω̄_c / (1 − ω̄_c))``, the distribution whose mass below 0 is the PBO.
    oos_rank:
        ``ω̄_c = rank / (N + 1)`` of the in-sample best among the ``N`` out-of-sample
        performances (rank 1 = worst, ties get the average rank).
    best_index:
        Column of the in-sample best strategy (−1 where every in-sample value was NaN).
    is_performance, oos_performance:
        The metric of that strategy in and out of sample.
    degradation_slope, degradation_intercept, degradation_r2:
        Least-squares fit ``oos = intercept + slope · is`` over the combinations (the paper's
        performance degradation; a slope ≤ 0 means in-sample excellence does not carry over).
    prob_oos_loss:
        Share of combinations where the in-sample best has a negative out-of-sample metric.
    n_blocks, n_obs_used:
        ``S`` and the rows used (``S · ⌊T / S⌋``; the oldest ``T mod S`` rows are dropped).
    strategies:
        Column labels (or positions) of the returns matrix, to name ``best_index``.
    """

    pbo: float
    logits: np.ndarray
    oos_rank: np.ndarray
    best_index: np.ndarray
    is_performance: np.ndarray
    oos_performance: np.ndarray
    degradation_slope: float
    degradation_intercept: float
    degradation_r2: float
    prob_oos_loss: float
    n_blocks: int
    n_obs_used: int
    strategies: tuple

    @property
    def n_combinations(self) -> int:
        """``C(S, S/2)``, the number of in-sample / out-of-sample splits evaluated."""
        return int(self.logits.size)


@njit(cache=True)
def _select_and_rank_nb(is_perf: np.ndarray, oos_perf: np.ndarray) -> tuple[int, float]:
    """Column of the in-sample best (NaN never wins; first of ties) and its out-of-sample
    relative rank ``ω̄ = rank / (N + 1)`` (NaN ranks below every number; ties averaged)."""
    n = is_perf.shape[0]
    best = -1
    best_val = -np.inf
    for j in range(n):
        v = is_perf[j]
        if v == v and (best < 0 or v > best_val):
            best = j
            best_val = v
    if best < 0:
        return -1, np.nan
    ov = oos_perf[best]
    if ov != ov:
        ov = -np.inf
    below = 0
    ties = 0
    for j in range(n):
        if j == best:
            continue
        w = oos_perf[j]
        if w != w:
            w = -np.inf
        if w < ov:
            below += 1
        elif w == ov:
            ties += 1
    return best, (1.0 + below + 0.5 * ties) / (n + 1.0)


@njit(cache=True)
def _moment_metric_nb(n: float, s1: float, s2: float, shift: float, code: int) -> float:
    """Mean (code 1) or Sharpe ratio (code 0, ddof 1) from the count, sum and sum of squares
    of values shifted by ``shift``."""
    if n < 1.0:
        return np.nan
    m = s1 / n
    if code == 1:
        return m + shift
    if n < 2.0:
        return np.nan
    var = (s2 - n * m * m) / (n - 1.0)
    if not var > 0.0:
        return np.nan
    return (m + shift) / np.sqrt(var)


@njit(cache=True)
def cscv_moments_nb(block_n: np.ndarray, block_s1: np.ndarray, block_s2: np.ndarray,
                    shift: np.ndarray, combos: np.ndarray, code: int):
    """CSCV for a metric computed from moments (0 = Sharpe, 1 = mean).

    ``block_n`` (S,), ``block_s1`` and ``block_s2`` (S, N) are per-block counts, sums and sums
    of squares of ``returns − shift``; ``combos`` (C, S/2) lists the in-sample blocks of each
    combination. Returns ``(best, omega, is_value, oos_value)``, each of length C.
    """
    n_blocks, n_strat = block_s1.shape
    n_comb = combos.shape[0]
    best = np.full(n_comb, -1, dtype=np.int64)
    omega = np.full(n_comb, np.nan)
    is_value = np.full(n_comb, np.nan)
    oos_value = np.full(n_comb, np.nan)
    tot_n = 0.0
    tot_s1 = np.zeros(n_strat)
    tot_s2 = np.zeros(n_strat)
    for b in range(n_blocks):
        tot_n += block_n[b]
        for j in range(n_strat):
            tot_s1[j] += block_s1[b, j]
            tot_s2[j] += block_s2[b, j]
    is_s1 = np.empty(n_strat)
    is_s2 = np.empty(n_strat)
    is_perf = np.empty(n_strat)
    oos_perf = np.empty(n_strat)
    for c in range(n_comb):
        is_n = 0.0
        is_s1[:] = 0.0
        is_s2[:] = 0.0
        for i in range(combos.shape[1]):
            b = combos[c, i]
            is_n += block_n[b]
            for j in range(n_strat):
                is_s1[j] += block_s1[b, j]
                is_s2[j] += block_s2[b, j]
        for j in range(n_strat):
            is_perf[j] = _moment_metric_nb(is_n, is_s1[j], is_s2[j], shift[j], code)
            oos_perf[j] = _moment_metric_nb(tot_n - is_n, tot_s1[j] - is_s1[j],
                                            tot_s2[j] - is_s2[j], shift[j], code)
        k, w = _select_and_rank_nb(is_perf, oos_perf)
        best[c] = k
        omega[c] = w
        if k >= 0:
            is_value[c] = is_perf[k]
            oos_value[c] = oos_perf[k]
    return best, omega, is_value, oos_value


def _cscv_callable(blocks: list[np.ndarray], combos: np.ndarray,
                   metric: Callable[[np.ndarray], np.ndarray]):
    n_comb = combos.shape[0]
    n_strat = blocks[0].shape[1]
    best = np.full(n_comb, -1, dtype=np.int64)
    omega = np.full(n_comb, np.nan)
    is_value = np.full(n_comb, np.nan)
    oos_value = np.full(n_comb, np.nan)
    all_blocks = set(range(len(blocks)))
    for c, chosen in enumerate(combos):
        rest = sorted(all_blocks.difference(chosen.tolist()))
        perf = []
        for ids in (chosen, rest):
            rows = np.concatenate([blocks[b] for b in ids], axis=0)
            out = np.asarray(metric(rows), dtype=np.float64).reshape(-1)
            if out.size != n_strat:
                raise ValueError(f"metric must return one value per strategy ({n_strat}), "
                                 f"got {out.size}")
            perf.append(out)
        k, w = _select_and_rank_nb(perf[0], perf[1])
        best[c], omega[c] = k, w
        if k >= 0:
            is_value[c], oos_value[c] = perf[0][k], perf[1][k]
    return best, omega, is_value, oos_value


def _degradation(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2:
        return math.nan, math.nan, math.nan
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    if not sxx > 0:
        return math.nan, math.nan, math.nan
    slope = sxy / sxx
    r2 = sxy * sxy / (sxx * syy) if syy > 0 else math.nan
    return slope, float(y.mean()) - slope * float(x.mean()), r2


def probability_of_backtest_overfitting(
    returns_matrix: pd.DataFrame | np.ndarray, *, n_blocks: int = 16,
    metric: Literal["sharpe", "mean"] | Callable[[np.ndarray], np.ndarray] = "sharpe",
) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation
    (CSCV; Bailey, Borwein, López de Prado & Zhu 2015).

    1. The ``T × N`` matrix of per-bar returns of the ``N`` configurations tried is cut, in
       time order, into ``S = n_blocks`` blocks of ``⌊T / S⌋`` rows (the oldest ``T mod S``
       rows are dropped).
    2. For each of the ``C(S, S/2)`` ways to pick half the blocks as in-sample (IS), the rest
       (in time order) being out-of-sample (OOS), the metric of every configuration is
       computed on IS and on OOS rows.
    3. The IS best configuration ``n*`` is found, its OOS relative rank ``ω̄ = rank / (N + 1)``
       (1 = worst) and its logit ``λ = ln(ω̄ / (1 − ω̄))``.
    4. ``PBO = #{λ ≤ 0} / C(S, S/2)``: how often the IS winner is at best median OOS.

    Parameters
    ----------
    returns_matrix:
        Per-bar returns, rows in time order, one column per configuration (N ≥ 2), no NaN.
    n_blocks:
        ``S``, even, ≥ 2 (the paper suggests 16: 12,870 combinations), with at least one
        row per block and two rows per half.
    metric:
        ``"sharpe"`` (per-bar Sharpe ratio, ddof 1; zero variance gives NaN, which ranks
        below every number and is never chosen IS), ``"mean"`` (mean return), or a function
        that maps a ``rows × N`` array to ``N`` performance values (slower: called twice
        per combination).

    Returns
    -------
    PBOResult
        The PBO, the λ distribution, performance degradation and probability of loss.

    >>> rng = np.random.default_rng(1)
    >>> noise = rng.normal(0.0, 0.01, size=(800, 20))
    >>> res = probability_of_backtest_overfitting(noise, n_blocks=8)
    >>> res.n_combinations, 0.2 < res.pbo < 0.8
    (70, True)
    >>> edge = noise.copy(); edge[:, 3] += 0.003
    >>> probability_of_backtest_overfitting(edge, n_blocks=8).pbo
    0.0
    """
    values = np.asarray(returns_matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        raise ValueError(f"returns_matrix must be 2-D (bars × strategies) with at least two "
                         f"strategies, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("returns_matrix holds NaN or infinite values; fill or drop them first")
    if (isinstance(n_blocks, bool) or not isinstance(n_blocks, (int, np.integer))
            or n_blocks < 2 or n_blocks % 2):
        raise ValueError(f"n_blocks must be an even integer >= 2, not {n_blocks!r}")
    n_rows, n_strat = values.shape
    size = n_rows // n_blocks
    if size < 1 or size * n_blocks // 2 < 2:
        raise ValueError(f"returns_matrix has {n_rows} rows, too few for n_blocks={n_blocks} "
                         f"(each half needs at least two rows)")
    used = values[n_rows - size * n_blocks:]
    combos = np.array(list(itertools.combinations(range(n_blocks), n_blocks // 2)),
                      dtype=np.int64)
    if callable(metric):
        blocks = [used[b * size:(b + 1) * size] for b in range(n_blocks)]
        best, omega, is_val, oos_val = _cscv_callable(blocks, combos, metric)
    elif metric in ("sharpe", "mean"):
        shift = used[0].copy()  # exact zeros for constant columns: zero variance stays zero
        cube = (used - shift).reshape(n_blocks, size, n_strat)
        block_n = np.full(n_blocks, float(size))
        best, omega, is_val, oos_val = cscv_moments_nb(
            block_n, cube.sum(axis=1), (cube * cube).sum(axis=1), shift, combos,
            0 if metric == "sharpe" else 1)
    else:
        raise ValueError(f"metric must be 'sharpe', 'mean' or a function, not {metric!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        logits = np.log(omega / (1.0 - omega))
    defined = np.isfinite(logits)
    pbo = float(np.mean(logits[defined] <= 0.0)) if defined.any() else math.nan
    loss_ok = np.isfinite(oos_val)
    prob_loss = float(np.mean(oos_val[loss_ok] < 0.0)) if loss_ok.any() else math.nan
    slope, intercept, r2 = _degradation(is_val, oos_val)
    labels = (tuple(returns_matrix.columns) if isinstance(returns_matrix, pd.DataFrame)
              else tuple(range(n_strat)))
    return PBOResult(
        pbo=pbo, logits=logits, oos_rank=omega, best_index=best, is_performance=is_val,
        oos_performance=oos_val, degradation_slope=slope, degradation_intercept=intercept,
        degradation_r2=r2, prob_oos_loss=prob_loss, n_blocks=int(n_blocks),
        n_obs_used=int(used.shape[0]), strategies=labels,
    )
