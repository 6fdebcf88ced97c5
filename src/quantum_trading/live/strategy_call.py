"""The trader's call of its strategy each bar: the last target row and the exit rules.

:class:`StrategyCall` is made once, when the trader starts, with the parameters already
validated; each bar it returns what the trader reads of the strategy's
:class:`~quantum_trading.domain.Signals` — the last target of each symbol and the exit rules
of the last bar — and nothing else.

Any strategy is called through its public ``signals(data, **params)``. A library strategy
(:class:`~quantum_trading.strategies.library._common.LibraryStrategy` that keeps the shared
``signals``) is called one level lower, through ``asset_signals(frame, params)`` on each
symbol's window: the same numbers (``signals`` is that call per asset plus the wrapping),
without what ``signals`` adds around the rule on every call — validating the parameters
again (about 40 µs), building the target DataFrame and the :class:`Signals` (``astype`` of
the target: about 60–80 µs) — which the trader reads one row of. The window's checks stay
(columns, index, one shared index across symbols: the same errors as ``signals``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.errors import DataError
from quantum_trading.live.feed import BarHistory
from quantum_trading.live.sizing import ExitRules, exit_rules, exit_rules_of, target_row
from quantum_trading.strategies import Strategy
from quantum_trading.strategies.library._common import (
    AssetSignals,
    LibraryStrategy,
    input_columns,
    ohlcv_frame,
)
from quantum_trading.strategies.library.stepping import SignalStepper

__all__ = ["StrategyCall", "StrategyResult"]


class StrategyResult:
    """What the trader reads of one call: ``targets`` (symbol → last target, NaN = no
    decision) and :meth:`exits` (the stop-loss / take-profit / trailing rules of the last
    bar for a symbol, :class:`~quantum_trading.live.sizing.ExitRules`)."""

    __slots__ = ("_exits", "targets")

    def __init__(self, targets: dict[str, float], exits: Callable[[str], ExitRules]) -> None:
        self.targets = targets
        self._exits = exits

    def exits(self, symbol: str) -> ExitRules:
        """The exit rules of the last bar for ``symbol`` (read when an order opens it)."""
        return self._exits(symbol)


class StrategyCall:
    """Call ``strategy`` on the trader's window each bar (see the module docstring).

    Parameters
    ----------
    strategy:
        Any :class:`~quantum_trading.strategies.Strategy`.
    params:
        Its parameters, **already validated** (``strategy.params.validate``, done once when
        the trader is made).
    symbols:
        The trader's symbols, in order.

    >>> from quantum_trading.strategies import get_strategy
    >>> s = get_strategy("trend_following")
    >>> call = StrategyCall(s, s.params.validate({"fast": 5, "slow": 20}), ["BTC"])
    >>> call.direct
    True
    """

    def __init__(self, strategy: Strategy, params: Mapping[str, Any],
                 symbols: Sequence[str]) -> None:
        self.strategy = strategy
        self.params = dict(params)
        self.symbols = tuple(symbols)
        self.direct = (isinstance(strategy, LibraryStrategy)
                       and type(strategy).signals is LibraryStrategy.signals)
        self._columns = input_columns(tuple(getattr(strategy, "required_columns", ())),
                                      self.params)
        self._steppers: dict[str, SignalStepper] | None = None
        self._seen: dict[str, int] = {}  # bars of each history the steppers have taken
        self._columns_ok: dict[tuple[str, ...], bool] = {}  # history columns → rule's present
        self.steppable = self.direct and strategy.stepper(self.params) is not None
        """Whether :meth:`on_history` steps the rule (a library rule with an event stepper)."""

    def on_history(self, histories: Mapping[str, BarHistory], window_bars: int | None
                   ) -> StrategyResult:
        """The strategy on the trader's histories: **stepped** (each bar added since the last
        call fed to the rule's :class:`~quantum_trading.strategies.library.stepping.
        SignalStepper`, a few µs whatever the history's length) when the rule can be
        stepped and the window is every bar (``window_bars=None``); else on the last
        ``window_bars`` bars of each history (:meth:`__call__`). Both give the same targets
        and exit rules (``tests/strategies/test_stepping.py``,
        ``tests/live/test_strategy_call.py``). A stepped rule goes on past the history's
        ``max_history_bars``: it has seen every bar since the start, as a backtest over
        them (the window recomputation would forget the dropped bars).

        The first stepped call (the trader's warm-up makes it, :meth:`prime`) takes the whole
        history. Histories whose bars differ across symbols, or that lack a column the rule
        reads, go to :meth:`__call__`, which raises the error."""
        if window_bars is None and self.steppable:
            result = self._step(histories)
            if result is not None:
                return result
        return self({s: histories[s].window(window_bars) for s in self.symbols})

    def prime(self, histories: Mapping[str, BarHistory]) -> None:
        """Feed the steppers every bar of the histories now (the trader's start, so that its
        first decision does not); nothing when the rule is not stepped."""
        if self.steppable:
            self._step(histories)

    def _step(self, histories: Mapping[str, BarHistory]) -> StrategyResult | None:
        first = histories[self.symbols[0]]
        if not all(self._reads_columns_of(histories[s]) for s in self.symbols) \
                or any(histories[s].appended != first.appended or len(histories[s]) != len(first)
                       for s in self.symbols[1:]):
            return None
        steppers = self._steppers
        if steppers is None or first.appended - self._seen[self.symbols[0]] > len(first):
            steppers = {s: self.strategy.stepper(self.params) for s in self.symbols}
            self._seen = {s: first.appended - len(first) for s in self.symbols}
        new = [histories[s].rows_since(self._seen[s]) for s in self.symbols]
        for times, _ in new[1:]:
            if not np.array_equal(times, new[0][0]):
                return None
        for s, (_, values) in zip(self.symbols, new, strict=True):
            stepper, names = steppers[s], histories[s].columns
            for column in values.T.tolist():
                stepper.step(dict(zip(names, column, strict=True)))
            self._seen[s] = histories[s].appended
        self._steppers = steppers
        targets = {s: steppers[s].target for s in self.symbols}

        def exits(symbol: str) -> ExitRules:
            stepper = steppers[symbol]
            return exit_rules_of(stepper.stop_loss, stepper.take_profit, None, symbol, 1)

        return StrategyResult(targets, exits)

    def _reads_columns_of(self, history: BarHistory) -> bool:
        """Whether ``history`` has every column the rule reads (checked once per column set:
        a history's columns are fixed by its first bar)."""
        columns = history.columns
        known = self._columns_ok.get(columns)
        if known is None:
            known = self._columns_ok[columns] = set(self._columns).issubset(columns)
        return known

    def __call__(self, windows: Mapping[str, pd.DataFrame]) -> StrategyResult:
        """The strategy on ``windows`` (symbol → OHLCV window, one shared index). A
        library strategy: ~0.1 ms for one symbol on 3,000 bars (its rule alone); any
        other: its ``signals()`` plus reading one row."""
        n = len(self.symbols)
        if not self.direct:
            data: Any = windows[self.symbols[0]] if n == 1 else windows
            signals = self.strategy.signals(data, **self.params)
            return StrategyResult(target_row(signals, self.symbols),
                                  lambda symbol: exit_rules(signals, symbol, n))
        strategy: Any = self.strategy
        name = strategy.name
        frames = [ohlcv_frame(windows[s], name, self._columns) for s in self.symbols]
        index = frames[0].index
        for s, f in zip(self.symbols[1:], frames[1:], strict=True):
            if not f.index.equals(index):
                raise DataError(f"strategy {name!r}: bar index differs from "
                                f"{self.symbols[0]}'s", source=s)
        per_asset: dict[str, AssetSignals] = {
            s: strategy.asset_signals(f, self.params)
            for s, f in zip(self.symbols, frames, strict=True)}
        targets = {s: float(a.target[-1]) for s, a in per_asset.items()}

        def exits(symbol: str) -> ExitRules:
            a = per_asset[symbol]
            return exit_rules_of(a.stop_loss, a.take_profit, None, symbol, 1)

        return StrategyResult(targets, exits)
