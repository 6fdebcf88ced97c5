"""Fixtures for the indicator tests: real Binance USDⓈ-M OHLCV bars, read with pandas."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
import pytest

REAL_FILES = (
    "BTC_USDT_USDT-1h-futures.feather",
    "ETH_USDT_USDT-1h-futures.feather",
    "BTC_USDT_USDT-1m-futures.feather",
    "ETH_USDT_USDT-1m-futures.feather",
)


@cache
def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_feather(path)
    frame = frame.set_index("date")[["open", "high", "low", "close", "volume"]]
    return frame.astype("float64")


def load_bars(folder: Path, name: str) -> pd.DataFrame:
    """OHLCV bars of one freqtrade-layout feather file, indexed by bar open time (a copy)."""
    return _read(folder / name).copy()


@pytest.fixture(scope="session", params=REAL_FILES, ids=lambda name: name.split("-futures")[0])
def bars(request: pytest.FixtureRequest, binance_futures_dir: Path) -> pd.DataFrame:
    """Each real file in turn: BTC and ETH perpetuals, 1h and 1m bars."""
    return load_bars(binance_futures_dir, request.param)


@pytest.fixture(scope="session")
def btc_1m(binance_futures_dir: Path) -> pd.DataFrame:
    """BTC/USDT:USDT 1m bars (64k rows)."""
    return load_bars(binance_futures_dir, "BTC_USDT_USDT-1m-futures.feather")


@pytest.fixture(scope="session")
def eth_1h(binance_futures_dir: Path) -> pd.DataFrame:
    """ETH/USDT:USDT 1h bars."""
    return load_bars(binance_futures_dir, "ETH_USDT_USDT-1h-futures.feather")
