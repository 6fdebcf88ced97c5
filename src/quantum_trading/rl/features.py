"""Per-asset market features of the RL observation (``EnvSpec.features``), computed causally.

:func:`market_features` turns OHLCV frames into a float32 array ``[T, N, F]``: bar ``t``'s
row uses bars ``<= t`` only, so it is known at bar ``t``'s close, when the agent decides (the
target then fills at bar ``t + 1``'s open). Every indicator comes from the numba kernels of
:mod:`quantum_trading.features` (RSI, ATR, EMA, Bollinger Bands, z-score, realised
volatility). Values are scaled to order 1 and clipped to ``±OBS_CLIP``.

Feature formulas (bars, not hours: windows count bars of the data's timeframe):

============== ==========================================================================
name           value at bar t
============== ==========================================================================
log_return     100 · ln(close_t / close_{t−1})  (percent)
log_return_z   ln(close_t / close_{t−1}) / σ_t, σ = std of the last 48 log returns
rsi            RSI(14)_t / 100 − 0.5
atr_pct        100 · ATR(14)_t / close_t  (percent)
trend          (close_t − EMA(50)_t) / ATR(14)_t  (distance from trend in ATRs)
volume_z       z-score of ln(1 + volume) over the last 48 bars
funding        last settled funding rate × 1e4 (bps), carried forward; 0 before the first
               (a rate of 0 or NaN at a bar means no settlement, as in the simulator)
regime_vol     percentile rank of σ_t among the last 168 values of σ, − 0.5
range_pct      100 · (high_t − low_t) / close_t  (percent)
bb_pct_b       Bollinger %b(20, 2)_t − 0.5
============== ==========================================================================

Warm-up: the first ``first_valid_bar`` rows hold NaN (the longest lookback among the chosen
features: 215 bars with ``regime_vol``, 49 with ``trend``); from there on every value is finite
(a ratio with a zero denominator — a flat window — is 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError, DataError
from quantum_trading.features.indicators_nb import (
    atr_nb,
    bbands_nb,
    ema_nb,
    realised_volatility_nb,
    rolling_zscore_nb,
    rsi_nb,
)
from quantum_trading.rl.features_nb import carry_forward_nb, rolling_rank_nb
from quantum_trading.rl.spec import FEATURE_NAMES, OBS_CLIP

__all__ = ["ATR_PERIOD", "FEATURE_LOOKBACK", "atr_array", "market_features"]

ATR_PERIOD = 14
"""ATR period (bars) of ``atr_pct``, ``trend`` and the multi-head stop distances."""
_RSI_PERIOD = 14
_EMA_PERIOD = 50
_VOL_WINDOW = 48
_VOLUME_WINDOW = 48
_REGIME_WINDOW = 168
_BB_PERIOD = 20

FEATURE_LOOKBACK: dict[str, int] = {
    "log_return": 1,
    "log_return_z": _VOL_WINDOW,
    "rsi": _RSI_PERIOD,
    "atr_pct": ATR_PERIOD,
    "trend": max(_EMA_PERIOD - 1, ATR_PERIOD),
    "volume_z": _VOLUME_WINDOW - 1,
    "funding": 0,
    "regime_vol": _VOL_WINDOW + _REGIME_WINDOW - 1,
    "range_pct": 0,
    "bb_pct_b": _BB_PERIOD - 1,
}
"""Bars of warm-up of each feature: its first finite value is at this bar."""
assert set(FEATURE_LOOKBACK) == set(FEATURE_NAMES)

FundingInput = pd.Series | pd.DataFrame | Mapping[str, pd.Series | pd.DataFrame] | np.ndarray


def _frames(bars: pd.DataFrame | Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if isinstance(bars, pd.DataFrame):
        return {str(bars.attrs.get("symbol", "asset")): bars}
    if not isinstance(bars, Mapping) or not bars:
        raise ConfigError("bars: expected a DataFrame or a non-empty dict symbol -> DataFrame")
    return {str(k): v for k, v in bars.items()}


def _column(frame: pd.DataFrame, sym: str, col: str) -> np.ndarray:
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"bars for {sym!r}: expected a DataFrame, got {type(frame).__name__}")
    if col not in frame.columns:
        raise DataError(f"missing column {col!r}", source=sym)
    arr = frame[col].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(arr) | ((arr <= 0.0) if col != "volume" else (arr < 0.0))
    if bad.any():
        rows = np.flatnonzero(bad)
        kind = "NaN or infinite value" if not np.isfinite(arr[rows[0]]) else "non-positive value"
        raise DataError(kind, source=sym, rows=rows[:5], column=col)
    return arr


def _funding_rows(funding: FundingInput | None, frames: dict[str, pd.DataFrame],
                  index: pd.DatetimeIndex) -> np.ndarray:
    """Per-bar settled funding rates ``[T, N]`` (NaN = no settlement at that bar's open)."""
    n_bars, syms = len(index), list(frames)
    out = np.full((n_bars, len(syms)), np.nan)
    if isinstance(funding, np.ndarray):
        arr = np.asarray(funding, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] not in (1, n_bars) or arr.shape[1] not in (1, len(syms)):
            raise ConfigError(f"funding: expected per-bar rates of shape ({n_bars}, {len(syms)}) "
                              f"(or a length-1 axis), got {arr.shape}")
        out[:] = arr
        return out
    if funding is None:
        for i, sym in enumerate(syms):
            if "funding_rate" in frames[sym].columns:
                out[:, i] = frames[sym]["funding_rate"].to_numpy(dtype=np.float64)
        return out
    from quantum_trading.sim.inputs import align_to_bars, infer_timeframe

    timeframe = infer_timeframe(index, frames[syms[0]].attrs)
    for i, sym in enumerate(syms):
        obj = funding.get(sym) if isinstance(funding, Mapping) else funding
        if obj is None:
            continue
        if isinstance(obj, pd.DataFrame):
            if "funding_rate" not in obj.columns:
                raise ConfigError(f"funding for {sym!r}: expected a 'funding_rate' column")
            obj = obj["funding_rate"]
        if not isinstance(obj, pd.Series):
            raise ConfigError(f"funding for {sym!r}: expected a Series or DataFrame")
        out[:, i] = align_to_bars(index, timeframe, pd.DatetimeIndex(obj.index),
                                  obj.to_numpy(dtype=np.float64), how="sum")[0]
    return out


def atr_array(bars: pd.DataFrame | Mapping[str, pd.DataFrame]) -> np.ndarray:
    """ATR(14) per bar and asset, ``[T, N]`` float64 in price units (USDT), NaN in its
    14-bar warm-up; known at each bar's close (the multi-head stop distances use it)."""
    frames = _frames(bars)
    cols = []
    for sym, frame in frames.items():
        h, lo, c = (_column(frame, sym, k) for k in ("high", "low", "close"))
        cols.append(atr_nb(h, lo, c, ATR_PERIOD, np.empty(c.shape[0])))
    return np.column_stack(cols)


def market_features(
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
    features: Sequence[str],
    *,
    funding: FundingInput | None = None,
) -> tuple[np.ndarray, int]:
    """Normalised per-asset features, ``[T, N, F]`` float32, and the first bar where all are
    finite.

    Parameters
    ----------
    bars:
        One OHLCV frame or ``{symbol: frame}`` on one UTC bar-open-time index (asset order =
        the dict's order). ``volume`` is needed for ``volume_z`` only.
    features:
        Names from :data:`~quantum_trading.rl.spec.FEATURE_NAMES` (formulas in the module
        docstring), in the order of the last axis.
    funding:
        Funding settlements: a Series / DataFrame (``funding_rate``) / dict symbol → either,
        stamped at settlement times (as :func:`quantum_trading.sim.simulate` takes them), or
        an array of per-bar settled rates ``[T, N]`` (``Prepared.bars.funding_rate``). None:
        the frames' ``funding_rate`` columns, else 0.

    Returns
    -------
    (values, first_valid_bar)
        ``values[t, i, k]``: feature ``k`` of asset ``i`` known at bar ``t``'s close, clipped
        to ``±OBS_CLIP``; NaN exactly in rows ``< first_valid_bar``.

    Raises
    ------
    DataError
        Missing column, NaN / infinite / non-positive price, negative volume (naming symbol,
        rows and column). ConfigError for unknown features or mismatched indexes.

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=2, n_bars=400, seed=3).ohlcv
    >>> x, first = market_features(bars, ("log_return", "rsi", "trend"))
    >>> x.shape, x.dtype.name, first, bool(np.isfinite(x[first:]).all())
    ((400, 2, 3), 'float32', 49, True)
    """
    feats = tuple(features)
    unknown = [f for f in feats if f not in FEATURE_NAMES]
    if unknown or not feats:
        raise ConfigError(f"features: unknown {unknown}; choose from {list(FEATURE_NAMES)}")
    frames = _frames(bars)
    syms = list(frames)
    index = frames[syms[0]].index
    for sym in syms[1:]:
        if not frames[sym].index.equals(index):
            raise DataError(f"bar index differs from {syms[0]}'s", source=sym)
    n_bars, n = len(index), len(syms)
    rates = _funding_rows(funding, frames, index) if "funding" in feats else None
    out = np.empty((n_bars, n, len(feats)), dtype=np.float64)
    for i, sym in enumerate(syms):
        cols = _asset_features(frames[sym], sym, feats, None if rates is None else rates[:, i])
        for k, name in enumerate(feats):
            out[:, i, k] = cols[name]
    first = max(FEATURE_LOOKBACK[f] for f in feats)
    tail = out[first:]
    tail[~np.isfinite(tail)] = 0.0  # flat windows (zero denominators) after the warm-up
    out[:first] = np.nan
    np.clip(out, -OBS_CLIP, OBS_CLIP, out=out)
    return out.astype(np.float32), int(min(first, n_bars))


def _asset_features(frame: pd.DataFrame, sym: str, feats: tuple[str, ...],
                    rates: np.ndarray | None) -> dict[str, np.ndarray]:
    n = len(frame.index)
    c = _column(frame, sym, "close")
    h, lo = _column(frame, sym, "high"), _column(frame, sym, "low")
    _column(frame, sym, "open")  # checked like the others (the simulator fills at it)
    ret = np.full(n, np.nan)
    ret[1:] = np.log(c[1:] / c[:-1])
    need = set(feats)
    cols: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        atr = atr_nb(h, lo, c, ATR_PERIOD, np.empty(n)) if need & {"atr_pct", "trend"} else None
        vol = (realised_volatility_nb(c, _VOL_WINDOW, 1, 1.0, np.empty(n))
               if need & {"log_return_z", "regime_vol"} else None)
        if "log_return" in need:
            cols["log_return"] = 100.0 * ret
        if vol is not None and "log_return_z" in need:
            cols["log_return_z"] = ret / vol
        if "rsi" in need:
            cols["rsi"] = rsi_nb(c, _RSI_PERIOD, np.empty(n)) / 100.0 - 0.5
        if atr is not None and "atr_pct" in need:
            cols["atr_pct"] = 100.0 * atr / c
        if atr is not None and "trend" in need:
            cols["trend"] = (c - ema_nb(c, _EMA_PERIOD, np.empty(n))) / atr
        if "volume_z" in need:
            v = np.log1p(_column(frame, sym, "volume"))
            cols["volume_z"] = rolling_zscore_nb(v, _VOLUME_WINDOW, 1, np.empty(n))
        if "funding" in need:
            r = rates if rates is not None else np.full(n, np.nan)
            cols["funding"] = 1e4 * carry_forward_nb(np.ascontiguousarray(r), np.empty(n))
        if vol is not None and "regime_vol" in need:
            cols["regime_vol"] = rolling_rank_nb(vol, _REGIME_WINDOW, np.empty(n)) - 0.5
        if "range_pct" in need:
            cols["range_pct"] = 100.0 * (h - lo) / c
        if "bb_pct_b" in need:
            cols["bb_pct_b"] = bbands_nb(c, _BB_PERIOD, 2.0, 2.0, np.empty((5, n)))[3] - 0.5
    return cols
