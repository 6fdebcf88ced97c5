"""Replaying stored bars into a :class:`~quantum_trading.execution.paper.PaperExchange`.

:class:`BarReplay` holds one OHLCV frame per symbol (UTC bar-open index, the paper exchange's
timeframe) and feeds them bar time by bar time: :meth:`BarReplay.step` (or ``await
advance()``) sends every symbol's bar at the next time in the union of the indexes. The replay
clock, :attr:`BarReplay.time`, is the close time of the last bar fed (the open time of the next
one): orders sent now fill from the next step on — a market order at the next bar's open.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError, DataError
from quantum_trading.execution.models import ExchangeFill
from quantum_trading.execution.paper import PaperExchange

__all__ = ["BarReplay"]

_OPTIONAL = ("volume", "funding_rate", "mark_price")


class BarReplay:
    """Feed stored bars to a paper exchange, one bar time per step.

    Parameters
    ----------
    paper:
        The exchange to drive.
    bars:
        dict symbol → DataFrame with ``open high low close`` (+ ``volume``, ``funding_rate``,
        ``mark_price``) on a sorted UTC bar-open index, at ``paper.timeframe``. Symbols must
        be the paper exchange's.
    start, end:
        Replay only bars with ``start ≤ open time < end`` (UTC); default all.

    Examples
    --------
    >>> replay = BarReplay(paper, {"BTC/USDT:USDT": bars})  # doctest: +SKIP
    >>> replay.step(), replay.time  # doctest: +SKIP
    (1, Timestamp('2023-07-04 14:00:00+0000', tz='UTC'))
    """

    def __init__(
        self,
        paper: PaperExchange,
        bars: Mapping[str, pd.DataFrame],
        *,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> None:
        if not bars:
            raise ConfigError("BarReplay: bars must not be empty")
        self.paper = paper
        self._symbols: list[str] = []
        self._ts: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._columns: list[tuple[str, ...]] = []
        for symbol, frame in bars.items():
            if symbol not in paper.symbols:
                raise ConfigError(f"BarReplay: {symbol!r} is not traded by the paper exchange")
            index = frame.index
            if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
                raise DataError("bars need a UTC DatetimeIndex (bar open times)", source=symbol)
            if not index.is_monotonic_increasing or index.has_duplicates:
                raise DataError("bar times must be sorted and unique", source=symbol)
            keep = np.ones(len(index), dtype=bool)
            if start is not None:
                keep &= index >= pd.Timestamp(start)
            if end is not None:
                keep &= index < pd.Timestamp(end)
            cols = ("open", "high", "low", "close", *(c for c in _OPTIONAL if c in frame))
            missing = [c for c in ("open", "high", "low", "close") if c not in frame]
            if missing:
                raise DataError(f"missing columns {missing}", source=symbol)
            self._symbols.append(symbol)
            self._ts.append(index[keep].as_unit("ns").asi8.copy())
            self._values.append(frame.loc[keep, list(cols)].to_numpy(dtype=np.float64))
            self._columns.append(cols)
        self._times = np.unique(np.concatenate(self._ts))
        self._pos = [0] * len(self._symbols)
        self._k = 0
        step = paper.timeframe
        first = (
            pd.Timestamp(int(self._times[0]), tz="UTC")
            if len(self._times)
            else pd.Timestamp(start if start is not None else 0, tz="UTC")
        )
        self._time = first
        self._step = step

    @property
    def time(self) -> pd.Timestamp:
        """The replay clock: close time of the last bar fed (before any: the first open)."""
        return self._time

    @property
    def remaining(self) -> int:
        """Bar times not yet fed."""
        return len(self._times) - self._k

    @property
    def done(self) -> bool:
        """All bars fed."""
        return self._k >= len(self._times)

    def next_time(self) -> pd.Timestamp | None:
        """Open time of the next bar to feed (None when done)."""
        return None if self.done else pd.Timestamp(int(self._times[self._k]), tz="UTC")

    def step(self, n: int = 1) -> list[ExchangeFill]:
        """Feed the next ``n`` bar times (fewer at the end); returns the fills they made."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        fills: list[ExchangeFill] = []
        for _ in range(n):
            if self.done:
                break
            t_ns = int(self._times[self._k])
            stamp = pd.Timestamp(t_ns, tz="UTC")
            for j, symbol in enumerate(self._symbols):
                p = self._pos[j]
                ts = self._ts[j]
                if p < len(ts) and ts[p] == t_ns:
                    row = dict(zip(self._columns[j], self._values[j][p].tolist(), strict=True))
                    fills += self.paper.process_bar(symbol, row, time=stamp)
                    self._pos[j] = p + 1
            self._k += 1
            self._time = stamp + self._step
        return fills

    async def advance(self, n: int = 1) -> list[ExchangeFill]:
        """Async :meth:`step`."""
        return self.step(n)
