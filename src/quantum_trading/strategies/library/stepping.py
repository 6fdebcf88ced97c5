"""Library strategies one bar at a time: the same targets as their vectorised rule, for the
live trader.

A library strategy's :meth:`~quantum_trading.strategies.library._common.LibraryStrategy.
asset_signals` computes every bar of the window it is given. The live trader gives it every
bar since its start (``window_bars=None``: what makes indicators with infinite memory, such as
an EMA, and the entry/exit state machine equal the backtest's), so each decision costs time in
proportion to the history: ≈ 0.05 ms on 3,000 bars, ≈ 3 ms on 200,000 (the default history
cap). A strategy that can also run bar by bar offers :meth:`LibraryStrategy.event_stepper`:
each call takes one bar's values and returns that bar's entry / exit events, carrying its
indicators' state from the bar before. :class:`SignalStepper` turns those events into the
target exactly as ``asset_signals`` does (readiness, direction, the position state machine,
size), so the trader's decision costs the same on the ten-thousandth bar as on the first.

Exactness: each step repeats its kernel's operations in the same order in IEEE double
arithmetic — :class:`EmaStep` is :func:`~quantum_trading.features.averages_nb.ema_nb`,
:class:`SmaStep` :func:`~quantum_trading.features.averages_nb.sma_nb`, :class:`HighLowStep`
the channel of :func:`~quantum_trading.features.rolling_nb.donchian_nb`, :class:`PositionStep`
:func:`~quantum_trading.strategies.positions_nb.position_from_entries_exits_nb` — and where a
kernel's arithmetic is compiled differently from Python's it calls the kernel's own compiled
step: the EMA update :func:`~quantum_trading.features.averages_nb.ema_next_nb` (fused
multiply-add: it rounds unlike Python's ``a * b + c * d``) and the position rule
:func:`~quantum_trading.strategies.positions_nb.position_next_nb`. So a stepped target equals
the vectorised one bit for bit; ``tests/strategies/test_stepping.py`` checks it bar by bar on
real data.

Not stepped (the trader recomputes the window as before): stops that are a multiple of the
ATR (the stop distance is read from the ATR at the decision bar), and strategies without an
``event_stepper``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from quantum_trading.domain import StopSpec
from quantum_trading.features.averages_nb import RESEED_EVERY, ema_next_nb
from quantum_trading.strategies.positions_nb import position_next_nb

__all__ = ["EmaStep", "EventStep", "HighLowStep", "PositionStep", "SignalStepper", "SmaStep"]

EventStep = Callable[[Mapping[str, float]], tuple[bool, bool, bool, bool, bool]]
"""One bar's values (column → float) → ``(long_entry, long_exit, short_entry, short_exit,
ready)`` of that bar, as the strategy's ``events`` gives them."""


class EmaStep:
    """:func:`~quantum_trading.features.averages_nb.ema_nb` one value at a time: ``k = 2 /
    (period + 1)``, seeded with the mean of the first ``period`` values, restarted after a
    missing (non-finite) value; NaN until seeded.

    >>> ema = EmaStep(3)
    >>> [ema(v) for v in (1.0, 2.0, 3.0, 4.0)]
    [nan, nan, 2.0, 3.0]
    """

    __slots__ = ("count", "decay", "k", "period", "prev", "total")

    def __init__(self, period: int) -> None:
        self.period = int(period)
        self.k = 2.0 / (self.period + 1)
        self.decay = 1.0 - self.k
        self.count = 0
        self.total = 0.0
        self.prev = 0.0

    def __call__(self, v: float) -> float:
        if not math.isfinite(v):
            self.count = 0
            self.total = 0.0
            return math.nan
        self.count += 1
        if self.count < self.period:
            self.total += v
            return math.nan
        if self.count == self.period:
            self.total += v
            self.prev = self.total / self.period
            return self.prev
        self.prev = float(ema_next_nb(self.prev, v, self.decay, self.k))  # ema_nb's rounding
        return self.prev


