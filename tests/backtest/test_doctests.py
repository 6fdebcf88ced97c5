"""The ``>>>`` examples of the backtest modules run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "quantum_trading.backtest",
    "quantum_trading.backtest.metrics",
    "quantum_trading.backtest.stats",
    "quantum_trading.backtest.trades",
    "quantum_trading.backtest.runner",
    "quantum_trading.backtest.report",
    "quantum_trading.backtest.inputs",
    "quantum_trading.backtest.report_risk",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
