"""Strategies by name, for the CLI (``--strategy momentum_breakout --param lookback=50``).

The library strategies are registered on import; user strategies (any object satisfying
:class:`~quantum_trading.strategies.base.Strategy`, e.g. a
:class:`~quantum_trading.strategies.function.FunctionStrategy`) can be added with
:func:`register_strategy`.

>>> list_strategies()
['buy_and_hold', 'mean_reversion', 'momentum_breakout', 'trend_following']
>>> parse_params("momentum_breakout", ["lookback=50"])["lookback"]
50
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from quantum_trading.errors import ConfigError
from quantum_trading.strategies.base import Strategy
from quantum_trading.strategies.function import strategy_from_function
from quantum_trading.strategies.library import LIBRARY

__all__ = ["get_strategy", "list_strategies", "parse_params", "register_strategy",
           "resolve_strategy"]

_REGISTRY: dict[str, Strategy] = {s.name: s for s in LIBRARY}


def register_strategy(strategy: Strategy, *, replace: bool = False) -> Strategy:
    """Make ``strategy`` available as ``get_strategy(strategy.name)``; returns it.

    Raises :class:`ConfigError` if it does not look like a :class:`Strategy` or its name is
    taken (unless ``replace=True``).

    >>> from quantum_trading.strategies import strategy_from_function
    >>> s = register_strategy(strategy_from_function(lambda df: df["close"] * 0, name="flat"))
    >>> get_strategy("flat") is s
    True
    """
    if not isinstance(strategy, Strategy):
        raise ConfigError(f"register_strategy: {strategy!r} has no name, params and signals()")
    name = strategy.name
    if not isinstance(name, str) or not name:
        raise ConfigError("register_strategy: the strategy's name must be a non-empty string")
    if name in _REGISTRY and _REGISTRY[name] is not strategy and not replace:
        raise ConfigError(f"register_strategy: a strategy named {name!r} is already registered "
                          "(pass replace=True to replace it)")
    _REGISTRY[name] = strategy
    return strategy


def list_strategies() -> list[str]:
    """Names of every registered strategy, sorted."""
    return sorted(_REGISTRY)


def resolve_strategy(strategy: Strategy | str | Callable[..., Any]) -> Strategy:
    """A strategy from itself, its registered name or a plain function
    ``f(df, **params) -> pd.Series`` (wrapped by
    :func:`~quantum_trading.strategies.function.strategy_from_function`).

    >>> resolve_strategy("trend_following").name
    'trend_following'
    """
    if isinstance(strategy, str):
        return get_strategy(strategy)
    if isinstance(strategy, Strategy):
        return strategy
    if callable(strategy):
        return strategy_from_function(strategy)
    raise ConfigError(f"strategy must be a Strategy, a registered name or a function, got "
                      f"{type(strategy).__name__}")


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``; :class:`ConfigError` listing the known ones if none.

    >>> get_strategy("trend_following").params.defaults()["fast"]
    20
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(list_strategies())
        raise ConfigError(f"unknown strategy {name!r} (available: {known})") from None


def parse_params(
    strategy: str | Strategy, assignments: Sequence[str] | Mapping[str, str] | None
) -> dict[str, Any]:
    """Typed, validated parameters of ``strategy`` from ``["k=v", …]`` strings.

    Each value is parsed by the parameter's declared type (int, float or one of the
    choices); parameters not named keep their defaults. Raises :class:`ConfigError` naming
    the parameter and its allowed range.

    >>> parse_params("mean_reversion", ["nbdev=2.5", "direction=both"])["direction"]
    'both'
    """
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    return strat.params.parse(assignments or [])
