"""The registry: names, lookup, registration and k=v parsing for the CLI."""

from __future__ import annotations

import pytest

from quantum_trading.errors import ConfigError
from quantum_trading.strategies import (
    LIBRARY,
    Strategy,
    get_strategy,
    list_strategies,
    parse_params,
    register_strategy,
    strategy_from_function,
)
from quantum_trading.strategies import registry as registry_module


def test_library_is_registered():
    assert list_strategies() == [
        "buy_and_hold", "mean_reversion", "momentum_breakout", "trend_following"]
    for strat in LIBRARY:
        assert get_strategy(strat.name) is strat
        assert isinstance(strat, Strategy)


def test_unknown_strategy_lists_available():
    with pytest.raises(ConfigError, match=r"unknown strategy 'momentum' \(available: buy_and_hold"):
        get_strategy("momentum")


def test_parse_params_cli_style():
    params = parse_params("momentum_breakout", ["lookback=50", "volume_factor=2", "direction=both",
                                                "stop_loss_atr=1.5"])
    assert params["lookback"] == 50 and type(params["lookback"]) is int
    assert params["volume_factor"] == 2.0 and type(params["volume_factor"]) is float
    assert params["direction"] == "both" and params["stop_loss_atr"] == 1.5
    assert params["exit_lookback"] == 10  # default kept
    assert parse_params(get_strategy("trend_following"), None) == get_strategy(
        "trend_following").params.defaults()
    with pytest.raises(ConfigError, match=r"lookback: 5 is out of range.*\[10, 200\]"):
        parse_params("momentum_breakout", ["lookback=5"])
    with pytest.raises(ConfigError, match=r"fast < slow"):
        parse_params("trend_following", ["fast=40", "slow=30"])


def test_register_user_strategy(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    strat = strategy_from_function(lambda df: df["close"] * 0.0, name="flat")
    assert register_strategy(strat) is strat
    assert get_strategy("flat") is strat and "flat" in list_strategies()
    other = strategy_from_function(lambda df: df["close"] * 0.0, name="flat")
    with pytest.raises(ConfigError, match="already registered"):
        register_strategy(other)
    register_strategy(other, replace=True)
    assert get_strategy("flat") is other
    with pytest.raises(ConfigError, match="has no name, params and signals"):
        register_strategy(object())
