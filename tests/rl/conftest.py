"""Fixtures for the RL tests: real Binance BTC and ETH 1h perps (funding and mark joined) and
small synthetic frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.data import join_funding, join_mark, load_funding, load_mark, load_ohlcv

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def _load(folder: Path, coin: str) -> pd.DataFrame:
    bars = load_ohlcv(folder / f"{coin}_USDT_USDT-1h-futures.feather")
    rates = load_funding(folder / f"{coin}_USDT_USDT-8h-funding_rate.feather")
    mark = load_mark(folder / f"{coin}_USDT_USDT-8h-mark.feather")
    return join_mark(join_funding(bars, rates), mark)


@pytest.fixture(scope="session")
def real_bars(binance_futures_dir: Path) -> dict[str, pd.DataFrame]:
    """BTC and ETH USDT perps, 1h, July–August 2023, with funding_rate and mark_price."""
    return {BTC: _load(binance_futures_dir, "BTC"), ETH: _load(binance_futures_dir, "ETH")}


def walk(n_bars: int, *, seed: int = 0, start: float = 100.0, vol: float = 0.003
         ) -> pd.DataFrame:
    """A random-walk OHLCV frame on an hourly UTC index."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0, vol, n_bars)))
    open_ = np.r_[start, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, vol, n_bars))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, vol, n_bars))
    idx = pd.date_range("2024-01-01", periods=n_bars, freq="1h", tz="UTC")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": rng.uniform(100, 200, n_bars)}, index=idx)
