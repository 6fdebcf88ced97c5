"""Fixtures for the risk tests: seeded fat-tailed samples and the real BTC/ETH hourly returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def fat_tailed() -> pd.Series:
    """2,000 Student-t(4) returns with 1% scale and a small drift (seed 7)."""
    rng = np.random.default_rng(7)
    index = pd.date_range("2024-01-01", periods=2_000, freq="1h", tz="UTC")
    return pd.Series(0.0002 + 0.01 * rng.standard_t(4, 2_000), index=index, name="asset")


@pytest.fixture(scope="session")
def three_assets() -> pd.DataFrame:
    """3,000 bars of three correlated Gaussian assets (seed 11)."""
    rng = np.random.default_rng(11)
    corr = np.array([[1.0, 0.6, 0.2], [0.6, 1.0, 0.3], [0.2, 0.3, 1.0]])
    vols = np.array([0.01, 0.015, 0.006])
    cov = corr * np.outer(vols, vols)
    draws = rng.multivariate_normal([0.0003, -0.0001, 0.0002], cov, 3_000)
    index = pd.date_range("2024-01-01", periods=3_000, freq="1h", tz="UTC")
    return pd.DataFrame(draws, index=index, columns=["BTC", "ETH", "SOL"])


def _returns(folder: Path, symbol: str) -> pd.Series:
    frame = pd.read_feather(folder / f"{symbol}_USDT_USDT-1h-futures.feather").set_index("date")
    return frame["close"].astype("float64").pct_change().dropna().rename(symbol)


@pytest.fixture(scope="session")
def real_hourly(binance_futures_dir: Path) -> pd.DataFrame:
    """Simple hourly returns of the real BTC and ETH perpetuals (July-August 2023)."""
    return pd.concat([_returns(binance_futures_dir, s) for s in ("BTC", "ETH")], axis=1)
