"""Small builders shared by the simulator tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from quantum_trading.sim import CostsConfig

ZERO_COSTS = CostsConfig(
    taker_fee_bps=0.0, maker_fee_bps=0.0, half_spread_bps=0.0, slippage_bps=0.0,
    default_funding_rate=0.0,
)


def index(n: int, freq: str = "1h", start: str = "2024-01-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq=freq, tz="UTC")


def bars(
    opens: Sequence[float],
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
    closes: Sequence[float] | None = None,
    *,
    freq: str = "1h",
    start: str = "2024-01-01",
    volume: float | Sequence[float] = 1_000.0,
) -> pd.DataFrame:
    """OHLCV frame; missing highs/lows/closes default to the open (a flat bar)."""
    o = np.asarray(opens, dtype=float)
    c = o if closes is None else np.asarray(closes, dtype=float)
    h = np.maximum(o, c) if highs is None else np.asarray(highs, dtype=float)
    lo = np.minimum(o, c) if lows is None else np.asarray(lows, dtype=float)
    vol = np.broadcast_to(np.asarray(volume, dtype=float), o.shape).copy()
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": vol},
                        index=index(len(o), freq, start))


def target(values: Sequence[float | None], idx: pd.DatetimeIndex, name: str = "X") -> pd.Series:
    return pd.Series([np.nan if v is None else v for v in values], index=idx, name=name,
                     dtype=float)


def random_bars(rng: np.random.Generator, n: int, *, vol: float = 0.02, start_price: float = 100.0,
                gap: float = 0.0) -> pd.DataFrame:
    """A random OHLC path (log-normal closes, opens near the last close, wicks)."""
    r = rng.normal(0.0, vol, n)
    close = start_price * np.exp(np.cumsum(r))
    prev = np.r_[start_price, close[:-1]]
    opens = prev * np.exp(rng.normal(0.0, gap, n)) if gap > 0 else prev
    hi = np.maximum(opens, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n)))
    lo = np.minimum(opens, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n)))
    return pd.DataFrame({"open": opens, "high": hi, "low": lo, "close": close,
                         "volume": rng.uniform(100.0, 1_000.0, n)}, index=index(n))
