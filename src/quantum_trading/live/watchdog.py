"""The trader's watchdog: a stalled feed (no bar for N expected intervals) or a stalled event
loop (no loop heartbeat for ``stall_timeout_s``).

:class:`Watchdog` is the pure logic (times from an injected monotonic clock, seconds):
``bar()`` when a bar arrives, ``beat()`` from a task of the trader's event loop, ``check()``
returns the stalls that began since the last check — each stall fires once and re-arms when
bars (or beats) come back. :class:`WatchdogThread` runs ``check()`` in a daemon thread, so a
loop that is blocked (a strategy stuck in a computation, a blocking call) is still noticed:
the thread logs at once and hands the stall to the loop (``loop.call_soon_threadsafe``), where
the trader records the alert and applies ``on_stall`` as soon as the loop runs again.

>>> t = [0.0]
>>> dog = Watchdog(bar_interval_s=60.0, stall_bars=3.0, stall_timeout_s=30.0, clock=lambda: t[0])
>>> t[0] = 181.0; [s.kind for s in dog.check()]
['feed', 'loop']
>>> dog.check()  # fired once
[]
>>> dog.bar(); dog.beat(); dog.check()
[]
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["MIN_FEED_LIMIT_S", "Stall", "Watchdog", "WatchdogThread"]

MIN_FEED_LIMIT_S = 1.0
"""Shortest feed limit (seconds): a fast replay's bar interval times ``stall_bars`` would
otherwise fire on every scheduling hiccup."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stall:
    """A stall: ``kind`` (``feed`` or ``loop``), how long it has been silent and the limit
    (seconds), and a one-line message."""

    kind: Literal["feed", "loop"]
    silent_s: float
    limit_s: float
    message: str


class Watchdog:
    """Detects a stalled feed or loop (see the module docstring).

    Parameters
    ----------
    bar_interval_s:
        Expected wall seconds between bars (None: unknown, e.g. an unpaced replay; then
        ``stall_timeout_s`` is the feed's limit).
    stall_bars:
        The feed stalls after ``stall_bars × bar_interval_s`` seconds without a bar (at least
        :data:`MIN_FEED_LIMIT_S`).
    stall_timeout_s:
        The loop stalls after this long without :meth:`beat` (and the feed, without an
        interval).
    clock:
        Monotonic seconds (default :func:`time.monotonic`).
    """

    def __init__(self, *, bar_interval_s: float | None, stall_bars: float,
                 stall_timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if bar_interval_s is not None and not bar_interval_s > 0:
            raise ValueError(f"bar_interval_s must be > 0 or None, got {bar_interval_s!r}")
        if not (stall_bars > 1.0 and stall_timeout_s > 0.0):
            raise ValueError("stall_bars must be > 1 and stall_timeout_s > 0")
        self.clock = clock
        self.feed_limit_s = (max(stall_bars * bar_interval_s, MIN_FEED_LIMIT_S)
                             if bar_interval_s is not None else stall_timeout_s)
        self.loop_limit_s = float(stall_timeout_s)
        now = clock()
        self._last_bar = now
        self._last_beat = now
        self._fired: set[str] = set()
        self._lock = threading.Lock()

    def bar(self) -> None:
        """A bar arrived."""
        with self._lock:
            self._last_bar = self.clock()
            self._fired.discard("feed")

    def beat(self) -> None:
        """The loop is running."""
        with self._lock:
            self._last_beat = self.clock()
            self._fired.discard("loop")

    def check(self) -> list[Stall]:
        """Stalls that began since the last check (each reported once per episode)."""
        now = self.clock()
        out = []
        with self._lock:
            for kind, last, limit, what in (
                    ("feed", self._last_bar, self.feed_limit_s, "no bar"),
                    ("loop", self._last_beat, self.loop_limit_s, "no loop heartbeat")):
                silent = now - last
                if silent > limit and kind not in self._fired:
                    self._fired.add(kind)
                    out.append(Stall(kind, silent, limit,  # type: ignore[arg-type]
                                     f"watchdog: {what} for {silent:.1f} s (limit {limit:.1f} s)"))
        return out


class WatchdogThread:
    """Runs :meth:`Watchdog.check` every ``period_s`` seconds in a daemon thread and calls
    ``on_stall`` (from that thread) for each stall; :meth:`stop` ends it."""

    def __init__(self, watchdog: Watchdog, on_stall: Callable[[Stall], None], *,
                 period_s: float = 0.5) -> None:
        self.watchdog = watchdog
        self.on_stall = on_stall
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trader-watchdog", daemon=True)

    def start(self) -> None:
        """Start checking."""
        self._thread.start()

    def stop(self) -> None:
        """Stop checking (waits for the thread)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            for stall in self.watchdog.check():
                log.critical("%s", stall.message)
                try:
                    self.on_stall(stall)
                except Exception:  # the watchdog must survive its callback
                    log.exception("watchdog callback failed")
