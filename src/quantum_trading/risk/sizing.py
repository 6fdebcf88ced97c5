"""Position sizing: how much to hold, before the risk engine checks the order.

Every function returns either **target exposures** (signed multiples of equity: 0.5 = long
half the equity's worth, -1.0 = short the full equity; what the simulator's targets are) or
**units** (contracts / coins). Time-varying sizes are decided at bar ``t``'s close from data
``<= t`` and are filled at bar ``t + 1``'s open at the earliest; none of these functions looks
ahead. Convert between the two with :func:`exposure_to_units` (``units = exposure * equity /
price``).

Crypto trades 24/7: annualisation uses :func:`~quantum_trading.data.timeframes.periods_per_year`
(365.25 days of bars: 8,766 for 1h bars), never 252 trading days.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping
from typing import NamedTuple, TypeVar

import numpy as np
import pandas as pd
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from quantum_trading.data.timeframes import periods_per_year
from quantum_trading.errors import DataError
from quantum_trading.features.volatility import realised_volatility
from quantum_trading.risk.measures import check_int, returns_matrix

__all__ = [
    "KellyEstimate",
    "apply_regime_multipliers",
    "atr_position_size",
    "cap_cluster_exposure",
    "correlation_aware_caps",
    "correlation_clusters",
    "exposure_to_units",
    "fixed_fractional",
    "kelly_fraction",
    "kelly_from_trades",
    "periods_per_year",
    "volatility_target",
]

Sized = TypeVar("Sized", float, pd.Series, pd.DataFrame)


def _positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    if not math.isfinite(v) or v < 0.0 or (v == 0.0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def _fraction(value: object, name: str) -> float:
    v = _positive(value, name)
    if v > 1.0:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return v


def exposure_to_units(exposure: Sized, equity: float | pd.Series, price: Sized) -> Sized:
    """Units (contracts, coins) for a target exposure: ``exposure * equity / price``.

    >>> exposure_to_units(0.5, 10_000.0, 25_000.0)
    0.2
    """
    return exposure * equity / price


def fixed_fractional(signal: Sized, *, fraction: float) -> Sized:
    """Fixed-fractional exposure: the same fraction of equity in every position.

    Parameters
    ----------
    signal:
        Direction (or conviction) per bar and asset in ``[-1, 1]``: a number, Series or
        DataFrame; NaN means no signal (flat).
    fraction:
        Exposure per position as a fraction of equity, > 0 (0.1 = 10% of equity; above 1 is
        leverage).

    Returns
    -------
    Same type as ``signal``
        Target exposure ``fraction * signal`` (multiples of equity), decided with the signal
        (bar t's close) and held from bar t + 1.

    Examples
    --------
    >>> fixed_fractional(pd.Series([1.0, -1.0, 0.0, np.nan]), fraction=0.1).tolist()
    [0.1, -0.1, 0.0, 0.0]
    """
    fraction = _positive(fraction, "fraction")
    if isinstance(signal, pd.Series | pd.DataFrame):
        values = signal.to_numpy(dtype=np.float64, na_value=np.nan)
        if (np.abs(values) > 1.0).any():
            raise ValueError("signal must lie in [-1, 1] (NaN for no signal)")
        return signal.fillna(0.0).astype(np.float64) * fraction
    s = float(signal)
    if math.isnan(s):
        return 0.0
    if abs(s) > 1.0:
        raise ValueError(f"signal must lie in [-1, 1], got {signal!r}")
    return s * fraction


def volatility_target(
    close: pd.Series | pd.DataFrame,
    *,
    target_vol_annual: float,
    window: int = 720,
    timeframe: str | None = None,
    max_leverage: float = 2.0,
    signal: pd.Series | pd.DataFrame | None = None,
) -> pd.Series | pd.DataFrame:
    """Volatility targeting: exposure ``target_vol_annual / realised_vol_annual``, capped.

    Parameters
    ----------
    close:
        Close prices (> 0) per bar: a Series, or a DataFrame with one column per asset.
    target_vol_annual:
        Target annualised volatility of each position as a fraction (0.2 = 20% a year), > 0.
    window:
        Number of log returns in the realised-volatility window, >= 2 (default 720: 30 days
        of 1h bars).
    timeframe:
        Bar length (``"1h"``, ``"4h"`` ...) giving :func:`periods_per_year`; None infers it
        from the median spacing of a DatetimeIndex.
    max_leverage:
        Cap on the absolute exposure per asset, > 0 (default 2).
    signal:
        Optional direction in ``[-1, 1]`` on the same index (and columns), multiplied in; NaN
        means flat.

    Returns
    -------
    pd.Series or pd.DataFrame
        Target exposure (multiple of equity) per bar: at bar t, ``min(target / rv_t,
        max_leverage) * signal_t`` where ``rv_t`` is
        :func:`~quantum_trading.features.realised_volatility` (std of the ``window`` log
        returns ending at bar t, ddof 1, times ``sqrt(periods_per_year)``), known at bar t's
        close. 0 (flat) while ``rv_t`` is NaN (the first ``window`` bars); ``max_leverage``
        where ``rv_t`` is 0.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    >>> close = pd.Series([100.0, 101.0, 100.0, 101.0, 100.0], index=idx)
    >>> volatility_target(close, target_vol_annual=0.5, window=2).round(4).tolist()
    [0.0, 0.0, 0.3795, 0.3795, 0.3795]
    """
    target = _positive(target_vol_annual, "target_vol_annual")
    cap = _positive(max_leverage, "max_leverage")
    window = check_int(window, "window", 2)
    if not isinstance(close, pd.Series | pd.DataFrame):
        raise TypeError(f"close must be a pandas Series or DataFrame, got {type(close).__name__}")
    if timeframe is None and not (isinstance(close.index, pd.DatetimeIndex) and len(close) >= 2):
        raise ValueError(
            "timeframe is needed (e.g. '1h') unless close has a DatetimeIndex of >= 2 bars"
        )
    ppy = periods_per_year(timeframe if timeframe is not None else close.index)
    if isinstance(close, pd.Series):
        rv = realised_volatility(close, window, periods_per_year=ppy)
    else:
        rv = pd.DataFrame(
            {c: realised_volatility(close[c], window, periods_per_year=ppy) for c in close.columns},
            index=close.index,
        )
    with np.errstate(divide="ignore"):
        exposure = np.minimum(target / rv.to_numpy(dtype=np.float64), cap)
    exposure = np.where(np.isnan(exposure), 0.0, exposure)
    out = (
        pd.Series(exposure, index=close.index, name="exposure")
        if isinstance(close, pd.Series)
        else pd.DataFrame(exposure, index=close.index, columns=close.columns)
    )
    if signal is None:
        return out
    if not signal.index.equals(close.index):
        raise ValueError("signal must be on the index of close")
    return out * fixed_fractional(signal, fraction=1.0)


def atr_position_size(
    equity: float | pd.Series,
    atr: float | pd.Series,
    *,
    risk_fraction: float = 0.01,
    atr_multiple: float = 2.0,
) -> float | pd.Series:
    """Units such that a stop ``atr_multiple`` ATRs away loses ``risk_fraction`` of equity.

    ``units = risk_fraction * equity / (atr_multiple * atr)``: with the stop at ``entry -+
    atr_multiple * atr``, hitting it loses ``units * atr_multiple * atr = risk_fraction *
    equity`` (before costs and gaps through the stop).

    Parameters
    ----------
    equity:
        Account equity in quote currency (USDT), >= 0: a number or a Series per bar.
    atr:
        Average true range in price units at the decision bar (e.g.
        :func:`~quantum_trading.features.atr`, known at bar t's close). Where it is NaN or
        <= 0 there is no stop distance and the size is 0.
    risk_fraction:
        Fraction of equity lost at the stop, in (0, 1] (default 0.01 = 1%).
    atr_multiple:
        Stop distance in ATRs, > 0 (default 2).

    Returns
    -------
    float or pd.Series
        Position size in units (unsigned; the strategy supplies the direction).

    Examples
    --------
    >>> atr_position_size(10_000.0, 500.0, risk_fraction=0.01, atr_multiple=2.0)
    0.1
    """
    r = _fraction(risk_fraction, "risk_fraction")
    m = _positive(atr_multiple, "atr_multiple")
    if isinstance(atr, pd.Series):
        a = atr.to_numpy(dtype=np.float64, na_value=np.nan)
        ok = np.isfinite(a) & (a > 0.0)
        e = equity.to_numpy(dtype=np.float64) if isinstance(equity, pd.Series) else equity
        with np.errstate(divide="ignore", invalid="ignore"):
            units = np.where(ok, r * np.asarray(e) / (m * np.where(ok, a, 1.0)), 0.0)
        return pd.Series(units, index=atr.index, name="units")
    if isinstance(equity, pd.Series):
        raise TypeError("atr must be a Series when equity is one")
    eq = _positive(equity, "equity", allow_zero=True)
    a = float(atr)
    if not (math.isfinite(a) and a > 0.0):
        return 0.0
    return r * eq / (m * a)


def kelly_fraction(
    win_rate: float, payoff_ratio: float, *, fraction: float = 0.5, cap: float = 1.0
) -> float:
    """Fractional Kelly exposure: ``clip(fraction * (p - (1 - p) / b), 0, cap)``.

    Parameters
    ----------
    win_rate:
        Probability ``p`` that a trade wins, in [0, 1].
    payoff_ratio:
        ``b`` = average win / average loss (both as positive amounts), > 0.
    fraction:
        Share of the full Kelly bet, in (0, 1] (default 0.5, "half Kelly").
    cap:
        Largest exposure returned, > 0 (default 1.0 = equity).

    Returns
    -------
    float
        Exposure as a fraction of equity, >= 0 (no negative Kelly bets: a losing edge is 0).

    Examples
    --------
    >>> round(kelly_fraction(0.55, 1.0, fraction=1.0), 12)  # 0.55 - 0.45 / 1
    0.1
    >>> round(kelly_fraction(0.6, 2.0, fraction=0.5), 12), kelly_fraction(0.3, 1.0)
    (0.2, 0.0)
    """
    ok = isinstance(win_rate, numbers.Real) and not isinstance(win_rate, bool)
    p = float(win_rate) if ok else math.nan
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"win_rate must be a number in [0, 1], got {win_rate!r}")
    b = _positive(payoff_ratio, "payoff_ratio")
    f = _fraction(fraction, "fraction")
    c = _positive(cap, "cap")
    full = p - (1.0 - p) / b
    return float(min(max(f * full, 0.0), c))


class KellyEstimate(NamedTuple):
    """Trade statistics and the Kelly sizes they imply."""

    win_rate: float
    payoff_ratio: float
    full_kelly: float
    """``p - (1 - p) / b`` (may be negative)."""
    exposure: float
    """Fractional, floored at 0 and capped (:func:`kelly_fraction`)."""


def kelly_from_trades(
    trade_returns: pd.Series | np.ndarray, *, fraction: float = 0.5, cap: float = 1.0
) -> KellyEstimate:
    """Fractional Kelly from closed trades' returns.

    ``p`` = wins / (wins + losses) and ``b`` = mean win / |mean loss|; trades returning
    exactly 0 are left out. Without losses ``b`` is infinite and the full Kelly is ``p``.
    Use only trades closed by bar t to size at bar t.

    Parameters
    ----------
    trade_returns:
        Per-trade returns (fractions), finite; at least one non-zero.
    fraction, cap:
        As in :func:`kelly_fraction`.

    Examples
    --------
    >>> est = kelly_from_trades(np.array([0.02, 0.02, 0.02, -0.01, -0.01]), fraction=0.5)
    >>> est.win_rate, est.payoff_ratio, round(est.full_kelly, 12), round(est.exposure, 12)
    (0.6, 2.0, 0.4, 0.2)
    """
    r = np.asarray(
        trade_returns.to_numpy(dtype=np.float64, na_value=np.nan)
        if isinstance(trade_returns, pd.Series)
        else trade_returns,
        dtype=np.float64,
    )
    if r.ndim != 1 or not np.isfinite(r).all():
        raise ValueError("trade_returns must be a one-dimensional array of finite returns")
    wins, losses = r[r > 0.0], r[r < 0.0]
    if wins.size + losses.size == 0:
        raise ValueError("trade_returns holds no winning or losing trade")
    p = wins.size / (wins.size + losses.size)
    b = math.inf if losses.size == 0 else (wins.mean() if wins.size else 0.0) / -losses.mean()
    full = p if math.isinf(b) else p - (1.0 - p) / b if b > 0 else -math.inf
    f = _fraction(fraction, "fraction")
    c = _positive(cap, "cap")
    size = float(min(max(f * full, 0.0), c)) if math.isfinite(full) else 0.0
    return KellyEstimate(float(p), float(b), float(full), size)


def _clusters_from_rows(rows: np.ndarray, max_distance: float, method: str) -> np.ndarray:
    """Cluster labels 1..k of the series in ``rows`` (``(n_assets, n_obs)``)."""
    n = rows.shape[0]
    if n == 1:
        return np.ones(1, dtype=np.int64)
    centred = rows - rows.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", centred, centred))
    safe = np.where(norms > 0.0, norms, 1.0)
    unit = centred / safe[:, None]
    corr = np.clip(unit @ unit.T, -1.0, 1.0)
    corr[norms == 0.0, :] = 0.0  # a constant series is uncorrelated with everything
    corr[:, norms == 0.0] = 0.0
    dist = np.sqrt(np.clip(0.5 * (1.0 - corr), 0.0, 1.0))
    np.fill_diagonal(dist, 0.0)
    tree = hierarchy.linkage(squareform(dist, checks=False), method=method)
    return hierarchy.fcluster(tree, t=max_distance, criterion="distance").astype(np.int64)


_LINKAGES = ("single", "complete", "average", "weighted")


def correlation_clusters(
    returns: pd.DataFrame, *, max_distance: float = 0.5, linkage_method: str = "average"
) -> pd.Series:
    """Cluster assets by return correlation (hierarchical, scipy.cluster.hierarchy).

    Distance ``d_ij = sqrt(0.5 (1 - rho_ij))`` (0 for identical, 1 for opposite series);
    clusters are cut at ``max_distance`` (0.5 joins pairs with ``rho >= 0.5`` under single
    linkage; average linkage asks it of the clusters' mean distance). A constant series has
    correlation 0 with every other.

    Parameters
    ----------
    returns:
        Per-bar returns, one column per asset (finite, >= 2 rows): the window to cluster on.
    max_distance:
        Cut height in (0, 1] (default 0.5).
    linkage_method:
        ``"average"`` (default), ``"single"``, ``"complete"`` or ``"weighted"``.

    Returns
    -------
    pd.Series
        Cluster label (1, 2, ...) per asset, indexed by column.

    Examples
    --------
    >>> base = np.array([0.01, -0.02, 0.015, -0.005, 0.0, 0.01])
    >>> r = pd.DataFrame({"BTC": base, "ETH": 1.2 * base, "XAU": base[::-1]})
    >>> correlation_clusters(r).tolist()
    [1, 1, 2]
    """
    if not isinstance(returns, pd.DataFrame):
        raise TypeError(f"returns must be a pandas DataFrame, got {type(returns).__name__}")
    if not isinstance(linkage_method, str) or linkage_method not in _LINKAGES:
        raise ValueError(
            f"linkage_method must be one of {', '.join(_LINKAGES)}; got {linkage_method!r}"
        )
    d = _fraction(max_distance, "max_distance")
    rows, _, _ = returns_matrix(returns)
    if rows.shape[1] < 2:
        raise ValueError("returns needs at least 2 rows to estimate correlations")
    labels = _clusters_from_rows(rows, d, linkage_method)
    return pd.Series(labels, index=returns.columns, name="cluster")


def _cap_rows(exposure: np.ndarray, labels: np.ndarray, cap: float) -> np.ndarray:
    out = exposure.copy()
    for label in np.unique(labels):
        members = labels == label
        gross = np.abs(out[..., members]).sum(axis=-1)
        scale = np.where(gross > cap, cap / np.where(gross > 0.0, gross, 1.0), 1.0)
        out[..., members] *= np.asarray(scale)[..., None]
    return out


def cap_cluster_exposure(
    exposure: pd.Series, clusters: pd.Series, *, max_cluster_gross: float
) -> pd.Series:
    """Scale the positions of each cluster down so its gross exposure is <= the cap.

    For each cluster with gross exposure ``G = sum |exposure_i| > max_cluster_gross``, every
    member is multiplied by ``max_cluster_gross / G`` (proportional: directions and relative
    sizes kept); other clusters are left alone.

    Parameters
    ----------
    exposure:
        Target exposure per asset (multiples of equity).
    clusters:
        Cluster label per asset (e.g. :func:`correlation_clusters`), same index.
    max_cluster_gross:
        Cap on a cluster's gross exposure as a multiple of equity, > 0.

    Examples
    --------
    >>> e = pd.Series({"BTC": 0.6, "ETH": -0.6, "XAU": 0.5})
    >>> c = pd.Series({"BTC": 1, "ETH": 1, "XAU": 2})
    >>> cap_cluster_exposure(e, c, max_cluster_gross=0.6).tolist()
    [0.3, -0.3, 0.5]
    """
    cap = _positive(max_cluster_gross, "max_cluster_gross")
    if not isinstance(exposure, pd.Series) or not isinstance(clusters, pd.Series):
        raise TypeError("exposure and clusters must be pandas Series")
    if not clusters.index.equals(exposure.index):
        clusters = clusters.reindex(exposure.index)
        if clusters.isna().any():
            raise ValueError("clusters must give a label for every asset of exposure")
    values = exposure.to_numpy(dtype=np.float64)
    codes = pd.factorize(clusters)[0]
    return pd.Series(_cap_rows(values, codes, cap), index=exposure.index, name=exposure.name)


def correlation_aware_caps(
    exposure: pd.DataFrame,
    returns: pd.DataFrame,
    *,
    window: int,
    max_cluster_gross: float,
    max_distance: float = 0.5,
    linkage_method: str = "average",
    every: int = 1,
) -> pd.DataFrame:
    """Cap gross exposure per correlation cluster, bar by bar, without look-ahead.

    At each bar t the assets are clustered (:func:`correlation_clusters`) on the ``window``
    returns ending at bar t, and :func:`cap_cluster_exposure` is applied to the exposures of
    bar t. ``every`` re-clusters only every that many bars (clusters are held in between, still
    from data <= t). Before the first full window all assets form one cluster (no evidence of
    diversification yet).

    Parameters
    ----------
    exposure:
        Target exposures per bar and asset (multiples of equity).
    returns:
        Per-bar returns on the same index and columns (finite).
    window:
        Returns per correlation estimate, >= 2.
    max_cluster_gross:
        Cap on each cluster's gross exposure, > 0.
    max_distance, linkage_method:
        As in :func:`correlation_clusters`.
    every:
        Re-cluster every ``every`` bars, >= 1 (default 1).

    Returns
    -------
    pd.DataFrame
        The capped exposures, same shape.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(0, 0.01, 300)
    >>> r = pd.DataFrame({"a": f, "b": f + rng.normal(0, 0.001, 300), "c": rng.normal(0, 0.01, 300)})
    >>> e = pd.DataFrame(0.5, index=r.index, columns=r.columns)
    >>> capped = correlation_aware_caps(e, r, window=100, max_cluster_gross=0.5)
    >>> capped.iloc[-1].tolist()
    [0.25, 0.25, 0.5]
    """
    if not isinstance(exposure, pd.DataFrame) or not isinstance(returns, pd.DataFrame):
        raise TypeError("exposure and returns must be pandas DataFrames")
    if not exposure.index.equals(returns.index) or list(exposure.columns) != list(returns.columns):
        raise ValueError("exposure and returns must share index and columns")
    cap = _positive(max_cluster_gross, "max_cluster_gross")
    window = check_int(window, "window", 2)
    every = check_int(every, "every", 1)
    d = _fraction(max_distance, "max_distance")
    if not isinstance(linkage_method, str) or linkage_method not in _LINKAGES:
        raise ValueError(
            f"linkage_method must be one of {', '.join(_LINKAGES)}; got {linkage_method!r}"
        )
    rows, _, _ = returns_matrix(returns)
    values = exposure.to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(values).all():
        raise DataError(
            "exposure holds non-finite values",
            rows=np.flatnonzero(~np.isfinite(values).all(axis=1)),
        )
    out = values.copy()
    n_bars, n_assets = values.shape
    warm = min(window - 1, n_bars)
    out[:warm] = _cap_rows(values[:warm], np.zeros(n_assets, dtype=np.int64), cap)
    labels = np.zeros(n_assets, dtype=np.int64)
    for t in range(warm, n_bars):
        if (t - warm) % every == 0:
            labels = _clusters_from_rows(rows[:, t - window + 1 : t + 1], d, linkage_method)
        out[t] = _cap_rows(values[t], labels, cap)
    return pd.DataFrame(out, index=exposure.index, columns=exposure.columns)


def apply_regime_multipliers(
    size: Sized,
    regimes: pd.Series,
    multipliers: Mapping[Hashable, float],
    *,
    default: float | None = None,
) -> Sized:
    """Scale sizes by a multiplier per market regime (e.g. ``{"trend": 1.0, "chop": 0.5}``).

    Parameters
    ----------
    size:
        Exposures or units per bar: a Series or a DataFrame (one column per asset) on the
        index of ``regimes``.
    regimes:
        Regime label per bar, known at that bar's close (computed from data <= t).
    multipliers:
        Multiplier (>= 0) for each label.
    default:
        Multiplier for labels missing from ``multipliers`` (and NaN labels); None (default)
        makes a missing label an error.

    Returns
    -------
    Same type as ``size``
        ``size * multiplier[regime_t]`` bar by bar.

    Examples
    --------
    >>> size = pd.Series([1.0, 1.0, 1.0])
    >>> apply_regime_multipliers(size, pd.Series(["bull", "bear", "bull"]), {"bull": 1.0, "bear": 0.25}).tolist()
    [1.0, 0.25, 1.0]
    """
    if not isinstance(regimes, pd.Series) or not isinstance(size, pd.Series | pd.DataFrame):
        raise TypeError("size must be a Series/DataFrame and regimes a Series")
    if not regimes.index.equals(size.index):
        raise ValueError("regimes must be on the index of size")
    checked = {
        k: _positive(v, f"multipliers[{k!r}]", allow_zero=True) for k, v in multipliers.items()
    }
    if default is not None:
        default = _positive(default, "default", allow_zero=True)
    mult = regimes.map(checked)
    missing = mult.isna()
    if missing.any():
        if default is None:
            unknown = sorted({str(v) for v in regimes[missing].unique()})
            raise ValueError(
                f"multipliers has no entry for regime(s) {', '.join(unknown)}; pass default"
            )
        mult = mult.where(~missing, default)
    factor = mult.to_numpy(dtype=np.float64)
    if isinstance(size, pd.Series):
        return size * factor
    return size.mul(factor, axis=0)
