"""Shared fixtures: where the real market data is, and small helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quantum_trading.cli._console import console
from quantum_trading.paths import real_data_dir


@pytest.fixture(autouse=True)
def wide_console() -> Iterator[None]:
    """CLI tests read rich tables from captured output: a fixed, wide console, whatever the
    terminal (or pytest-xdist's worker) reports."""
    previous = console.width
    console.width = 200
    yield
    console.width = previous


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shared real market data folder (``$QUANTUM_REAL_DATA`` or ``../shared/data``).

    Tests that use real data fail loudly when it is missing: a silent skip would hide that the
    parity and loading claims were never checked.
    """
    path = real_data_dir()
    if not (path / "MANIFEST.md").exists():
        pytest.fail(f"real market data not found at {path}; set QUANTUM_REAL_DATA")
    return path


@pytest.fixture(scope="session")
def binance_futures_dir(real_data: Path) -> Path:
    """freqtrade-layout folder of Binance USDⓈ-M perpetual data (July–August 2023)."""
    return real_data / "binance" / "futures"


@pytest.fixture(scope="session")
def freqtrade_fixtures_dir(real_data: Path) -> Path:
    """Small freqtrade-layout files for XRP/USDT:USDT (November–December 2021)."""
    return real_data / "fixtures" / "freqtrade"
