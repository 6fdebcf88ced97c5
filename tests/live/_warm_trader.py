"""Imported by the crash test's forkserver: runs the trader's numba kernels once (strategy
indicators, risk checks), so that every forked trader starts with them loaded, as a long-lived
process would."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantum_trading.risk.engine import RiskEngine
from quantum_trading.sim import RiskConfig
from quantum_trading.strategies import get_strategy


def _warm() -> None:
    idx = pd.date_range("2024-01-01", periods=64, freq="1min", tz="UTC")
    close = 100.0 + np.sin(np.arange(64) / 5.0)
    frame = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                          "volume": 1.0}, index=idx)
    get_strategy("trend_following").signals(frame, fast=5, slow=20, direction="both",
                                            stop_loss_pct=0.15)
    engine = RiskEngine(RiskConfig(), symbols=["BTC/USDT:USDT"], lot_size=0.001)
    engine.update(idx[0], 10_000.0, positions=[0.0], prices=[100.0])
    engine.check_order(idx[0], "BTC/USDT:USDT", 1.0, equity_usd=10_000.0, positions=[0.0],
                       prices=[100.0])


_warm()
