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
4. the strategy's signals on the history window; the last target row passes
   :func:`~quantum_trading.live.sizing.read_targets`; the risk engine observes the equity at
   the reference instant (the next open: stamped with bar t+1's open time); the orders are
   sized and risk-checked (:func:`~quantum_trading.live.sizing.plan_orders`);
5. the bar's orders are written to the store in one committed transaction (state ``new``;
   a target order's tag carries its target and bar, so a restart knows the decision was
   made), *then* sent through the
   :class:`~quantum_trading.execution.order_manager.OrderManager` (market orders, reductions
   first; reduce-only when they only reduce): a crash at any point leaves either no record
   (nothing was sent) or a record that reconcile resolves — an order is never sent twice;
   then the risk decisions and the trader's state (with the risk engine's snapshot: locks,
   day / week start equity, peak, trades today — restored on the next start) are written;
6. the order manager polls; order events, fills, positions, equity (at bar t's close) and
   risk decisions are written.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from quantum_trading.domain import Instrument, Side
from quantum_trading.errors import ConfigError, QuantumError
from quantum_trading.execution.config import PositionMonitorConfig
from quantum_trading.execution.errors import ExchangeError
from quantum_trading.execution.models import (
    ExchangeOrder,
    ExchangePosition,
    LiveOrderType,
    OrderRequest,
)
from quantum_trading.execution.order_manager import OrderManager
from quantum_trading.execution.order_state import ManagedOrder, OrderState
from quantum_trading.execution.position_monitor import PositionMonitor
from quantum_trading.execution.protocol import Exchange
from quantum_trading.live.config import TraderConfig
from quantum_trading.live.feed import BarFeed, BarHistory, FeedEvent
from quantum_trading.live.reconcile import reconcile
from quantum_trading.live.redact import redact_loggers
from quantum_trading.live.sizing import plan_orders, read_targets
from quantum_trading.live.store import TradingStore
from quantum_trading.live.strategy_call import StrategyCall
from quantum_trading.live.trader_exits import (
    ExitBook,
    flatten_exchange,
    flatten_positions,
    kill_trader,
    persist_bar,
    restore_trader,
    store_fills,
)
from quantum_trading.risk.engine import RiskEngine
from quantum_trading.risk.limits import TradingState
from quantum_trading.strategies import Strategy, get_strategy

__all__ = ["Trader", "TraderError", "TraderSummary", "flatten_exchange"]

log = logging.getLogger(__name__)

STATE_KEY = "trader"
HEARTBEAT_KEY = "heartbeat"
KILL_KEY = "kill"
TRADING_STATE_KEY = "trading_state"
_FILLING = (LiveOrderType.MARKET, LiveOrderType.LIMIT)  # orders whose rest counts as held


def _stale_rest(order_type: str, filled: float) -> bool:
    """Whether a target order still working at the next bar is superseded: a limit order,
    or a market order that filled part of its size (the rest of a partial fill)."""
    return order_type == "limit" or (order_type == "market" and filled > 0.0)


def _without_wall(state: dict[str, Any] | None) -> Any:
    """The state without the wall-clock stamp of its risk snapshot (not a change)."""
    if not state or "risk" not in state:
        return state
    return {**state, "risk": {k: v for k, v in state["risk"].items() if k != "saved_wall"}}


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
        self._adopted_types: dict[str, str] = {}
        self._last_equity: tuple[float, float, float] | None = None

    # ------------------------------------------------------------------ start
    async def start(self) -> None:
        """Open the run, read the markets, reconcile, restore the state, set leverage and
        load the warm-up bars. Raises :class:`TraderError` when reconcile is incomplete."""
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
        log.info("trader started: %s on %s %s, %d warm-up bar(s), reconcile %d difference(s)",
                 self.strategy.name, list(self.symbols), cfg.timeframe, cfg.warmup_bars,
                 len(report.differences))

    def _save_state(self) -> None:
        state: dict[str, Any] = {
            "last_bar": self._last_bar,
            "last_target": {s: (None if math.isnan(v) else v) for s, v in self.last_target.items()},
            "exits": self.exits.state()}
        if self.risk is not None and self.risk.started:
            state["risk"] = {"snapshot": self.risk.snapshot(),
                             "saved_wall": pd.Timestamp.now(tz="UTC")}
        if _without_wall(state) != _without_wall(self._saved_state):
            self.store.set_state(STATE_KEY, state)
            self._saved_state = state
            self._saved_risk_key = self._risk_key()

    def _risk_key(self) -> tuple[Any, ...] | None:
        """What of the risk engine's state must be written as soon as it changes (the
        trading state and locks, the day and week and their start equity, today's trades,
        the multiplier): the trader then writes its state (:func:`persist_bar`), not at
        every equity tick. A new peak alone is not written at once: the equity is stored at
        every bar close, and a restart takes the peak as the highest of the snapshot's and
        of the equity stored after it."""
        if self.risk is None or not self.risk.started:
            return None
        snap = self.risk.snapshot()
        acct = snap["acct"]
        return (tuple(snap["ints"]), acct[0], acct[1], acct[3])

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
        except (asyncio.CancelledError, Exception):
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
        orders are out (:meth:`_bar_decision`, ~1 ms): a collection there would cost that
        bar 0.1–0.7 ms (young generation) or 1–4 ms (middle one, every tenth); the objects
        the decision made are collected at the next allocation after it, while the bar is
        persisted. Nothing changes when the collector was already disabled."""
        gc_on = gc.isenabled()
        if gc_on:
            gc.disable()
        try:
            account = await self._bar_decision(event)
        finally:
            if gc_on:
                gc.enable()
        if account is not None:
            await self.om.poll()
            await self._persist(event, *account)

    async def _bar_decision(self, event: FeedEvent
                            ) -> tuple[Any, dict[str, ExchangePosition]] | None:
        """Steps 1–5 of a bar (up to the orders out and their records); returns the account
        read (balance, positions) for the records, None when it could not be read."""
        t_in = event.received or time.perf_counter()
        cpu_in = time.thread_time()
        assert event.bar_time is not None
        for stamp, rows in event.history:
            for s, row in rows.items():
                self.history[s].append(stamp, row)
        for s, row in event.bars.items():
            self.history[s].append(event.bar_time, row)
        self.summary.bars += 1
        try:
            if self._in_flight():  # one more read, at the same time as the account's
                if self.om.unresolved():  # before the list: a query may send one again
                    await self.om.resolve_unknown()
                balance, positions, listed = await asyncio.gather(
                    self.exchange.balance(), self.exchange.positions(),
                    self.exchange.open_orders())
                if await self._supersede(listed):  # cancelled: what filled meanwhile counts
                    balance, positions, listed = await asyncio.gather(
                        self.exchange.balance(), self.exchange.positions(),
                        self.exchange.open_orders())
                self._working_now = self._working(listed)
            else:
                balance = await self.exchange.balance()
                positions = await self.exchange.positions()
                self._working_now = {}
        except ExchangeError as exc:  # the adapter's retries failed: no decision this bar
            self._alert("exchange", f"bar {event.bar_time}: account unreadable, no decision "
                        f"this bar ({type(exc).__name__}: {exc})", level="warning")
            await self.om.poll()
            self.store.drain_order_manager(self.om)
            return None
        closes = {s: float(event.bars[s]["close"]) for s in self.symbols if s in event.bars}
        flat = []
        if self.risk is not None:
            flat = self.risk.update(event.bar_time, balance.equity_usd,
                                    positions=self._sizes(positions), prices=self._prices(
                                        positions, closes))
            if flat:  # the flatten replaces this close's decision (as the simulator)
                await self._flatten(positions, "risk: drawdown limit", flat)
        await self.exits.sync(positions)
        if self.monitor is not None:  # tickers only for a monitor to read
            await self._poll_monitor(self._tickers(closes))
        sent = 0
        if event.reference is not None and not flat and not self._stop.is_set():
            sent = await self._decide(event, balance, positions)
        if sent:
            self.summary.latencies_us.append((self._t_out - t_in) * 1e6)
            self.summary.cpu_us.append((self._cpu_out - cpu_in) * 1e6)
            (s0, s1), (p1, w1) = self._t_strategy, self._t_send
            self.summary.stages_us.append(((s0 - t_in) * 1e6, (s1 - s0) * 1e6, (p1 - s1) * 1e6,
                                           (w1 - p1) * 1e6, (self._t_out - w1) * 1e6))
        return balance, positions

    async def _decide(self, event: FeedEvent, balance: Any,
                      positions: dict[str, ExchangePosition]) -> int:
        assert event.reference is not None and event.bar_time is not None
        ref_time = event.bar_time + self.tf
        ref = event.reference
        sizes = self._sizes(positions)
        entries = {s: p.entry_price for s, p in positions.items()}
        prices = {s: ref[s].price for s in self.symbols}
        cash = float(balance.wallet_usd)
        for s in self.symbols:  # funding settled at the reference instant (as the sim)
            r = ref[s]
            if sizes.get(s, 0.0) != 0.0 and math.isfinite(r.funding_rate) and r.funding_rate:
                cash += -sizes[s] * r.mark * r.funding_rate
        if self.risk is not None:
            equity = cash + sum(sizes[s] * (prices[s] - entries[s]) for s in self.symbols
                                if sizes.get(s, 0.0) != 0.0)
            flat = self.risk.update(ref_time, equity, positions=sizes, prices=prices)
            if flat:
                await self._flatten(positions, "risk: drawdown limit", flat)
                return 0
        if self.halted:
            return 0
        window = {s: self.history[s].window(self.config.window_bars) for s in self.symbols}
        t0 = time.perf_counter()
        try:
            result = self._call_strategy(window)
            raw = result.targets
            self._t_strategy = (t0, time.perf_counter())
        except Exception as exc:
            self._alert("strategy", f"{self.strategy.name} failed at {event.bar_time}: "
                        f"{type(exc).__name__}: {exc}", level="error")
            return 0
        self.summary.strategy_us.append((self._t_strategy[1] - t0) * 1e6)
        targets, caps = read_targets(raw, self.last_target, self.config.account, self.leverage)
        closing = self.exits.closing_symbols()
        for s in [s for s in targets if s in closing]:
            del targets[s]  # the monitor is closing it: decide again next bar
            self.last_target[s] = math.nan
        if not targets:
            return 0
        working = self._working_now
        plans = plan_orders(ref_time, targets, symbols=self.symbols, cash_usd=cash,
                            positions=sizes, entries=entries, prices=prices,
                            instruments=self.instruments, account=self.config.account,
                            costs=self.config.costs, leverage=self.leverage, risk=self.risk,
                            flags=caps, working=working)
        requests: list[tuple[OrderRequest, str, Any]] = []
        unsent: list[tuple[Any, str | None]] = []  # written after the orders are out
        for plan in plans:
            if plan.status != "send":
                if plan.decision is not None:
                    unsent.append((plan.decision, None))
                continue
            held = sizes.get(plan.symbol, 0.0)
            opens = plan.units != 0.0 and (held == 0.0 or (plan.units > 0) != (held > 0))
            if opens:
                self.exits.expect(plan.symbol, result.exits(plan.symbol))
            # reduce-only only where it reduces the position held now (orders in flight may
            # make a reduction of the planned position a flip of the present one)
            reduce = plan.reduce and held != 0.0 and (plan.size > 0) != (held > 0) and \
                abs(plan.size) <= abs(held) * (1 + 1e-12)
            tag = f"target:{plan.symbol}={self.last_target[plan.symbol]!r}@{event.bar_time.value}"
            requests.append((self._request(plan.symbol, plan.size, reduce_only=reduce),
                             tag, plan.decision))
        self._last_bar = event.bar_time
        sent = await self.send(requests)
        self.store.record_risk_decisions(unsent)
        return sent

    def _in_flight(self) -> bool:
        """Whether orders of an earlier decision may still fill (ours not final, a
        replacement waiting, a cancel not confirmed, orders adopted on restart)."""
        return bool(self._superseded or self.om.pending_followups()
                    or any(o.request.order_type in _FILLING for o in self.om.open_orders())
                    or any(self._adopted_type(cid) in ("market", "limit")
                           for cid in self.exits.adopted))

    def _adopted_type(self, client_order_id: str) -> str:
        """Order type of an adopted order (read from the store once)."""
        if client_order_id not in self._adopted_types:
            row = self.store.get_order(client_order_id)
            self._adopted_types[client_order_id] = "" if row is None else row.order_type
        return self._adopted_types[client_order_id]

    async def _supersede(self, listed: list[ExchangeOrder]) -> bool:
        """Target orders of an earlier decision still working when a bar closes — the rest
        of a partly filled order, a limit order not filled, a replacement waiting to be
        sent — are cancelled: this bar decides again for their symbols from the position
        held (their last target is forgotten, so the decision is made even when the target
        did not change). A market order that has not filled anything yet is on its way (a
        replay behind the trader) and stays; its size counts as held (:meth:`_working`), as
        does the rest of a cancel not confirmed yet, looked at again at the next bar.

        ``listed``: the exchange's open orders, read with the account (what filled comes
        from there: no order-manager poll in the decision path; orders whose fate was
        unknown were queried before it was read). Returns whether anything was cancelled.
        Not called while nothing is in flight (the usual case)."""
        on_exchange = {o.client_order_id: o for o in listed}
        cancelled = False
        for o in self.om.pending_followups():
            if o.tag.startswith("target:"):
                await self.om.cancel(o.client_order_id, reason="superseded by the next decision")
                self._superseded[o.client_order_id] = o.symbol
        for o in self.om.open_orders():
            snap = on_exchange.get(o.client_order_id)
            if snap is not None and o.tag.startswith("target:") and \
                    _stale_rest(o.request.order_type.value, snap.filled):
                await self.om.cancel(o.client_order_id, reason="superseded by the next decision")
                self._superseded[o.client_order_id] = o.symbol
                cancelled = True
        for cid, symbol in list(self.exits.adopted.items()):
            snap = on_exchange.get(cid)
            row = self.store.get_order(cid) if snap is not None else None
            if row is not None and (row.tag or "").startswith("target:") and \
                    _stale_rest(row.order_type, snap.filled):
                await self.exits.cancel(symbol, cid)
                self._superseded[cid] = symbol
                cancelled = True
        for cid, symbol in list(self._superseded.items()):
            order = self.om.orders.get(cid)
            if order is None or order.is_terminal:
                del self._superseded[cid]
                if order is None or order.remaining > 1e-12 * max(1.0, order.amount):
                    self.last_target[symbol] = math.nan  # decide again from what is held
        self.store.drain_order_manager(self.om)
        return cancelled

    def _working(self, listed: list[ExchangeOrder]) -> dict[str, float]:
        """Signed size still to fill of our market / limit orders, by symbol: the rest the
        exchange lists for each open one (``listed``), the whole size of ours it does not
        list yet (not sent, or not answered: they may still arrive), nothing for the ones
        it no longer lists (finished)."""
        on_exchange = {o.client_order_id: o for o in listed}
        out: dict[str, float] = {}

        def add(symbol: str, signed: float) -> None:
            out[symbol] = out.get(symbol, 0.0) + signed

        for o in self.om.open_orders():
            if o.request.order_type not in _FILLING:
                continue
            snap = on_exchange.get(o.client_order_id)
            if snap is not None:
                add(o.symbol, int(o.side) * max(snap.amount - snap.filled, 0.0))
            elif o.state in (OrderState.NEW, OrderState.UNKNOWN):
                add(o.symbol, int(o.side) * o.remaining)
        for cid in self.exits.adopted:
            snap = on_exchange.get(cid)
            if snap is not None and snap.order_type in _FILLING:
                add(snap.symbol, int(snap.side) * max(snap.amount - snap.filled, 0.0))
        return out

    def _request(self, symbol: str, size: float, *, reduce_only: bool) -> OrderRequest:
        side = Side.BUY if size > 0 else Side.SELL
        cid = self.om.new_client_order_id()
        if self.config.entry_order == "limit":
            from quantum_trading.execution.order_state import round_to_step

            bid, ask = self._quote(symbol)
            tick = self.instruments[symbol].tick_size
            price = round_to_step(bid, tick, "down") if side is Side.BUY else \
                round_to_step(ask, tick, "up")
            return OrderRequest(symbol, side, LiveOrderType.LIMIT, abs(size), price=price,
                                reduce_only=reduce_only, client_order_id=cid)
        return OrderRequest(symbol, side, LiveOrderType.MARKET, abs(size),
                            reduce_only=reduce_only, client_order_id=cid)

    def _quote(self, symbol: str) -> tuple[float, float]:
        last = self.history[symbol].window(1)["close"].iloc[-1]
        hs = self.config.costs.half_spread_bps / 1e4
        return float(last) * (1 - hs), float(last) * (1 + hs)

    async def send(self, requests: list[tuple[OrderRequest, str, Any]]) -> int:
        """Write every order ahead (state ``new``, one committed transaction for the batch,
        :meth:`TradingStore.write_ahead`; a target order's tag carries the target and its
        bar, so a restart knows the decision was made), then send them in order through the
        order manager; then record the risk decisions (one transaction) and the trader's
        state. Returns how many were sent."""
        if not requests:
            return 0
        now = self.clock()
        t_plan = time.perf_counter()
        self.store.write_ahead([ManagedOrder(request=req, created_at=now, tag=tag,
                                             root_id=req.client_order_id)
                                for req, tag, _ in requests])
        t_written = time.perf_counter()
        orders = [await self.om.submit(req, tag=tag) for req, tag, _ in requests]
        self._t_out = time.perf_counter()
        self._cpu_out = time.thread_time()
        self._t_send = (t_plan, t_written)
        self.store.record_risk_decisions((decision, req.client_order_id)
                                         for req, _, decision in requests
                                         if decision is not None)
        for (req, tag, _), order in zip(requests, orders, strict=True):
            self.summary.orders_sent += 1
            if order.state.value == "rejected":
                self.summary.rejected += 1
                self._alert("order_rejected", f"{tag} {req.client_order_id} rejected: "
                            f"{order.reason}", level="error", symbol=req.symbol,
                            client_order_id=req.client_order_id)
        self._save_state()
        return len(requests)

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

    def _tickers(self, closes: dict[str, float]) -> dict[str, Any]:
        from quantum_trading.execution.models import Ticker

        now = self.clock()
        return {s: Ticker(s, c, c, c, now) for s, c in closes.items()}

    async def _persist(self, event: FeedEvent, balance: Any,
                       positions: dict[str, ExchangePosition]) -> None:
        await persist_bar(self, event, balance, positions)

    # ------------------------------------------------------------------ helpers
    def _sizes(self, positions: dict[str, ExchangePosition]) -> dict[str, float]:
        return {s: (positions[s].size if s in positions else 0.0) for s in self.symbols}

    def _prices(self, positions: dict[str, ExchangePosition], closes: dict[str, float]
                ) -> dict[str, float]:
        return {s: closes.get(s, positions[s].mark_price if s in positions else math.nan)
                for s in self.symbols}

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
