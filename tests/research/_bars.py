"""Synthetic bars the research tests share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantum_trading.data import generate_market

SYMBOL = "BTC/USDT:USDT"


def noise_bars(seed: int, n: int = 2000, vol: float = 0.01) -> pd.DataFrame:
    """A driftless i.i.d. random walk: nothing in the order of bars to exploit."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    close = 100.0 * np.exp(np.cumsum(vol * rng.standard_normal(n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n)))
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": 1000.0 + rng.random(n)}, index=idx)


def trending_bars() -> pd.DataFrame:
    """Synthetic market with long, strong trends: a planted edge for trend following."""
    market = generate_market(n_assets=1, n_bars=2000, seed=1,
                             regime_drift_annual=(8.0, -8.0, 0.0, -20.0),
                             regime_durations_h=(240.0, 240.0, 120.0, 12.0))
    return market.ohlcv[SYMBOL]
