"""Performance metrics as pure functions on arrays and Series (no simulator, no config).

Every function documents its formula and units; the backtest's ``stats`` and the optimiser
use the same functions. Conventions:

* **Returns** are simple per-bar returns of equity, ``r_t = E_t / E_{t-1} − 1`` (fractions),
  one per bar after the first, valued at each bar's close (:func:`bar_returns`).
* **Annualisation** uses the real bar frequency of a 24/7 market:
  ``periods_per_year = 365.25 days / median bar spacing`` (8,766 for 1 h bars, 365.25 for
  daily bars) — not √252 (:func:`periods_per_year`).
* **Sharpe-type ratios** are ``mean / std × √periods_per_year`` with the risk-free rate 0
  (the usual convention for crypto; funding is already in the equity).
* Percentages are in percent (``12.5`` = 12.5 %) and carry ``_pct`` in the name; money in
  USDT carries ``_usd``; ratios are plain numbers.
* Undefined values (no trades, zero variance, fewer than two returns) are NaN, never an
  exception.

>>> import pandas as pd

>>> idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
>>> equity = pd.Series([100.0, 110.0, 99.0, 121.0], index=idx)
>>> round(max_drawdown_pct(equity), 6), periods_per_year(idx)
(-10.0, 8766.0)
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from quantum_trading.data.timeframes import YEAR, periods_per_year

__all__ = [
    "annualized_volatility_pct",
    "bar_returns",
    "cagr_pct",
    "calmar_ratio",
    "drawdown",
    "expectancy_usd",
    "exposure_time_pct",
    "max_drawdown_duration",
    "max_drawdown_pct",
    "monthly_returns_pct",
    "payoff_ratio",
    "periods_per_year",
    "probabilistic_sharpe_ratio",
    "profit_factor",
    "psr_from_moments",
    "return_moments",
    "rolling_sharpe",
    "sharpe_ratio",
    "sortino_ratio",
    "total_return_pct",
    "turnover",
    "win_rate_pct",
]



def _values(x: pd.Series | np.ndarray | list[float]) -> np.ndarray:
    """Float64 values of an array-like, NaN dropped."""
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    return arr[~np.isnan(arr)]


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------
# Equity and returns
# --------------------------------------------------------------------------------------------

def bar_returns(equity: pd.Series) -> pd.Series:
    """Simple per-bar returns ``r_t = E_t / E_{t−1} − 1`` (fractions), from the second bar on.

    After a bankruptcy (``E_{t−1} = 0``) the return is 0: the account is flat and stays so.

    >>> bar_returns(pd.Series([100.0, 110.0, 99.0])).round(6).tolist()
    [0.1, -0.1]
    """
    values = np.asarray(equity, dtype=np.float64)
    prev, cur = values[:-1], values[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(prev > 0.0, cur / np.where(prev > 0.0, prev, 1.0) - 1.0, 0.0)
    index = equity.index[1:] if isinstance(equity, pd.Series) else None
    return pd.Series(r, index=index, name="return")


def total_return_pct(equity: pd.Series | np.ndarray, initial_usd: float | None = None) -> float:
    """Total return in %: ``100 × (E_final / E_0 − 1)``; ``E_0`` = ``initial_usd`` if given,
    else the first equity value.

    >>> total_return_pct([100.0, 90.0, 125.0])
    25.0
    """
    values = np.asarray(equity, dtype=np.float64)
    if values.size == 0:
        return math.nan
    start = float(values[0]) if initial_usd is None else float(initial_usd)
    return 100.0 * (float(values[-1]) / start - 1.0) if start > 0 else math.nan


def cagr_pct(equity: pd.Series, initial_usd: float | None = None) -> float:
    """Compound annual growth rate in %: ``100 × ((E_final / E_0)^(1 / years) − 1)``.

    ``years = (last − first index time) / 365.25 days`` (equity is valued at each close, so
    the span from the first close to the last is the first to the last bar's open time).
    NaN for a zero span; −100 after a bankruptcy.

    >>> idx = pd.to_datetime(["2023-01-01 00:00", "2024-01-01 06:00"], utc=True)
    >>> round(cagr_pct(pd.Series([100.0, 121.0], index=idx)), 6)
    21.0
    """
    if len(equity) == 0:
        return math.nan
    years = (equity.index[-1] - equity.index[0]) / YEAR
    start = float(equity.iloc[0]) if initial_usd is None else float(initial_usd)
    final = float(equity.iloc[-1])
    if years <= 0 or start <= 0:
        return math.nan
    return 100.0 * ((max(final, 0.0) / start) ** (1.0 / years) - 1.0)


def annualized_volatility_pct(returns: pd.Series | np.ndarray, periods: float) -> float:
    """Annualised volatility in %: ``100 × std(r, ddof=1) × √periods``.

    >>> round(annualized_volatility_pct([0.01, -0.01, 0.01, -0.01], 8766), 4)
    108.1111
    """
    r = _values(returns)
    if r.size < 2:
        return math.nan
    return 100.0 * float(np.std(r, ddof=1)) * math.sqrt(periods)


def sharpe_ratio(returns: pd.Series | np.ndarray, periods: float = 1.0) -> float:
    """Sharpe ratio ``mean(r) / std(r, ddof=1) × √periods`` (risk-free rate 0).

    ``periods=1`` gives the per-bar (non-annualised) ratio that the probabilistic Sharpe
    ratio uses. NaN for fewer than two returns or zero variance.

    >>> round(sharpe_ratio([0.02, 0.0, 0.01, -0.01]), 6)
    0.387298
    """
    r = _values(returns)
    if r.size < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    if not sd > 0:
        return math.nan
    return float(np.mean(r)) / sd * math.sqrt(periods)


def sortino_ratio(returns: pd.Series | np.ndarray, periods: float = 1.0) -> float:
    """Sortino ratio ``mean(r) / DD × √periods`` with the downside deviation
    ``DD = √(mean(min(r, 0)²))`` over all returns (target 0, as empyrical).

    ``inf`` when there is no down bar and the mean is positive; NaN for fewer than two
    returns or no downside with a non-positive mean.

    >>> round(sortino_ratio([0.02, -0.01, 0.01, -0.02]), 6)
    0.0
    """
    r = _values(returns)
    if r.size < 2:
        return math.nan
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    mean = float(np.mean(r))
    if dd == 0.0:
        return math.inf if mean > 0 else math.nan
    return mean / dd * math.sqrt(periods)


def drawdown(equity: pd.Series) -> pd.Series:
    """Drawdown per bar as a fraction (≤ 0): ``E_t / max_{s≤t} E_s − 1``.

    >>> drawdown(pd.Series([100.0, 120.0, 90.0, 130.0])).tolist()
    [0.0, 0.0, -0.25, 0.0]
    """
    values = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, values / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)
    index = equity.index if isinstance(equity, pd.Series) else None
    return pd.Series(dd, index=index, name="drawdown")


def max_drawdown_pct(equity: pd.Series | np.ndarray) -> float:
    """Maximum drawdown in % (≤ 0): ``100 × min_t (E_t / max_{s≤t} E_s − 1)``.

    >>> max_drawdown_pct([100.0, 120.0, 90.0, 130.0])
    -25.0
    """
    values = np.asarray(equity, dtype=np.float64)
    if values.size == 0:
        return math.nan
    return 100.0 * float(drawdown(pd.Series(values)).min())


def max_drawdown_duration(equity: pd.Series) -> pd.Timedelta:
    """Longest time under water: from a peak bar (equity at its running maximum) to the next
    bar back at that maximum, or to the last bar if it never recovers (backtesting.py's
    definition). ``Timedelta(0)`` when equity never falls below a previous peak.

    >>> idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    >>> max_drawdown_duration(pd.Series([1.0, 2.0, 1.5, 1.8, 2.1], index=idx))
    Timedelta('0 days 03:00:00')
    """
    if len(equity) == 0:
        return pd.Timedelta(0)
    values = np.asarray(equity, dtype=np.float64)
    at_peak = values >= np.maximum.accumulate(values)
    marks = np.unique(np.r_[np.flatnonzero(at_peak), len(values) - 1])
    ns = np.asarray(equity.index.as_unit("ns").asi8, dtype=np.int64)
    if len(marks) < 2:
        return pd.Timedelta(0)
    gaps = np.diff(marks)
    under = gaps > 1  # at least one bar below the peak in between
    if not under.any():
        return pd.Timedelta(0)
    spans = ns[marks[1:]] - ns[marks[:-1]]
    return pd.Timedelta(int(spans[under].max()), unit="ns")


def calmar_ratio(cagr: float, max_drawdown: float) -> float:
    """Calmar ratio ``CAGR / |max drawdown|`` (both in the same unit, e.g. both in %).

    NaN when there was no drawdown.

    >>> calmar_ratio(30.0, -15.0)
    2.0
    """
    if not (math.isfinite(cagr) and math.isfinite(max_drawdown)) or max_drawdown == 0.0:
        return math.nan
    return cagr / abs(max_drawdown)


def rolling_sharpe(returns: pd.Series, window: int, periods: float) -> pd.Series:
    """Annualised Sharpe ratio over a trailing window of ``window`` bars:
    ``mean / std(ddof=1) × √periods`` of the last ``window`` returns (NaN before the window
    is full or where the window's std is 0). Known at each bar's close.

    >>> r = pd.Series([0.01, -0.01, 0.02, 0.0])
    >>> rolling_sharpe(r, 3, 1.0).round(4).tolist()
    [nan, nan, 0.4364, 0.2182]
    """
    roll = returns.rolling(window, min_periods=window)
    sd = roll.std(ddof=1)
    out = roll.mean() / sd.where(sd > 0) * math.sqrt(periods)
    return out.rename("rolling_sharpe")


def monthly_returns_pct(equity: pd.Series, initial_usd: float | None = None) -> pd.Series:
    """Calendar-month returns in % (UTC months), from month-end equity: the first month is
    measured from ``initial_usd`` (default the first equity value).

    >>> idx = pd.to_datetime(["2024-01-05", "2024-01-31", "2024-02-15"], utc=True)
    >>> monthly_returns_pct(pd.Series([100.0, 110.0, 99.0], index=idx)).round(6).tolist()
    [10.0, -10.0]
    """
    if len(equity) == 0:
        return pd.Series(dtype=np.float64, name="return_pct")
    start = float(equity.iloc[0]) if initial_usd is None else float(initial_usd)
    month_end = equity.resample("ME").last().dropna()
    prev = month_end.shift(1)
    prev.iloc[0] = start
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (month_end / prev.where(prev > 0) - 1.0)
    return out.fillna(0.0).rename("return_pct")


# --------------------------------------------------------------------------------------------
# Exposure and activity
# --------------------------------------------------------------------------------------------

def exposure_time_pct(entry_bars: np.ndarray, exit_bars: np.ndarray, n_bars: int) -> float:
    """Share of bars, in %, in which any position was held: bars ``entry_bar .. exit_bar``
    (both included) of each trade, counted once however many trades overlap
    (backtesting.py's "Exposure Time").

    >>> exposure_time_pct(np.array([1, 6]), np.array([3, 6]), 10)
    40.0
    """
    if n_bars <= 0:
        return math.nan
    held = np.zeros(n_bars + 1, dtype=np.int64)
    entries = np.asarray(entry_bars, dtype=np.int64)
    exits = np.asarray(exit_bars, dtype=np.int64)
    np.add.at(held, entries, 1)
    np.add.at(held, exits + 1, -1)
    return 100.0 * float(np.mean(np.cumsum(held[:-1]) > 0))


def turnover(traded_notional_usd: np.ndarray, equity: pd.Series | np.ndarray) -> float:
    """Turnover in multiples of average equity: ``Σ |fill notional| / mean(E)``.

    ``traded_notional_usd`` holds every fill's notional (entries, exits, stops,
    liquidations). 2.0 = the account traded twice its average equity.

    >>> turnover(np.array([10_000.0, 10_000.0]), np.array([10_000.0, 10_000.0]))
    2.0
    """
    mean_equity = float(np.mean(np.asarray(equity, dtype=np.float64))) if len(equity) else 0.0
    if not mean_equity > 0:
        return math.nan
    return float(np.sum(np.abs(np.asarray(traded_notional_usd, dtype=np.float64)))) / mean_equity


# --------------------------------------------------------------------------------------------
# Trades (net PnL per trade, USDT)
# --------------------------------------------------------------------------------------------

def win_rate_pct(pnl_usd: np.ndarray) -> float:
    """Share of trades with a positive net PnL, in % (NaN without trades).

    >>> win_rate_pct(np.array([10.0, -5.0, 0.0, 3.0]))
    50.0
    """
    pnl = _values(pnl_usd)
    return 100.0 * float(np.mean(pnl > 0)) if pnl.size else math.nan


def profit_factor(pnl_usd: np.ndarray) -> float:
    """Gross profit ÷ gross loss: ``Σ max(p, 0) / |Σ min(p, 0)|``.

    ``inf`` with profits and no loss; NaN without profits or losses.

    >>> profit_factor(np.array([10.0, -5.0, 5.0]))
    3.0
    """
    pnl = _values(pnl_usd)
    gain, loss = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    if loss == 0.0:
        return math.inf if gain > 0 else math.nan
    return gain / loss


def payoff_ratio(pnl_usd: np.ndarray) -> float:
    """Average win ÷ average loss: ``mean(p | p > 0) / |mean(p | p < 0)|``.

    NaN unless there is at least one winner and one loser.

    >>> payoff_ratio(np.array([10.0, 20.0, -5.0]))
    3.0
    """
    pnl = _values(pnl_usd)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    if wins.size == 0 or losses.size == 0:
        return math.nan
    return float(wins.mean()) / abs(float(losses.mean()))


def expectancy_usd(pnl_usd: np.ndarray) -> float:
    """Average net PnL per trade in USDT, ``mean(p)`` (= win rate × avg win − loss rate ×
    avg loss). NaN without trades.

    >>> expectancy_usd(np.array([10.0, -4.0]))
    3.0
    """
    pnl = _values(pnl_usd)
    return float(pnl.mean()) if pnl.size else math.nan


# --------------------------------------------------------------------------------------------
# Probabilistic Sharpe ratio (Bailey & López de Prado, 2012)
# --------------------------------------------------------------------------------------------

def return_moments(returns: pd.Series | np.ndarray) -> tuple[float, float, int]:
    """``(skewness, kurtosis, n)`` of the returns with population (biased) moments:
    ``γ3 = m3 / m2^1.5`` and ``γ4 = m4 / m2²`` (Pearson kurtosis: 3 for a normal law, not
    the excess). NaN moments for fewer than two returns or zero variance.

    >>> return_moments([-1.0, 1.0, -1.0, 1.0])
    (0.0, 1.0, 4)
    """
    r = _values(returns)
    n = int(r.size)
    if n < 2:
        return math.nan, math.nan, n
    d = r - r.mean()
    m2 = float(np.mean(d**2))
    if not m2 > 0:
        return math.nan, math.nan, n
    return float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2, n


def psr_from_moments(sr: float, n: int, skew: float, kurtosis: float,
                     sr_benchmark: float = 0.0) -> float:
    """Probabilistic Sharpe ratio from its ingredients (Bailey & López de Prado, 2012):

    ``PSR = Φ( (SR − SR*) √(n − 1) / √(1 − γ3·SR + (γ4 − 1)/4 · SR²) )``

    with ``SR`` and ``SR*`` **per bar** (not annualised), ``n`` returns, ``γ3`` the skewness
    and ``γ4`` the (non-excess) kurtosis of the returns; Φ the standard normal CDF. A
    probability in [0, 1] that the true Sharpe ratio exceeds ``SR*``.

    >>> round(psr_from_moments(0.1, 101, 0.0, 3.0), 6)
    0.840741
    """
    if n < 2 or not all(math.isfinite(v) for v in (sr, skew, kurtosis, sr_benchmark)):
        return math.nan
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not var > 0:
        return math.nan
    z = (sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(var)
    return NormalDist().cdf(z)


def probabilistic_sharpe_ratio(returns: pd.Series | np.ndarray, sr_benchmark: float = 0.0) -> float:
    """Probabilistic Sharpe ratio of per-bar ``returns`` against the per-bar benchmark
    Sharpe ``sr_benchmark`` (0 by default): :func:`psr_from_moments` with the
    non-annualised :func:`sharpe_ratio` and :func:`return_moments` of the same returns.

    >>> r = np.tile([0.02, -0.01, 0.015, -0.005], 25)
    >>> round(probabilistic_sharpe_ratio(r), 4)
    0.9999
    """
    sr = sharpe_ratio(returns, 1.0)
    skew, kurt, n = return_moments(returns)
    return psr_from_moments(sr, n, skew, kurt, sr_benchmark)
