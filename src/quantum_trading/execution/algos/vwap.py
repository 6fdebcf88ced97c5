"""VWAP: children sized by the market's usual volume at each time of day.

:func:`volume_profile` turns an OHLCV history into the average share of a day's volume traded
in each time-of-day bucket (UTC). :class:`VWAP` then works the parent over ``duration_s`` in
``n_slices`` children; each slice's weight is the profile's volume share integrated over the
slice's interval, so more is sent when the market usually trades more.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantum_trading.domain import Side
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.execution.algos.base import ScheduledAlgorithm
from quantum_trading.execution.config import VWAPConfig
from quantum_trading.execution.order_manager import OrderManager

__all__ = ["VWAP", "volume_profile"]

_DAY_S = 86_400


def volume_profile(ohlcv: pd.DataFrame, *, bucket_s: int = 3_600) -> pd.Series:
    """Average share of daily volume by UTC time-of-day bucket.

    Each bar's volume goes to the bucket of its open time; per bucket the volume is summed
    within each day and averaged over the days with bars there; the result is normalised to
    sum to 1.

    Parameters
    ----------
    ohlcv:
        Frame with a ``volume`` column and a tz-aware ``DatetimeIndex`` of bar open times.
    bucket_s:
        Bucket width in seconds; must divide 86 400.

    Returns
    -------
    pd.Series
        ``volume_share`` indexed by ``bucket_start_s`` (0, bucket_s, …, seconds after 00:00
        UTC), summing to 1.

    >>> idx = pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC")
    >>> vol = pd.DataFrame({"volume": [3.0 if t.hour < 12 else 1.0 for t in idx]}, index=idx)
    >>> volume_profile(vol, bucket_s=43_200).round(3).tolist()
    [0.75, 0.25]
    """
    if not isinstance(ohlcv, pd.DataFrame) or "volume" not in ohlcv:
        raise DataError("volume_profile needs a frame with a volume column", column="volume")
    if not isinstance(ohlcv.index, pd.DatetimeIndex) or ohlcv.index.tz is None:
        raise DataError("volume_profile needs a tz-aware DatetimeIndex of bar open times")
    if not (60 <= int(bucket_s) <= _DAY_S and _DAY_S % int(bucket_s) == 0):
        raise ConfigError(f"volume_profile: bucket_s must divide 86400, got {bucket_s!r}")
    volume = ohlcv["volume"].astype("float64")
    if volume.isna().any() or (volume < 0).any():
        raise DataError("volume_profile: volume must be >= 0 and not NaN", column="volume")
    idx = ohlcv.index.tz_convert("UTC")
    day = idx.normalize()
    second = np.asarray((idx - day).total_seconds(), dtype=np.int64)
    bucket = second // int(bucket_s) * int(bucket_s)
    per_day = volume.groupby([np.asarray(day), bucket]).sum()
    mean = per_day.groupby(level=1).mean()
    full = mean.reindex(range(0, _DAY_S, int(bucket_s)), fill_value=0.0)
    total = float(full.sum())
    if not total > 0:
        raise DataError("volume_profile: no volume in the history", column="volume")
    share = (full / total).rename("volume_share")
    share.index.name = "bucket_start_s"
    return share


def _integrate(share: np.ndarray, bucket_s: int, start_s: float, length_s: float) -> float:
    """Integral of the profile's density over [start_s, start_s + length_s) (seconds of day,
    wrapping at midnight)."""
    w = 0.0
    pos = start_s
    left = length_s
    while left > 1e-9:
        k = int(pos // bucket_s)
        seg = min((k + 1) * bucket_s - pos, left)
        w += share[k % len(share)] * seg / bucket_s
        pos += seg
        left -= seg
    return w


class VWAP(ScheduledAlgorithm):
    """Volume-weighted average price execution (see the module docstring).

    Parameters
    ----------
    manager, symbol, side, amount, reduce_only, lot_size, parent_id:
        As :class:`~quantum_trading.execution.algos.base.ExecAlgorithm`.
    history:
        An OHLCV frame (UTC bar-open index, ``volume``) for :func:`volume_profile` with
        ``config.bucket_s``; or
    profile:
        A ready profile (as :func:`volume_profile` returns, ``86400 / bucket_s`` buckets).
    config:
        :class:`~quantum_trading.execution.config.VWAPConfig` (None = defaults).

    >>> algo = VWAP(manager, symbol="BTC/USDT:USDT", side=Side.SELL, amount=3.0,
    ...             history=bars, config=VWAPConfig(duration_s=7200, n_slices=8))  # doctest: +SKIP
    """

    name = "vwap"

    def __init__(self, manager: OrderManager, *, symbol: str, side: Side, amount: float,
                 history: pd.DataFrame | None = None, profile: pd.Series | None = None,
                 config: VWAPConfig | None = None, reduce_only: bool = False,
                 lot_size: float | None = None, parent_id: str | None = None) -> None:
        config = VWAPConfig() if config is None else config
        super().__init__(manager, symbol=symbol, side=side, amount=amount, config=config,
                         reduce_only=reduce_only, lot_size=lot_size, parent_id=parent_id)
        if (history is None) == (profile is None):
            raise ConfigError("VWAP: give exactly one of history= or profile=")
        if profile is None:
            profile = volume_profile(history, bucket_s=config.bucket_s)
        values = np.asarray(profile, dtype=np.float64)
        if values.size == 0 or _DAY_S % values.size or not np.all(np.isfinite(values)) \
                or np.any(values < 0) or values.sum() <= 0:
            raise ConfigError("VWAP: profile must be non-negative shares over buckets that "
                              "divide a day")
        self.profile = pd.Series(values / values.sum(), name="volume_share")
        self._bucket_s = _DAY_S // values.size

    def _weights(self, times: pd.DatetimeIndex, slice_s: float) -> np.ndarray:
        share = self.profile.to_numpy()
        seconds = (times - times.normalize()).total_seconds()
        return np.array([_integrate(share, self._bucket_s, float(s), slice_s) for s in seconds])
