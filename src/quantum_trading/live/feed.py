"""Bar feeds of the trader: closed bars (and poll ticks) from a replay or an exchange.

A feed hands the trader :class:`FeedEvent` s one at a time (``await feed.next_event()``):

* ``"bar"`` — bars closed at ``time`` (one row per symbol, all at the same open time
  ``bar_time``; ``history`` holds rows that arrived since the last event, oldest first, when
  the trader fell behind) and the **reference** of each symbol: the price (and funding due)
  at the instant the trader's orders are sent, used to size them;
* ``"tick"`` — nothing new; time for the order manager and the position monitor to poll.

:class:`ReplayFeed` drives a :class:`~quantum_trading.execution.paper_replay.BarReplay`
(paper trading on stored data): each bar is fed to the paper exchange first (orders sent
after the previous bar fill at its open), then handed to the trader. Its clock is replay
time: the close of the last bar fed, plus ``tick_s`` per tick between bars. The reference
price is the **next bar's open** — the market price at the instant a live trader sends the
orders decided at this close (bar t's close and bar t+1's open are the same instant) — and the
funding the paper exchange settles at that open (the bar's ``funding_rate`` / ``mark_price``
columns, else the default schedule), so that orders are sized exactly as the backtest sizes
them. Nothing else of the next bar is used, and the strategy never sees it.

:class:`ExchangeFeed` polls any :class:`~quantum_trading.execution.protocol.Exchange` for
closed bars (wall clock; the reference price is the ticker's last price). With a
``clock_driver`` (the local exchange's ``POST /_local/advance``) it moves the exchange's replay
clock one bar per event itself: lock-step paper trading over HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError, ExchangeError
from quantum_trading.execution.paper import PaperExchange
from quantum_trading.execution.paper_replay import BarReplay
from quantum_trading.execution.protocol import Exchange
from quantum_trading.sim.config import CostsConfig

__all__ = [
    "BarFeed",
    "BarHistory",
    "ExchangeFeed",
    "FeedEvent",
    "LocalClockDriver",
    "Reference",
    "ReplayFeed",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reference:
    """The market at the instant orders are sent: ``price`` (USDT) and the funding settled
    then (``funding_rate`` per settlement, NaN = none; ``mark`` its mark price)."""

    price: float
    funding_rate: float = math.nan
    mark: float = math.nan


@dataclass(frozen=True)
class FeedEvent:
    """One thing the feed has for the trader (see the module docstring).

    ``time`` is the feed clock (UTC); ``bar_time`` the open time of the bars;
    ``bars`` symbol → row dict (``open high low close volume`` …); ``history`` earlier rows
    not handed over yet, as (open time, symbol → row); ``reference`` symbol → reference
    (None: the orders of this close can no longer be filled, e.g. the replay's last bar);
    ``received`` the wall clock (``time.perf_counter()``) when the event was complete.
    """

    kind: Literal["bar", "tick"]
    time: pd.Timestamp
    bar_time: pd.Timestamp | None = None
    bars: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    history: tuple[tuple[pd.Timestamp, Mapping[str, Mapping[str, float]]], ...] = ()
    reference: Mapping[str, Reference] | None = None
    received: float = 0.0


@runtime_checkable
class BarFeed(Protocol):
    """What the trader needs from a feed."""

    timeframe: pd.Timedelta
    symbols: tuple[str, ...]

    @property
    def expected_interval_s(self) -> float | None:
        """Wall seconds between bars (None: unpaced); the watchdog's yardstick."""
        ...

    def now(self) -> pd.Timestamp:
        """The feed clock (UTC): replay time in a replay, the wall clock live."""
        ...

    async def start(self, warmup_bars: int) -> dict[str, pd.DataFrame]:
        """Load ``warmup_bars`` closed bars per symbol (no trading on them)."""
        ...

    async def next_event(self) -> FeedEvent | None:
        """The next bar or tick; None when the feed has ended."""
        ...

    async def close(self) -> None:
        """Release what the feed holds."""
        ...


def _row(values: np.ndarray, columns: Sequence[str]) -> dict[str, float]:
    return dict(zip(columns, values.tolist(), strict=True))


class ReplayFeed:
    """Stored bars through a paper exchange, one bar time per event (see the module).

    Parameters
    ----------
    paper:
        The :class:`~quantum_trading.execution.paper.PaperExchange` to feed; nothing else may
        feed it meanwhile.
    bars:
        symbol → OHLCV frame (UTC bar-open index at ``paper.timeframe``; optional
        ``volume``, ``funding_rate``, ``mark_price``), as for :class:`BarReplay`.
    start, end:
        Replay only bars with ``start ≤ open time < end``.
    speed:
        Bars per second of wall clock (None: as fast as the trader goes).
    tick_s:
        Replay seconds between poll ticks inside a bar (None: no ticks; at most 10,000
        ticks a bar).
    funding, mark:
        The funding / mark Series given to the paper exchange, if any (else the bars'
        ``funding_rate`` / ``mark_price`` columns, else the default schedule of
        ``paper.costs``), for the funding part of the reference.

    >>> feed = ReplayFeed(paper, {"BTC/USDT:USDT": bars}, speed=20)  # doctest: +SKIP
    """

    def __init__(self, paper: PaperExchange, bars: Mapping[str, pd.DataFrame], *,
                 start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                 speed: float | None = None, tick_s: float | None = None,
                 funding: Mapping[str, pd.Series] | None = None,
                 mark: Mapping[str, pd.Series] | None = None) -> None:
        if speed is not None and not (0.0 < speed <= 1e6):
            raise ConfigError(f"ReplayFeed: speed must be in (0, 1e6] bars/s, got {speed!r}")
        self.replay = BarReplay(paper, bars, start=start, end=end)
        self.paper = paper
        self.timeframe = pd.Timedelta(paper.timeframe)
        self.symbols = tuple(bars)
        tf_s = self.timeframe.total_seconds()
        if tick_s is not None and not (0.0 < tick_s and tf_s / tick_s <= 10_000):
            raise ConfigError(f"ReplayFeed: tick_s must be > 0 with at most 10000 ticks a bar, "
                              f"got {tick_s!r}")
        self.speed = speed
        self.tick_s = tick_s
        self._rows: dict[str, tuple[np.ndarray, np.ndarray, tuple[str, ...]]] = {}
        for symbol, frame in bars.items():
            keep = np.ones(len(frame), dtype=bool)
            if start is not None:
                keep &= frame.index >= pd.Timestamp(start)
            if end is not None:
                keep &= frame.index < pd.Timestamp(end)
            cols = tuple(c for c in frame.columns if np.issubdtype(frame[c].dtype, np.number))
            self._rows[symbol] = (frame.index[keep].as_unit("ns").asi8.copy(),
                                  frame.loc[keep, list(cols)].to_numpy(dtype=np.float64), cols)
        self._pos = dict.fromkeys(self._rows, 0)
        self._funding = {s: v.sort_index() for s, v in (funding or {}).items()}
        self._mark = {s: v.sort_index() for s, v in (mark or {}).items()}
        self._costs: CostsConfig = paper.costs
        self._clock = self.replay.time
        self._ticks_left = 0
        self._next_wall: float | None = None
        self.bars_fed = 0

    @property
    def expected_interval_s(self) -> float | None:
        """``1 / speed`` (None when unpaced)."""
        return None if self.speed is None else 1.0 / self.speed

    def now(self) -> pd.Timestamp:
        """Replay time: the last bar's close, plus the ticks since."""
        return self._clock

    async def start(self, warmup_bars: int) -> dict[str, pd.DataFrame]:
        """Feed ``warmup_bars`` bar times to the exchange and return them as history."""
        rows: dict[str, list[tuple[pd.Timestamp, dict[str, float]]]] = {s: [] for s in self.symbols}
        for _ in range(warmup_bars):
            got = self._step()
            if got is None:
                break
            stamp, bars = got
            for s, r in bars.items():
                rows[s].append((stamp, r))
        return {s: pd.DataFrame([r for _, r in v], index=pd.DatetimeIndex([t for t, _ in v]))
                for s, v in rows.items()}

    def _rows_at(self, t_ns: int, *, advance: bool) -> dict[str, dict[str, float]]:
        out = {}
        for symbol, (ts, values, cols) in self._rows.items():
            p = self._pos[symbol]
            if p < len(ts) and ts[p] == t_ns:
                out[symbol] = dict(zip(cols, values[p].tolist(), strict=True))
                if advance:
                    self._pos[symbol] = p + 1
        return out

    def _step(self) -> tuple[pd.Timestamp, dict[str, dict[str, float]]] | None:
        stamp = self.replay.next_time()
        if stamp is None:
            return None
        bars = self._rows_at(int(stamp.value), advance=True)
        self.replay.step(1)
        self._clock = self.replay.time
        self.bars_fed += 1
        return stamp, bars

    def _peek(self) -> tuple[pd.Timestamp, dict[str, dict[str, float]]] | None:
        stamp = self.replay.next_time()
        return None if stamp is None else (stamp, self._rows_at(int(stamp.value), advance=False))

    def _funding_due(self, symbol: str, row: Mapping[str, float], open_ns: int
                     ) -> tuple[float, float]:
        """(rate, mark) settled at the open of the bar ``row`` (as the paper exchange does)."""
        end = open_ns + int(self.timeframe.value)
        rate = math.nan
        if symbol in self._funding:
            s = self._funding[symbol]
            ts = s.index.as_unit("ns").asi8
            lo, hi = np.searchsorted(ts, [open_ns, end], side="left")
            for k in range(lo, hi):
                v = float(s.iloc[k])
                rate = v if math.isnan(rate) else rate + v
        elif "funding_rate" in row:
            rate = float(row["funding_rate"])
        elif self._costs.default_funding_rate != 0.0:
            period = self._costs.funding_interval_h * 3_600_000_000_000
            first = -((-open_ns) // period) * period
            if first < end:
                rate = self._costs.default_funding_rate
        if math.isnan(rate) or rate == 0.0:
            return math.nan, math.nan
        mark = math.nan
        if symbol in self._mark:
            s = self._mark[symbol]
            ts = s.index.as_unit("ns").asi8
            lo, hi = np.searchsorted(ts, [open_ns, end], side="left")
            if hi > lo:
                mark = float(s.iloc[hi - 1])
        elif "mark_price" in row:
            mark = float(row["mark_price"])
        if not (mark > 0.0):
            mark = float(row["open"])
        return rate, mark

    async def next_event(self) -> FeedEvent | None:
        """A tick while ticks of this bar remain, else the next bar (paced by ``speed``)."""
        if self._ticks_left > 0:
            self._ticks_left -= 1
            self._clock = self._clock + pd.Timedelta(seconds=self.tick_s or 0.0)
            await asyncio.sleep(0)
            return FeedEvent("tick", self._clock, received=time.perf_counter())
        if self.speed is not None:
            now = time.perf_counter()
            if self._next_wall is None:
                self._next_wall = now
            self._next_wall += 1.0 / self.speed
            delay = self._next_wall - now
            if delay > 0:
                await asyncio.sleep(delay)  # cancelled here: nothing was fed
        else:
            await asyncio.sleep(0)
        got = self._step()
        if got is None:
            return None
        stamp, bars = got
        nxt = self._peek()
        reference = None
        if nxt is not None and nxt[0] == stamp + self.timeframe and set(nxt[1]) == set(bars):
            open_ns = int(nxt[0].value)
            reference = {}
            for s, row in nxt[1].items():
                rate, mark = self._funding_due(s, row, open_ns)
                reference[s] = Reference(float(row["open"]), rate, mark)
        if self.tick_s is not None:
            self._ticks_left = max(math.ceil(self.timeframe.total_seconds()
                                                 / self.tick_s) - 1, 0)
        return FeedEvent("bar", self._clock, stamp, bars, (), reference, time.perf_counter())

    async def close(self) -> None:
        """Nothing to release."""


# ------------------------------------------------------------------------- exchange feed
class LocalClockDriver:
    """Moves the local exchange's replay clock (``POST {url}/_local/advance?bars=N``).

    >>> driver = LocalClockDriver("http://127.0.0.1:8765")  # doctest: +SKIP
    >>> asyncio.run(driver.advance())  # doctest: +SKIP
    {'time': 1688479200000, 'fills': 0, 'remaining': 1023, 'done': False}
    """

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"LocalClockDriver: base_url must be http(s)://…, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _post(self, bars: int) -> dict:
        req = urllib.request.Request(f"{self.base_url}/_local/advance?bars={int(bars)}",
                                     method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return json.loads(resp.read().decode())

    async def advance(self, bars: int = 1) -> dict:
        """Advance ``bars`` bars; returns the server's clock answer."""
        try:
            return await asyncio.to_thread(self._post, bars)
        except OSError as exc:
            raise ExchangeError(f"local exchange clock: {exc}") from exc


class ExchangeFeed:
    """Closed bars polled from an exchange (see the module docstring).

    Parameters
    ----------
    exchange:
        Any :class:`Exchange`.
    symbols, timeframe:
        What to follow.
    poll_s:
        Seconds between polls; a tick event is emitted after each poll that found nothing.
    clock_driver:
        Async callable moving the exchange's replay clock one bar (lock-step mode), e.g.
        :meth:`LocalClockDriver.advance`; None = the exchange's own clock.
    bar_period_s:
        Wall seconds between bars (pacing in lock-step mode, the watchdog's yardstick);
        None = the timeframe (live) or unpaced (lock-step).
    clock:
        The wall clock (UTC), injectable for tests.
    """

    def __init__(self, exchange: Exchange, symbols: Sequence[str], timeframe: str, *,
                 poll_s: float = 1.0,
                 clock_driver: Callable[[], Awaitable[object]] | None = None,
                 bar_period_s: float | None = None,
                 clock: Callable[[], pd.Timestamp] | None = None) -> None:
        from quantum_trading.data.timeframes import timeframe_to_timedelta

        if not symbols:
            raise ConfigError("ExchangeFeed: symbols must not be empty")
        if not poll_s > 0:
            raise ConfigError(f"ExchangeFeed: poll_s must be > 0, got {poll_s!r}")
        self.exchange = exchange
        self.symbols = tuple(symbols)
        self.timeframe_name = timeframe
        self.timeframe = timeframe_to_timedelta(timeframe)
        self.poll_s = float(poll_s)
        self.clock_driver = clock_driver
        self.bar_period_s = bar_period_s
        self._clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))
        self._last: pd.Timestamp | None = None
        self._next_wall: float | None = None
        self._pending: list[tuple[pd.Timestamp, dict[str, dict[str, float]]]] = []
        self._polled = False  # lock-step: the clock moved, its bars not polled yet
        self._answer: object = None

    @property
    def expected_interval_s(self) -> float | None:
        """Wall seconds between bars."""
        if self.bar_period_s is not None:
            return self.bar_period_s
        return None if self.clock_driver is not None else self.timeframe.total_seconds()

    def now(self) -> pd.Timestamp:
        """The wall clock."""
        return pd.Timestamp(self._clock()).tz_convert("UTC")

    async def _fetch(self, symbol: str, since: pd.Timestamp | None, limit: int | None
                     ) -> pd.DataFrame:
        frame = await self.exchange.ohlcv(symbol, self.timeframe_name, since=since, limit=limit)
        closed = frame.index + self.timeframe <= self.now()
        return frame[closed]

    async def start(self, warmup_bars: int) -> dict[str, pd.DataFrame]:
        """The last ``warmup_bars`` closed bars per symbol (aligned on their common times)."""
        frames = {}
        for s in self.symbols:
            frames[s] = await self._fetch(s, None, max(warmup_bars, 1) + 1)
        common = None
        for f in frames.values():
            common = f.index if common is None else common.intersection(f.index)
        assert common is not None
        if len(common):
            self._last = common[-1]
        keep = common[-warmup_bars:] if warmup_bars > 0 else common[:0]
        return {s: f.loc[keep] for s, f in frames.items()}

    async def _poll(self) -> None:
        since = None if self._last is None else self._last + self.timeframe
        new: dict[str, pd.DataFrame] = {}
        for s in self.symbols:
            new[s] = await self._fetch(s, since, 1000)
        common = None
        for f in new.values():
            common = f.index if common is None else common.intersection(f.index)
        for t in common if common is not None else []:
            if self._last is not None and t <= self._last:
                continue
            rows = {s: {k: float(v) for k, v in new[s].loc[t].items()} for s in self.symbols}
            self._pending.append((t, rows))
            self._last = t

    async def _reference(self) -> dict[str, Reference]:
        out = {}
        for s in self.symbols:
            ticker = await self.exchange.ticker(s)
            out[s] = Reference(float(ticker.last))
        return out

    async def next_event(self) -> FeedEvent | None:
        """The newest closed bar (earlier unseen ones in ``history``), else a tick.

        An exchange error while polling or reading the reference (after the adapter's own
        retries) is logged and answered with a tick: the bars already polled stay pending and
        are handed over at the next call, which (in lock-step mode) does not move the clock
        again until they are."""
        try:
            if self.clock_driver is not None:
                if not self._pending:
                    if self.bar_period_s is not None:
                        now = time.perf_counter()
                        self._next_wall = (self._next_wall or now) + self.bar_period_s
                        if self._next_wall > now:
                            await asyncio.sleep(self._next_wall - now)
                    if not self._polled:
                        self._answer = await self.clock_driver()
                        self._polled = True
                    await self._poll()
                    self._polled = False
                    answer = self._answer
                    if not self._pending and isinstance(answer, dict) and answer.get("done"):
                        return None
            else:
                await self._poll()
                if not self._pending:
                    await asyncio.sleep(self.poll_s)
                    return FeedEvent("tick", self.now(), received=time.perf_counter())
            if not self._pending:
                return FeedEvent("tick", self.now(), received=time.perf_counter())
            reference = await self._reference()
        except ExchangeError as exc:
            log.warning("feed: %s; trying again at the next event", exc)
            if self.clock_driver is None:
                await asyncio.sleep(self.poll_s)
            return FeedEvent("tick", self.now(), received=time.perf_counter())
        *earlier, (stamp, bars) = self._pending
        self._pending = []
        return FeedEvent("bar", self.now(), stamp, bars, tuple(earlier), reference,
                         time.perf_counter())

    async def close(self) -> None:
        """Nothing to release (the trader closes the exchange)."""


class BarHistory:
    """One symbol's closed bars, kept in a growing column-major numpy block (appending is
    O(1)); the strategy's window is a DataFrame over a view of it (one block, C-contiguous
    columns, no copy).

    >>> h = BarHistory("BTC/USDT:USDT", capacity=4)
    >>> for k in range(6):
    ...     h.append(pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=k),
    ...              {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5 + k})
    >>> frame = h.window(3)
    >>> len(h), list(frame["close"]), frame.attrs["symbol"]
    (6, [4.5, 5.5, 6.5], 'BTC/USDT:USDT')
    """

    def __init__(self, symbol: str, *, capacity: int = 1024, max_bars: int = 10_000_000) -> None:
        self.symbol = symbol
        self.max_bars = int(max_bars)
        self._cap = max(int(capacity), 4)
        self._n = 0
        self._times = np.empty(self._cap, dtype=np.int64)
        self._columns: tuple[str, ...] = ()
        self._block = np.empty((0, self._cap))
        self._column_index: pd.Index | None = None
        self._indexed = 0  # columns in _column_index
        self._appended = 0  # bars accepted since creation (dropped ones included)

    def __len__(self) -> int:
        return self._n

    @property
    def last_time(self) -> pd.Timestamp | None:
        """Open time of the newest bar."""
        return None if self._n == 0 else pd.Timestamp(int(self._times[self._n - 1]), tz="UTC")

    def append(self, time: pd.Timestamp, row: Mapping[str, float]) -> None:
        """Add the bar opened at ``time`` (later than the last; earlier ones are ignored)."""
        t_ns = int(pd.Timestamp(time).value)
        if self._n and t_ns <= self._times[self._n - 1]:
            return
        if not self._columns:
            self._columns = tuple(row)
            self._block = np.full((len(self._columns), self._cap), np.nan)
        if self._n == self._cap:
            full = self._n >= self.max_bars
            keep = self.max_bars - 1 if full else self._n
            cap = self._cap if full else self._cap * 2
            lo = self._n - keep
            times = np.empty(cap, dtype=np.int64)
            times[:keep] = self._times[lo:self._n]
            block = np.full((len(self._columns), cap), np.nan)
            block[:, :keep] = self._block[:, lo:self._n]
            self._times, self._block, self._cap, self._n = times, block, cap, keep
        i = self._n
        self._times[i] = t_ns
        for k, name in enumerate(self._columns):
            self._block[k, i] = row.get(name, np.nan)
        self._n = i + 1
        self._appended += 1

    @property
    def appended(self) -> int:
        """Bars accepted since the history was made (those dropped at ``max_bars`` included):
        a reader remembers it to read only the bars added since (:meth:`rows_since`)."""
        return self._appended

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names, in the order of :meth:`rows_since`'s rows."""
        return self._columns

    def rows_since(self, appended: int) -> tuple[np.ndarray, np.ndarray]:
        """The bars accepted after the first ``appended`` ones (those still kept): their open
        times (UTC ns) and their values (columns × bars, a view: read it, do not write)."""
        m = min(max(self._appended - int(appended), 0), self._n)
        lo = self._n - m
        return self._times[lo:self._n], self._block[:, lo:self._n]

    def extend(self, frame: pd.DataFrame) -> None:
        """Append every row of ``frame`` (UTC bar-open index)."""
        for t, row in zip(frame.index, frame.to_dict("records"), strict=True):
            self.append(t, row)

    def window(self, n: int | None = None) -> pd.DataFrame:
        """The last ``n`` bars (all when None) as an OHLCV frame (``attrs["symbol"]`` set).

        The frame is a view of the history (no copy; read it, do not write to it). Built in
        about 25 µs whatever its length: the index and the one float block are handed to
        pandas as they are (:func:`_frame_view`) instead of through ``pd.DataFrame(...)``,
        whose argument checks cost about 0.3 ms a call — a quarter of a decision's budget.
        """
        lo = 0 if n is None else max(self._n - int(n), 0)
        if self._column_index is None or self._indexed != len(self._columns):
            self._column_index = pd.Index(list(self._columns))
            self._indexed = len(self._columns)  # (an Arrow-backed index's len() is slow)
        frame = _frame_view(self._times[lo:self._n], self._block[:, lo:self._n],
                            self._column_index)
        frame.attrs["symbol"] = self.symbol
        return frame


_UTC = pd.DatetimeTZDtype(tz="UTC")


def _frame_view(times_ns: np.ndarray, block: np.ndarray, columns: pd.Index | Sequence[str]
                ) -> pd.DataFrame:
    """A DataFrame over ``block`` (columns × rows, float64) indexed by ``times_ns`` (UTC
    nanoseconds, named ``date``), without copying either.

    Uses pandas' internal constructors (``DatetimeArray._simple_new``, one 2-D block in a
    ``BlockManager``), which skip the public constructors' checks — ours are already
    satisfied: sorted unique int64 times, one float64 block of the right shape. Should a
    pandas release change those internals, the public constructors are used instead (same
    frame, slower); ``tests/live/test_feed_history.py`` checks both give equal frames."""
    cols = columns if isinstance(columns, pd.Index) else pd.Index(list(columns))
    try:
        placement, new_block_2d, block_manager = _pandas_internals()
        values = pd.arrays.DatetimeArray._simple_new(times_ns.view("M8[ns]"), dtype=_UTC)
        index = pd.DatetimeIndex._simple_new(values, name="date")
        blk = new_block_2d(block, placement=placement(slice(0, block.shape[0])))
        mgr = block_manager((blk,), [cols, index])
        return pd.DataFrame._from_mgr(mgr, axes=mgr.axes)
    except (ImportError, AttributeError, TypeError, ValueError, AssertionError):
        return _frame_public(times_ns, block, cols)


@functools.cache
def _pandas_internals() -> tuple[Any, Any, Any]:
    """pandas' ``BlockPlacement``, ``new_block_2d`` and ``BlockManager`` (imported once: an
    import statement in the window's path costs a few µs a bar)."""
    from pandas._libs.internals import BlockPlacement
    from pandas.core.internals.blocks import new_block_2d
    from pandas.core.internals.managers import BlockManager

    return BlockPlacement, new_block_2d, BlockManager


def _frame_public(times_ns: np.ndarray, block: np.ndarray, columns: pd.Index) -> pd.DataFrame:
    """:func:`_frame_view` through pandas' public constructors."""
    index = pd.DatetimeIndex(times_ns.view("datetime64[ns]"), tz="UTC", name="date")
    return pd.DataFrame(block.T, index=index, columns=columns, copy=False)