class SmaStep:
    """:func:`~quantum_trading.features.averages_nb.sma_nb` one value at a time: the running
    window sum (adding the new value, taking out the one ``period`` bars back), summed again
    left to right every ``max(period, RESEED_EVERY)`` bars as the kernel does, restarted after
    a non-finite value; NaN until ``period`` values.

    >>> sma = SmaStep(2)
    >>> [sma(v) for v in (1.0, 3.0, 5.0)]
    [nan, 2.0, 4.0]
    """

    __slots__ = ("count", "inv", "period", "reseed", "since", "total", "window")

    def __init__(self, period: int) -> None:
        self.period = int(period)
        self.inv = 1.0 / self.period
        self.reseed = max(self.period, RESEED_EVERY)
        self.window: deque[float] = deque(maxlen=self.period + 1)
        self.count = 0
        self.since = 0
        self.total = 0.0

    def __call__(self, v: float) -> float:
        if not math.isfinite(v):
            self.count = 0
            self.total = 0.0
            self.window.clear()
            return math.nan
        self.window.append(v)  # the last period + 1 values: the one leaving is window[0]
        self.count += 1
        if self.count < self.period:
            self.total += v
            return math.nan
        if self.count == self.period:
            self.total += v
            self.since = 0
        else:
            self.since += 1
            if self.since == self.reseed:
                self.since = 0
                total = 0.0
                for j in range(1, self.period + 1):  # left to right, as _window_sum_nb
                    total += self.window[j]
                self.total = total
            else:
                self.total += v - self.window[0]
        return self.total * self.inv


class HighLowStep:
    """The upper and lower rows of :func:`~quantum_trading.features.rolling_nb.donchian_nb`
    one bar at a time: the highest high and lowest low of the last ``period`` bars, restarted
    after a bar whose high or low is not finite; NaN until ``period`` bars.

    >>> hl = HighLowStep(2)
    >>> [hl(h, l) for h, l in ((3.0, 1.0), (4.0, 2.0), (2.0, 0.5))]
    [(nan, nan), (4.0, 1.0), (4.0, 0.5)]
    """

    __slots__ = ("highs", "lows", "period")

    def __init__(self, period: int) -> None:
        self.period = int(period)
        self.highs: deque[float] = deque(maxlen=self.period)
        self.lows: deque[float] = deque(maxlen=self.period)

    def __call__(self, high: float, low: float) -> tuple[float, float]:
        if not (math.isfinite(high) and math.isfinite(low)):
            self.highs.clear()
            self.lows.clear()
            return math.nan, math.nan
        self.highs.append(high)
        self.lows.append(low)
        if len(self.highs) < self.period:
            return math.nan, math.nan
        return max(self.highs), min(self.lows)


class PositionStep:
    """:func:`~quantum_trading.strategies.positions_nb.position_from_entries_exits_nb` one bar
    at a time, through its own step (:func:`~quantum_trading.strategies.positions_nb.
    position_next_nb`): exits first (an opposite entry closes too), then entries when flat
    (both at once: stay flat); returns the position in {-1, 0, +1} decided at the bar.

    >>> step = PositionStep()
    >>> [step(*e) for e in ((True, False, False, False), (False, False, True, False))]
    [1.0, -1.0]
    """

    __slots__ = ("pos",)

    def __init__(self) -> None:
        self.pos = 0.0

    def __call__(self, long_entry: bool, long_exit: bool, short_entry: bool,
                 short_exit: bool) -> float:
        self.pos = float(position_next_nb(self.pos, long_entry, long_exit, short_entry,
                                          short_exit))
        return self.pos


class SignalStepper:
    """One asset's target bar by bar, as ``asset_signals`` computes it on the whole window.

    Parameters
    ----------
    events:
        The strategy's :data:`EventStep` (its own indicator state).
    params:
        The validated parameters (``direction``, ``size`` and the percentage stops are read;
        ATR stops are not steppable: :meth:`LibraryStrategy.stepper` returns None for them).

    Attributes ``stop_loss`` / ``take_profit``: the stops of every bar (percentages: the same
    at each bar), as ``asset_signals`` returns them.
    """

    __slots__ = ("_events", "_long_ok", "_position", "_short_ok", "_size", "bars",
                 "stop_loss", "take_profit", "target")

    def __init__(self, events: EventStep, params: Mapping[str, Any]) -> None:
        self._events = events
        self._position = PositionStep()
        direction = params.get("direction", "long")
        self._long_ok = direction != "short"
        self._short_ok = direction != "long"
        self._size = float(params.get("size", 1.0))
        self.stop_loss = _pct_stop(params.get("stop_loss_pct", 0.0))
        self.take_profit = _pct_stop(params.get("take_profit_pct", 0.0))
        self.target = math.nan  # nothing stepped yet
        self.bars = 0

    def step(self, row: Mapping[str, float]) -> float:
        """Take the next bar (column → value); returns its target (fraction of equity,
        decided at the bar's close)."""
        long_entry, long_exit, short_entry, short_exit, ready = self._events(row)
        pos = self._position(long_entry and ready and self._long_ok, long_exit,
                             short_entry and ready and self._short_ok, short_exit)
        self.target = pos * self._size + 0.0
        self.bars += 1
        return self.target


def _pct_stop(pct: float) -> StopSpec | None:
    """As ``_common._stop`` without an ATR: a fraction of the entry price, or none."""
    return StopSpec.fraction(pct / 100.0) if pct > 0 else None
