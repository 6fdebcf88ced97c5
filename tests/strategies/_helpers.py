"""Hand-built bar frames for the strategy tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_bars(close, *, high=None, low=None, volume=None, start="2024-01-01") -> pd.DataFrame:
    """An OHLCV frame (1h bars, UTC) from ``close``; high/low default to close, volume to 1."""
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="date")
    high = close.copy() if high is None else np.asarray(high, dtype=np.float64)
    low = close.copy() if low is None else np.asarray(low, dtype=np.float64)
    volume = np.ones(n) if volume is None else np.asarray(volume, dtype=np.float64)
    return pd.DataFrame(
        {"open": close, "high": high, "low": low, "close": close, "volume": volume}, index=idx
    )


def mirror(df: pd.DataFrame, around: float = 200.0) -> pd.DataFrame:
    """Prices reflected (``around - price``, high and low swapped): turns a long setup into
    the symmetric short one."""
    out = df.copy()
    out["open"] = around - df["open"]
    out["close"] = around - df["close"]
    out["high"] = around - df["low"]
    out["low"] = around - df["high"]
    return out
