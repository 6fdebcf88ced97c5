"""The asyncio trader: feed → strategy → risk engine → order manager → exchange, persisted.

:class:`Trader` runs one strategy on one account. On :meth:`Trader.run` it opens a run in the
store (migrated by :meth:`TradingStore.open`), **reconciles the database with the exchange
before anything is sent** (:func:`~quantum_trading.live.reconcile.reconcile`; it does not trade
unless every order could be checked), restores its state (last targets, exit rules, resting
stop orders, a halt), loads the warm-up bars and then handles the feed's events until the
feed ends, ``max_bars`` bars were handled, a signal (SIGINT / SIGTERM) or the kill switch.

Each bar, in this order (bar t has just closed; its orders are sent at once and, in a
replay, fill at bar t+1's open — the simulator's timing):

1. the bar is appended to the history and the watchdog is told;
2. balance and positions are read — and, while an order of an earlier decision may still
   be working, the exchange's open orders, in the same breath (one more read, made
   concurrently): the rest of a partly filled order or an unfilled limit order is cancelled
   and decided again, an unfilled market order counts as held; the risk engine observes
   the equity at the close (stamped with bar t's open time, as the simulator); a drawdown
   halt flattens at once;
3. exits follow the positions: a position that opened gets the stop-loss / take-profit of the
   decision that opened it (resting reduce-only stop orders, or the position monitor), a
   closed one loses them; the position monitor polls;
4. the strategy's signals on the history (a library rule that can be stepped takes only the
   new bar, :meth:`~quantum_trading.live.strategy_call.StrategyCall.on_history`; any other
   is recomputed on the window); the last target row passes
   :func:`~quantum_trading.live.sizing.read_targets`; the risk engine observes the equity at
   the reference instant (the next open: stamped with bar t+1's open time); the orders are
   sized and risk-checked (:func:`~quantum_trading.live.sizing.plan_orders`);
5. the bar's orders are written ahead (state ``new``: one write to the journal beside a
   SQLite file, else one committed transaction, :meth:`TradingStore.write_ahead`;
   a target order's tag carries its target and bar, so a restart knows the decision was
   made), *then* sent through the
   :class:`~quantum_trading.execution.order_manager.OrderManager` (market orders, reductions
   first; reduce-only when they only reduce): a crash at any point leaves either no record
   (nothing was sent) or a record that reconcile resolves — an order is never sent twice;
   then the risk decisions and the trader's state (with the risk engine's snapshot: locks,
   day / week start equity, peak, trades today — restored on the next start) are written;
6. the order manager polls; order events, fills, positions, equity (at bar t's close) and
   risk decisions are written.

Steps 1–5 (the decision path) live in :mod:`~quantum_trading.live.trader_bar`; the exits, the
restored state, the bar's records (step 6) and the flatten / kill procedures in
:mod:`~quantum_trading.live.trader_exits`. This module owns the :class:`Trader` itself: its
construction, start, the event loop and its periodic tasks, ticks, stalls, halts, the kill
switch and shutdown.

Ticks between bars run the order manager's and position monitor's polls. Concurrent tasks
write a heartbeat (``kv["heartbeat"]``), read the kill flag (``kv["kill"]``, written by
``quantum kill``) and beat the loop watchdog; a watchdog thread detects a stalled feed or loop
(:mod:`~quantum_trading.live.watchdog`) and applies ``on_stall``.

The kill switch (:meth:`Trader.kill`, the kill flag, or :func:`flatten_exchange` when no
trader runs) halts trading, cancels every open order, closes every position with reduce-only
market orders and stops; the halt is stored and survives restarts until ``quantum kill
--reset``. A graceful shutdown stops deciding, cancels open orders that are not reduce-only
(``cancel_on_shutdown``), writes the final state and closes the exchange.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from quantum_trading.domain import Instrument
from quantum_trading.errors import ConfigError, QuantumError
from quantum_trading.execution.config import PositionMonitorConfig
from quantum_trading.execution.errors import ExchangeError
from quantum_trading.execution.models import ExchangePosition, OrderRequest
from quantum_trading.execution.order_manager import OrderManager
from quantum_trading.execution.position_monitor import PositionMonitor
from quantum_trading.execution.protocol import Exchange
from quantum_trading.live.config import TraderConfig
from quantum_trading.live.feed import BarFeed, BarHistory, FeedEvent
from quantum_trading.live.reconcile import reconcile
from quantum_trading.live.redact import redact_loggers
from quantum_trading.live.store import TradingStore
from quantum_trading.live.strategy_call import StrategyCall
from quantum_trading.live.trader_bar import bar_decision, send_orders
from quantum_trading.live.trader_exits import (
    ExitBook,
    flatten_exchange,
    flatten_positions,
    kill_trader,
    persist_bar,
    restore_trader,
    store_fills,
)
from quantum_trading.live.warmup import warm_up_decision_path
from quantum_trading.risk.engine import RiskEngine
from quantum_trading.risk.limits import TradingState
from quantum_trading.sim.risk_nb import RA_DAY_START, RA_MULT, RA_WEEK_START
from quantum_trading.strategies import Strategy, get_strategy

__all__ = ["Trader", "TraderError", "TraderSummary", "flatten_exchange"]

log = logging.getLogger(__name__)

STATE_KEY = "trader"
HEARTBEAT_KEY = "heartbeat"
KILL_KEY = "kill"
TRADING_STATE_KEY = "trading_state"


def _without_wall(state: dict[str, Any] | None) -> Any:
    """The state without the wall-clock stamp of its risk snapshot (not a change)."""
    if not state or "risk" not in state:
        return state
    return {**state, "risk": {k: v for k, v in state["risk"].items() if k != "saved_wall"}}


def _risk_key_of(snapshot: dict[str, Any]) -> tuple[Any, ...]:
    """The part of a risk snapshot (:meth:`RiskEngine.snapshot`) whose change is written at
    once (see :meth:`Trader._risk_key`): every integer field, the day and week start equity and
    the multiplier."""
    acct = snapshot["acct"]
    return (tuple(snapshot["ints"]), acct[RA_DAY_START], acct[RA_WEEK_START], acct[RA_MULT])


class TraderError(QuantumError):
    """The trader cannot (or may not) trade: reconcile incomplete, unknown symbol …"""


@dataclass
class TraderSummary:
    """What a run did. Latencies in microseconds (wall clock, bar received → last order of
    the bar handed to the exchange), only for bars that sent orders; ``cpu_us`` the CPU time
    of this thread over the same span from the bar handler's start (what the code costs,
    without the time the OS gave other processes); ``stages_us`` splits each latency into
    (account read + risk observation + exits, strategy, target → sized and risk-checked
    orders, write-ahead record, submit to the exchange)."""

    bars: int = 0
    ticks: int = 0
    orders_sent: int = 0
    rejected: int = 0
    status: str = "running"
    latencies_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    strategy_us: list[float] = field(default_factory=list)
    stages_us: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)


class Trader:
    """Trade one strategy on one account (see the module docstring for the loop).

    Parameters
    ----------
    config:
        :class:`~quantum_trading.live.config.TraderConfig`.
    exchange:
        Any :class:`~quantum_trading.execution.protocol.Exchange` (closed at shutdown).
    feed:
        A :class:`~quantum_trading.live.feed.BarFeed` of the same symbols and timeframe.
    store:
        The :class:`~quantum_trading.live.store.TradingStore` (already migrated).
    strategy:
        The strategy object (default: ``get_strategy(config.strategy)``).
    clock:
        The trader's clock (UTC) for the order manager, the monitor and records; default the
        feed's (replay time in a replay, the wall clock live).
    mode:
        Label of the run in the store (``paper`` / ``live``).

    >>> trader = Trader(config, exchange=paper, feed=feed, store=store)  # doctest: +SKIP
    >>> summary = asyncio.run(trader.run())  # doctest: +SKIP
    """

    def __init__(self, config: TraderConfig, *, exchange: Exchange, feed: BarFeed,
                 store: TradingStore, strategy: Strategy | None = None,
                 clock: Callable[[], pd.Timestamp] | None = None, mode: str = "paper") -> None:
        if not isinstance(config, TraderConfig):
            raise ConfigError("Trader: config must be a TraderConfig")
        if not isinstance(exchange, Exchange):
            raise ConfigError("Trader: exchange does not implement the Exchange protocol")
        if tuple(feed.symbols) != tuple(config.symbols) and set(feed.symbols) != set(config.symbols):
            raise ConfigError(f"Trader: the feed's symbols {list(feed.symbols)} are not the "
                              f"config's {list(config.symbols)}")
        self.config = config
        self.mode = mode[:16]
        self.exchange = exchange
        self.feed = feed
        self.store = store
        self.strategy = strategy if strategy is not None else get_strategy(config.strategy)
        try:
            self.params = self.strategy.params.validate(dict(config.params))
        except ConfigError as exc:
            raise ConfigError(f"Trader: strategy {self.strategy.name!r}: {exc}") from None
        self.symbols = tuple(config.symbols)
        self._call_strategy = StrategyCall(self.strategy, self.params, self.symbols)
        self.tf = config.timedelta
        self.clock = clock or feed.now
        self.leverage = {s: config.leverage(s) for s in self.symbols}
        self.om = OrderManager(exchange, clock=self.clock, config=config.order_manager,
                               redact=store.redact)
        redact_loggers(store.redact)
        mon_cfg = config.position_monitor
        if mon_cfg is None and config.stop_mode == "monitor":
            mon_cfg = PositionMonitorConfig(max_position_age_s=None, max_loss_pct=None)
        self.monitor = PositionMonitor(self.om, config=mon_cfg) if mon_cfg is not None else None
        self.risk: RiskEngine | None = None
        self.instruments: dict[str, Instrument] = {}
        self.history = {s: BarHistory(s, max_bars=config.max_history_bars) for s in self.symbols}
        self.last_target: dict[str, float] = dict.fromkeys(self.symbols, math.nan)
        self.exits = ExitBook(self)
        self.summary = TraderSummary()
        self.halted = False
        self.reconcile_report: Any = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._kill_reason: str | None = None
        self._stall_queue: list[Any] = []
        self._last_positions: dict[str, float] = {}
        self._drained_events = 0
        self._last_bar: pd.Timestamp | None = None
        self._saved_state: dict[str, Any] | None = None
        self._saved_risk_key: tuple[Any, ...] | None = None
        self._t_out = 0.0
        self._cpu_out = 0.0
        self._t_strategy = (0.0, 0.0)
        self._t_send = (0.0, 0.0)
        self._fill_seen: dict[str, set[str]] = {s: set() for s in self.symbols}
        self._fill_since: dict[str, pd.Timestamp | None] = {}
        self._fills_behind = False  # a fills read failed: read them at the next bar
        self._superseded: dict[str, str] = {}  # client order id → symbol, cancel not final
        self._working_now: dict[str, float] = {}  # rests in flight at this bar's decision
        self._last_equity: tuple[float, float, float] | None = None

    # ------------------------------------------------------------------ start
    async def start(self) -> None:
        """Open the run, read the markets, reconcile, restore the state, set leverage and
        load the warm-up bars, load the decision path's compiled kernels
        (:mod:`~quantum_trading.live.warmup`). Raises :class:`TraderError` when reconcile is
        incomplete."""
        cfg = self.config
        self.store.start_run(mode=self.mode, note=f"{self.strategy.name} {list(self.symbols)}")
        markets = await self.exchange.markets()
        missing = [s for s in self.symbols if s not in markets]
        if missing:
            raise TraderError(f"the exchange does not list {missing}")
        self.instruments = {s: markets[s] for s in self.symbols}
        if cfg.risk is not None:
            self.risk = RiskEngine(cfg.risk, symbols=self.symbols, leverage=self.leverage,
                                   lot_size={s: i.lot_size for s, i in self.instruments.items()})
        report = await reconcile(self.store, self.exchange, unknown_orders=cfg.unknown_orders)
        self.reconcile_report = report
        if not report.ok:
            self.store.end_run("failed")
            raise TraderError("reconcile could not check everything ("
                              + "; ".join(report.unresolved[:3]) + "); not trading")
        restore_trader(self, report)
        if cfg.set_leverage:
            for s in self.symbols:
                try:
                    await self.exchange.set_leverage(s, self.leverage[s])
                except ExchangeError as exc:
                    self._alert("leverage", f"set_leverage({s}, {self.leverage[s]:g}) failed: "
                                f"{exc}", level="error", symbol=s)
        for s, frame in (await self.feed.start(cfg.warmup_bars)).items():
            self.history[s].extend(frame)
        loaded_s = warm_up_decision_path(self)  # the first bar must not load kernels
        log.info("trader started: %s on %s %s, %d warm-up bar(s), reconcile %d difference(s), "
                 "decision path loaded in %.0f ms", self.strategy.name, list(self.symbols),
                 cfg.timeframe, cfg.warmup_bars, len(report.differences), 1e3 * loaded_s)

    def _save_state(self) -> None:
        state: dict[str, Any] = {
            "last_bar": self._last_bar,
            "last_target": {s: (None if math.isnan(v) else v) for s, v in self.last_target.items()},
            "exits": self.exits.state()}
        snap = None
        if self.risk is not None and self.risk.started:
            snap = self.risk.snapshot()
            state["risk"] = {"snapshot": snap, "saved_wall": pd.Timestamp.now(tz="UTC")}
        if _without_wall(state) != _without_wall(self._saved_state):
            self.store.set_state(STATE_KEY, state)
            self._saved_state = state
            self._saved_risk_key = None if snap is None else _risk_key_of(snap)

    def _risk_key(self) -> tuple[Any, ...] | None:
        """What of the risk engine's state must be written as soon as it changes (the
        trading state and locks, the day and week and their start equity, today's trades,
        the multiplier): the trader then writes its state (:func:`persist_bar`), not at
        every equity tick. A new peak alone is not written at once: the equity is stored at
        every bar close, and a restart takes the peak as the highest of the snapshot's and
        of the equity stored after it."""
        if self.risk is None or not self.risk.started:
            return None
        return _risk_key_of(self.risk.snapshot())

    # ------------------------------------------------------------------ the loop
    async def run(self, *, max_bars: int | None = None,
                  install_signal_handlers: bool = False) -> TraderSummary:
        """Start, trade until the feed ends / ``max_bars`` / a signal / the kill switch, shut
        down. ``max_bars=0``: start (reconcile) and shut down."""
        from quantum_trading.live.watchdog import Watchdog, WatchdogThread

        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop, f"signal {sig.name}")
        status = "stopped"
        tasks: list[asyncio.Task[None]] = []
        dog = Watchdog(bar_interval_s=self.feed.expected_interval_s,
                       stall_bars=self.config.stall_bars,
                       stall_timeout_s=self.config.stall_timeout_s)
        thread = WatchdogThread(dog, lambda st: loop.call_soon_threadsafe(self._on_stall, st))
        self._dog = dog
        try:
            await self.start()
            self._heartbeat()
            tasks = [asyncio.create_task(self._every(self.config.heartbeat_s, self._heartbeat)),
                     asyncio.create_task(self._every(self.config.kill_poll_s, self._read_kill)),
                     asyncio.create_task(self._every(min(1.0, self.config.stall_timeout_s / 4),
                                                     dog.beat))]
            dog.bar()
            dog.beat()
            thread.start()
            self._read_kill()
            while max_bars is None or self.summary.bars < max_bars:
                await self._handle_stalls()
                if self._kill_reason is not None:
                    await self.kill(self._kill_reason)
                    status = "killed"
                    break
                if self._stop.is_set():
                    break
                event = await self._next_event()
                if event is None:
                    if self._wake.is_set() or self._stop.is_set():
                        self._wake.clear()
                        continue
                    break
                if event.kind == "bar":
                    dog.bar()
                    await self.on_bar(event)
                else:
                    await self.on_tick(event)
        except BaseException:
            status = "failed"
            raise
        finally:
            thread.stop()
            for task in tasks:
                task.cancel()
            if install_signal_handlers:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            self.summary.status = status
            await self.shutdown(status=status)
        return self.summary

    async def _next_event(self) -> FeedEvent | None:
        """The feed's next event, or None as soon as the loop is woken (stop, kill, stall)."""
        nxt = asyncio.ensure_future(self.feed.next_event())
        stop = asyncio.ensure_future(self._wake.wait())
        done, _ = await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
        if nxt in done:
            stop.cancel()
            return nxt.result()
        nxt.cancel()
        try:
            await nxt
        except (asyncio.CancelledError, Exception):  # the loop was woken: the event is dropped
            pass
        return None

    async def _every(self, period_s: float, fn: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                fn()
            except Exception:
                log.exception("periodic task %s failed", getattr(fn, "__name__", fn))

    def stop(self, reason: str = "requested") -> None:
        """Ask the loop to stop after the current event (graceful shutdown)."""
        log.warning("trader: stopping (%s)", reason)
        self._stop.set()
        self._wake.set()

    # ------------------------------------------------------------------ one bar
    async def on_bar(self, event: FeedEvent) -> None:
        """Handle a closed bar (see the module docstring for the order of events).

        Python's cyclic garbage collector is held off from the bar's arrival until its
        orders are out (:func:`~quantum_trading.live.trader_bar.bar_decision`, ~1 ms): a
        collection there would cost that bar 0.1–0.7 ms (young generation) or 1–4 ms (middle
        one, every tenth); the objects the decision made are collected at the next allocation
        after it, while the bar is persisted. Nothing changes when the collector was already
        disabled."""
        gc_on = gc.isenabled()
        if gc_on:
            gc.disable()
        try:
            account = await bar_decision(self, event)
        finally:
            if gc_on:
                gc.enable()
        if account is not None:
            await self.om.poll()
            await self._persist(event, *account)
        self.store.checkpoint_wal()

    async def send(self, requests: list[tuple[OrderRequest, str, Any]], *,
                   unsent: Sequence[tuple[Any, str | None]] = ()) -> int:
        """Write every order ahead, send them through the order manager, record the risk
        decisions (with ``unsent``: decisions that sent nothing) and the trader's state;
        returns how many were sent (:func:`~quantum_trading.live.trader_bar.send_orders`)."""
        return await send_orders(self, requests, unsent=unsent)

    # ------------------------------------------------------------------ ticks, persistence
    async def on_tick(self, event: FeedEvent) -> None:
        """Between bars: the order manager's and the position monitor's polls."""
        self.summary.ticks += 1
        await self.om.poll()
        await self._poll_monitor({})
        self.store.drain_order_manager(self.om)

    async def _poll_monitor(self, tickers: dict[str, Any]) -> None:
        if self.monitor is None:
            return
        actions = await self.monitor.poll(tickers)
        for action in actions:
            self.store.record_exit(action)

    async def _persist(self, event: FeedEvent, balance: Any,
                       positions: dict[str, ExchangePosition]) -> None:
        await persist_bar(self, event, balance, positions)

    # ------------------------------------------------------------------ helpers
    def _alert(self, kind: str, message: str, *, level: str = "warning",
               symbol: str | None = None, client_order_id: str | None = None) -> None:
        text = self.store.redact(message)
        log.log(logging.CRITICAL if level == "critical" else logging.ERROR if level == "error"
                else logging.WARNING, "%s", text)
        self.summary.alerts.append(f"{kind}: {text}")
        self.store.record_alert(kind, text, level=level, symbol=symbol,
                                client_order_id=client_order_id)

    def _heartbeat(self) -> None:
        self.store.set_state(HEARTBEAT_KEY, {
            "wall_time": pd.Timestamp.now(tz="UTC"), "pid": os.getpid(),
            "run_id": self.store.run_id, "clock": self.clock(), "bars": self.summary.bars,
            "trading_state": "halted" if self.halted else "active"})

    def _read_kill(self) -> None:
        flag = self.store.get_state(KILL_KEY)
        if flag and not flag.get("done_at") and self._kill_reason is None:
            self._kill_reason = str(flag.get("reason") or "kill flag")
            self._wake.set()

    # ------------------------------------------------------------------ stalls, halts, kill
    def _on_stall(self, stall: Any) -> None:
        self._stall_queue.append(stall)
        self._wake.set()  # the loop applies on_stall at once and goes on

    async def _handle_stalls(self) -> None:
        while self._stall_queue:
            stall = self._stall_queue.pop(0)
            self._alert(f"watchdog:{stall.kind}_stall", stall.message, level="critical")
            if self.config.on_stall in ("halt", "flatten") and not self.halted:
                self.halt(f"watchdog: {stall.kind} stalled")
            if self.config.on_stall == "flatten":
                await self._flatten(await self.exchange.positions(), "watchdog stall", None)

    def halt(self, reason: str) -> None:
        """Stop adding risk (stored: survives restarts until reset); positions are kept."""
        self.halted = True
        if self.risk is not None and self.risk.trading_state != TradingState.HALTED:
            self.risk.halt(self.clock(), equity_usd=0.0)
        self.store.set_state(TRADING_STATE_KEY, "halted")
        self._alert("halt", f"trading halted: {reason}", level="critical")

    async def _flatten(self, positions: dict[str, ExchangePosition], why: str,
                       decisions: Any) -> int:
        """Reduce-only market orders closing every position not already closing."""
        return await flatten_positions(self, positions, why, decisions)

    async def kill(self, reason: str = "kill switch") -> dict[str, Any]:
        """The kill switch: halt, cancel every open order, close every position with
        reduce-only market orders, wait (``kill_timeout_s``) for them to fill, stop."""
        self._stop.set()
        return await kill_trader(self, reason)

    # ------------------------------------------------------------------ shutdown
    async def shutdown(self, *, status: str = "stopped") -> None:
        """Cancel open non-reduce-only orders (``cancel_on_shutdown``), write the final state,
        end the run and close the exchange. Errors here are logged, not raised."""
        try:
            if self.config.cancel_on_shutdown and status != "killed":
                await self.exits.cancel_all(include_reduce_only=False)
            await self.om.poll()
            self.store.drain_order_manager(self.om)
            await self.exits.refresh_adopted()
            await store_fills(self)
            positions = await self.exchange.positions()
            for s in self.symbols:
                if s in positions:
                    self.store.record_position(positions[s])
                else:
                    self.store.record_flat(s)
            self.store.record_equity(await self.exchange.balance())
            self._save_state()
        except Exception as exc:  # the run still ends
            log.error("shutdown: %s: %s", type(exc).__name__, self.store.redact(str(exc)))
        finally:
            self.store.end_run("stopped" if status in ("stopped", "killed") else status)
            try:
                await self.feed.close()
                await self.exchange.close()
            except Exception as exc:
                log.warning("closing the exchange: %s", self.store.redact(str(exc)))
        log.info("trader stopped (%s): %d bar(s), %d order(s) sent", status, self.summary.bars,
                 self.summary.orders_sent)
