"""Fixtures for the strategy tests: the real BTC/ETH 1h bars."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


def _read(path: Path) -> pd.DataFrame:
    return pd.read_feather(path).set_index("date")


@pytest.fixture(scope="session")
def btc_1h(binance_futures_dir: Path) -> pd.DataFrame:
    """Real Binance BTC/USDT:USDT perpetual 1h bars (July–August 2023)."""
    return _read(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather")


@pytest.fixture(scope="session")
def eth_1h(binance_futures_dir: Path) -> pd.DataFrame:
    """Real Binance ETH/USDT:USDT perpetual 1h bars (July–August 2023)."""
    return _read(binance_futures_dir / "ETH_USDT_USDT-1h-futures.feather")
