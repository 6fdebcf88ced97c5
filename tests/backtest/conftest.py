"""Fixtures for the backtest tests: the real Binance BTC 1h bars with funding and mark joined,
and one backtest on them that several tests read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from quantum_trading.backtest import Backtest, BacktestResult
from quantum_trading.data import join_funding, join_mark, load_funding, load_mark, load_ohlcv


@pytest.fixture(scope="session")
def btc_bars(binance_futures_dir: Path) -> pd.DataFrame:
    """BTC/USDT:USDT 1h bars (July–August 2023) with ``funding_rate`` and ``mark_price``."""
    bars = load_ohlcv(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather")
    rates = load_funding(binance_futures_dir / "BTC_USDT_USDT-8h-funding_rate.feather")
    mark = load_mark(binance_futures_dir / "BTC_USDT_USDT-8h-mark.feather")
    return join_mark(join_funding(bars, rates), mark)


@pytest.fixture(scope="session")
def momentum_result(btc_bars: pd.DataFrame) -> BacktestResult:
    """Momentum breakout, long and short (flips), 2 % stop-loss, on real BTC 1h bars."""
    return Backtest(btc_bars, "momentum_breakout",
                    params={"direction": "both", "stop_loss_pct": 2.0}).run()
