"""The trader's exits, state and kill path: the stops of each position, orders adopted after a
restart, the state restored on start (:func:`restore_trader`), the flatten / kill-switch
procedures (:func:`flatten_positions`, :func:`kill_trader`) and :func:`flatten_exchange`
(the kill switch when no trader runs).

:class:`ExitBook` (one per :class:`~quantum_trading.live.trader.Trader`) follows the positions
bar by bar. When a position opens, the exit rules of the decision that opened it
(:class:`~quantum_trading.live.sizing.ExitRules`, read at that decision bar) become prices from
the position's entry price — as the simulator sets them from the entry fill — and are
enforced per ``stop_mode``: reduce-only ``STOP_MARKET`` / ``TAKE_PROFIT_MARKET`` orders resting
on the exchange for the whole position (re-placed when its size changes, cancelled when it
closes), or the position monitor's checks (trailing stops always go to the monitor). Timing:
the stops rest from the bar after the entry fill is seen (the backtest checks them inside the
entry bar already).

Orders that were live before a restart are not known to the new order manager; the book
adopts them from the store (reconciled), refreshes them every bar and cancels them like its
own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from quantum_trading.domain import Side
from quantum_trading.errors import ConfigError
from quantum_trading.execution.errors import ExchangeError, OrderNotFound
from quantum_trading.execution.models import LiveOrderType, OrderRequest, new_client_order_id
from quantum_trading.execution.order_state import ManagedOrder, round_to_step
from quantum_trading.live.sizing import ExitRules, exit_levels
from quantum_trading.live.store import TradingStore
from quantum_trading.live.target_tag import TargetTag, parse_target_tag
from quantum_trading.risk.limits import TradingState

if TYPE_CHECKING:
    from quantum_trading.execution.models import ExchangePosition
    from quantum_trading.execution.protocol import Exchange
    from quantum_trading.live.trader import Trader

__all__ = [
    "AdoptedOrder",
    "ExitBook",
    "flatten_exchange",
    "flatten_positions",
    "kill_trader",
    "persist_bar",
    "restore_trader",
    "store_fills",
]

log = logging.getLogger(__name__)


def _rules_json(rules: ExitRules) -> dict[str, float | None]:
    return {k: (None if math.isnan(v) else v) for k, v in rules.as_dict().items()}


def _rules_from(data: dict[str, Any] | None) -> ExitRules:
    data = data or {}
    return ExitRules(**{k: (math.nan if data.get(k) is None else float(data[k]))
                        for k in ExitRules.__dataclass_fields__})


class AdoptedOrder(NamedTuple):
    """An order live on the exchange at start that the order manager does not know, as the
    store has it (read once, at restore: an order's symbol, type, tag and reduce-only flag
    never change)."""

    symbol: str
    order_type: str
    tag: str
    reduce_only: bool


@dataclass
class _Exit:
    symbol: str
    size: float
    entry: float
    rules: ExitRules
    sl: float | None = None
    tp: float | None = None
    trail: float | None = None
    sl_cid: str | None = None
    tp_cid: str | None = None
    opened_at: pd.Timestamp | None = None


class ExitBook:
    """Stops per position, orders in flight that close a symbol, and adopted orders."""

    def __init__(self, trader: Trader) -> None:
        self.t = trader
        self.pending: dict[str, tuple[ExitRules, pd.Timestamp]] = {}
        self.active: dict[str, _Exit] = {}
        self.adopted: dict[str, AdoptedOrder] = {}
        self._closing: dict[str, str] = {}
        self._trail_warned = False

    # -- state -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-able state (stored with the trader's state)."""
        return {"pending": {s: {"rules": _rules_json(r), "at": at}
                            for s, (r, at) in self.pending.items()},
                "active": {s: {"size": e.size, "entry": e.entry, "rules": _rules_json(e.rules),
                               "sl": e.sl, "tp": e.tp, "trail": e.trail, "sl_cid": e.sl_cid,
                               "tp_cid": e.tp_cid, "opened_at": e.opened_at}
                           for s, e in self.active.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        """From :meth:`state`, and adopt the store's open orders the order manager does not
        know (after reconcile they are live on the exchange)."""
        self.pending = {s: (_rules_from(p.get("rules")), p.get("at") or self.t.clock())
                        for s, p in (state.get("pending") or {}).items()}
        for s, e in (state.get("active") or {}).items():
            self.active[s] = _Exit(s, float(e["size"]), float(e["entry"]), _rules_from(e["rules"]),
                                   e.get("sl"), e.get("tp"), e.get("trail"), e.get("sl_cid"),
                                   e.get("tp_cid"), e.get("opened_at"))
        for row in self.t.store.open_orders():
            if row.symbol in self.t.symbols and row.client_order_id not in self.t.om.orders:
                self.adopted[row.client_order_id] = AdoptedOrder(
                    row.symbol, row.order_type, row.tag or "", bool(row.reduce_only))
        for e in self.active.values():
            self._monitor_exits(e)

    def expect(self, symbol: str, rules: ExitRules) -> None:
        """The rules for the position the order being sent will open on ``symbol``."""
        self.pending[symbol] = (rules, self.t.clock())

    def closing(self, symbol: str, client_order_id: str) -> None:
        """An order closing the whole position of ``symbol`` is in flight."""
        self._closing[symbol] = client_order_id

    def closing_symbols(self) -> set[str]:
        """Symbols whose position an order in flight is closing (flatten, monitor exit)."""
        out = set()
        for s, cid in list(self._closing.items()):
            order = self.t.om.orders.get(cid)
            if order is None or order.is_terminal:
                del self._closing[s]
            else:
                out.add(s)
        if self.t.monitor is not None:
            for s, tracked in self.t.monitor.tracked.items():
                cid = tracked.closing_id
                if cid is not None and cid in self.t.om.orders and \
                        not self.t.om.orders[cid].is_terminal:
                    out.add(s)
        return out

    # -- following the positions -----------------------------------------------------------
    async def sync(self, positions: dict[str, ExchangePosition]) -> None:
        """Place, resize or cancel exits for the positions now held. A new position's age
        (the position monitor's time stop) counts from when the order that opened it was
        sent (trader's clock), else from now."""
        for s in self.t.symbols:
            size = positions[s].size if s in positions else 0.0
            ex = self.active.get(s)
            if size == 0.0:
                if ex is not None:
                    await self._cancel_exits(ex)
                    del self.active[s]
                continue
            if ex is not None and ex.size == size:
                continue
            if ex is None or (ex.size > 0) != (size > 0):
                if ex is not None:
                    await self._cancel_exits(ex)
                rules, opened_at = self.pending.pop(s, (ExitRules(), self.t.clock()))
                entry = positions[s].entry_price
                sl, tp, trail = exit_levels(rules, size, entry)
                ex = _Exit(s, size, entry, rules, sl, tp, trail, opened_at=opened_at)
            else:
                await self._cancel_exits(ex)
                ex.size = size
            self.active[s] = ex
            await self._place(ex)

    async def _place(self, ex: _Exit) -> None:
        tick = self.t.instruments[ex.symbol].tick_size
        long = ex.size > 0
        self._monitor_exits(ex)
        if self.t.config.stop_mode != "exchange":
            return
        reqs = []
        side = Side.SELL if long else Side.BUY
        for kind, level, otype in (("sl", ex.sl, LiveOrderType.STOP_MARKET),
                                   ("tp", ex.tp, LiveOrderType.TAKE_PROFIT_MARKET)):
            if level is None:
                continue
            way = ("down" if long else "up") if kind == "sl" else ("up" if long else "down")
            price = round_to_step(level, tick, way)
            cid = self.t.om.new_client_order_id()
            reqs.append((OrderRequest(ex.symbol, side, otype, abs(ex.size), stop_price=price,
                                      reduce_only=True, client_order_id=cid),
                         f"exit:{kind}:{ex.symbol}", None))
            setattr(ex, f"{kind}_cid", cid)
        await self.t.send(reqs)

    def _monitor_exits(self, ex: _Exit) -> None:
        """The position monitor's levels (stop / take-profit in ``monitor`` mode, trailing
        always) and the position's age base."""
        monitor = self.t.monitor
        if monitor is None:
            if ex.trail is not None and not self._trail_warned:
                self._trail_warned = True
                self.t._alert("exits", "the strategy asks for a trailing stop but the position "
                              "monitor is off; it is not enforced", level="warning")
            return
        by_monitor = self.t.config.stop_mode == "monitor"
        monitor.set_exits(ex.symbol, stop_loss_price=ex.sl if by_monitor else None,
                          take_profit_price=ex.tp if by_monitor else None,
                          trailing_stop_pct=ex.trail, opened_at=ex.opened_at)

    async def _cancel_exits(self, ex: _Exit) -> None:
        for attr in ("sl_cid", "tp_cid"):
            cid = getattr(ex, attr)
            if cid is not None:
                await self.cancel(ex.symbol, cid)
                setattr(ex, attr, None)

    # -- cancelling, adopted orders --------------------------------------------------------
    async def cancel(self, symbol: str, client_order_id: str) -> None:
        """Cancel one of our orders (the order manager's, or an adopted one)."""
        om = self.t.om
        if client_order_id in om.orders:
            await om.cancel(client_order_id, reason="trader")
            return
        try:
            snap = await self.t.exchange.cancel_order(symbol, client_order_id=client_order_id)
        except OrderNotFound:
            self.adopted.pop(client_order_id, None)
            return
        except ExchangeError as exc:
            log.warning("cancel %s failed: %s", client_order_id, self.t.store.redact(str(exc)))
            return
        self.t.store.record_order(snap)
        if snap.is_terminal:
            self.adopted.pop(client_order_id, None)

    async def cancel_all(self, *, include_reduce_only: bool) -> None:
        """Cancel the open orders we made or adopted (reduce-only ones only if asked)."""
        for order in list(self.t.om.open_orders()):
            if include_reduce_only or not order.request.reduce_only:
                await self.t.om.cancel(order.client_order_id, reason="trader stop")
        for cid, adopted in list(self.adopted.items()):
            if include_reduce_only or not adopted.reduce_only:
                await self.cancel(adopted.symbol, cid)
        self.t.store.drain_order_manager(self.t.om)

    async def refresh_adopted(self) -> None:
        """Write the current state of adopted orders; forget the finished ones."""
        for cid, adopted in list(self.adopted.items()):
            try:
                snap = await self.t.exchange.fetch_order(adopted.symbol, client_order_id=cid)
            except OrderNotFound:
                self.adopted.pop(cid, None)
                continue
            except ExchangeError:
                continue
            self.t.store.record_order(snap)
            if snap.is_terminal:
                self.adopted.pop(cid, None)


async def flatten_exchange(exchange: Exchange, store: TradingStore, *, reason: str,
                           timeout_s: float = 30.0, poll_s: float = 0.5,
                           advance: Any = None) -> dict[str, Any]:
    """The kill switch without a running trader: halt (stored), cancel every open order,
    close every position with reduce-only market orders (each written to the store before
    it is sent), wait up to ``timeout_s`` seconds for them to fill, store what happened.

    ``advance``: optional async callable moving a replay exchange's clock (market orders in a
    replay fill at the next bar). Returns ``{"cancelled", "closing", "flat",
    "open_positions"}``.
    """
    store.set_state("trading_state", "halted")
    cancelled = []
    for order in await exchange.open_orders():
        try:
            snap = await exchange.cancel_order(order.symbol, client_order_id=order.client_order_id)
        except ExchangeError as exc:
            log.error("kill: cancel %s failed: %s", order.client_order_id, store.redact(str(exc)))
            continue
        store.record_order(snap)
        cancelled.append(order.client_order_id)
    closing = []
    for symbol, pos in (await exchange.positions()).items():
        if pos.size == 0.0:
            continue
        req = OrderRequest(symbol, Side.SELL if pos.size > 0 else Side.BUY, LiveOrderType.MARKET,
                           abs(pos.size), reduce_only=True, client_order_id=new_client_order_id())
        store.record_order(ManagedOrder(request=req, created_at=store.now(), tag=f"kill:{symbol}",
                                        root_id=req.client_order_id))
        try:
            store.record_order(await exchange.create_order(req))
            closing.append(req.client_order_id)
        except ExchangeError as exc:
            store.record_alert("kill", store.redact(f"close {symbol} failed: {exc}"),
                               level="critical", symbol=symbol)
    deadline = time.monotonic() + timeout_s
    positions = {s: p for s, p in (await exchange.positions()).items() if p.size}
    while positions and time.monotonic() < deadline:
        if advance is not None:
            await advance()
        else:
            await asyncio.sleep(poll_s)
        positions = {s: p for s, p in (await exchange.positions()).items() if p.size}
    for cid in closing:
        row = store.get_order(cid)
        if row is None:
            continue
        try:
            store.record_order(await exchange.fetch_order(row.symbol, client_order_id=cid))
        except ExchangeError as exc:  # the fills below still record what was done
            log.warning("kill: closing order %s not re-read: %s", cid, store.redact(str(exc)))
        store.record_fills(await exchange.fills(row.symbol,
                                                since=store.last_fill_time(row.symbol)))
    for symbol in store.positions(include_flat=True):
        if symbol in positions:
            store.record_position(positions[symbol], source="kill")
        else:
            store.record_flat(symbol, source="kill")
    result = {"reason": reason, "cancelled": cancelled, "closing": closing,
              "flat": not positions, "open_positions": {s: p.size for s, p in positions.items()},
              "done_at": pd.Timestamp.now(tz="UTC"), "by": "cli"}
    store.set_state("kill", result)
    store.record_alert("kill_switch", f"kill switch (no trader running): cancelled "
                       f"{len(cancelled)} order(s), closing {len(closing)} position(s); "
                       f"{'flat' if not positions else 'still open: ' + str(result['open_positions'])}",
                       level="critical")
    return result


# ------------------------------------------------------------------------- the trader's state
def restore_trader(t: Trader, report: Any) -> None:
    """After reconcile, before trading: the last targets (from the stored state and from the
    target orders written after it — a decision whose orders were never sent is made again),
    the exits and adopted orders, the risk engine's state (:func:`_restore_risk`: locks,
    day / week start equity, peak, today's trades) and a stored kill-switch halt."""
    state = t.store.get_state("trader") or {}
    for s, v in (state.get("last_target") or {}).items():
        if s in t.last_target:
            t.last_target[s] = math.nan if v is None else float(v)
    saved = state.get("last_bar")
    t._last_bar = saved
    newest: dict[str, tuple[int, float]] = {}
    never = {d.client_order_id for d in report.of_kind("order_never_sent")}
    targets = [(row, tag) for row in t.store.all_orders()
               if (tag := parse_target_tag(row.tag)) is not None]
    for row, tag in targets:  # decisions sent after the state was saved
        if row.symbol not in t.last_target:
            continue
        key = (tag.bar_ns, math.nan if row.client_order_id in never else tag.target)
        if saved is None or key[0] > saved.value:
            newest[row.symbol] = max(newest.get(row.symbol, key), key, key=lambda k: k[0])
    for s, (bar_ns, value) in newest.items():
        t.last_target[s] = value  # NaN: never sent, decide again at the next bar
        stamp = pd.Timestamp(bar_ns, tz="UTC")
        t._last_bar = stamp if t._last_bar is None else max(t._last_bar, stamp)
    for row, _ in targets:  # a target order that never left: decide again
        if row.client_order_id in never and row.symbol in t.last_target:
            t.last_target[row.symbol] = math.nan
    t.exits.restore(state.get("exits") or {})
    if t.risk is not None:
        _restore_risk(t, state.get("risk") or {}, targets)
    if t.store.get_state("trading_state") == "halted":
        t.halted = True
        if t.risk is not None:
            t.risk.halt(t.clock(), equity_usd=report.balance.equity_usd)
        t._alert("halted", "the kill switch halted trading before this start; no new risk "
                 "until `quantum kill --reset`", level="warning")


def _restore_risk(t: Trader, saved: dict[str, Any], targets: list[tuple[Any, TargetTag]]
                  ) -> None:
    """The risk engine's state as last written (its locks, day and week start equity, peak,
    today's trades), before any new observation. Risk-adding target orders written ahead
    after the snapshot on its UTC day (``targets``: the stored orders with a target tag)
    count as today's trades (a crash came between them and the snapshot); the peak is at
    least the highest equity stored after it. A drawdown halt stays until a person lifts
    it: ``quantum kill --reset`` after the snapshot was written resets the engine (peak, day
    and week start again)."""
    assert t.risk is not None
    snap = saved.get("snapshot")
    if snap is None:  # a state written before snapshots existed: the peak at least
        if saved.get("time") is not None:
            for key in ("peak", "equity"):
                value = saved.get(key)
                if value is not None and math.isfinite(value):
                    t.risk.update(saved["time"], float(value))
        return
    last_ns = snap.get("last_ns")
    tf_ns = t.tf.value
    later = 0
    if last_ns is not None:
        day = int(last_ns) // 86_400_000_000_000
        for row, tag in targets:
            if row.reduce_only or row.origin != "ours":
                continue
            ref_ns = tag.bar_ns + tf_ns
            if ref_ns > int(last_ns) and ref_ns // 86_400_000_000_000 == day:
                later += 1
    try:
        t.risk.restore(snap, trades_after=later)
    except ConfigError as exc:
        t._alert("risk", f"risk state not restored ({exc}); the limits start afresh",
                 level="error")
        return
    if last_ns is not None:  # a peak reached after the snapshot (not written at once)
        high = t.store.max_equity_since(pd.Timestamp(int(last_ns), tz="UTC"))
        if high is not None and not high <= t.risk.peak_equity_usd:
            t.risk.raise_peak(high)
    state = t.risk.trading_state
    reset_at = t.store.state_updated_at("trading_state")
    saved_wall = saved.get("saved_wall")
    if state is TradingState.HALTED and t.store.get_state("trading_state") == "active" and \
            reset_at is not None and saved_wall is not None and reset_at > saved_wall:
        t.risk.reset()
        t._alert("risk", "the risk engine's halt was lifted by `quantum kill --reset`",
                 level="warning")
    elif state is not TradingState.ACTIVE:
        t._alert("risk", f"risk state restored: {state.label} ({t.risk.lock_reason.label}); "
                 f"peak {t.risk.peak_equity_usd:,.2f} USDT, day start "
                 f"{t.risk.day_start_equity_usd:,.2f} USDT, {t.risk.trades_today} trade(s) "
                 "today", level="warning")


async def flatten_positions(t: Trader, positions: dict[str, ExchangePosition], why: str,
                            decisions: Any) -> int:
    """Reduce-only market orders closing every position that no order is closing yet
    (written first, then sent); the risk decisions that asked for it are stored."""
    working = t.exits.closing_symbols()
    reqs = []
    for s, p in positions.items():
        if p.size == 0.0 or s in working:
            continue
        reqs.append((OrderRequest(s, Side.SELL if p.size > 0 else Side.BUY, LiveOrderType.MARKET,
                                  abs(p.size), reduce_only=True,
                                  client_order_id=t.om.new_client_order_id()),
                     f"flatten:{s}", None))
    for d in decisions or []:
        t.store.record_risk_decision(d)
    if reqs:
        t._alert("flatten", f"{why}: closing {len(reqs)} position(s)", level="critical")
        for req, _, _ in reqs:
            t.exits.closing(req.symbol, req.client_order_id)
    return await t.send(reqs)


async def kill_trader(t: Trader, reason: str) -> dict[str, Any]:
    """The kill switch of a running trader: halt (stored), cancel every open order (ours,
    adopted, any other on the exchange), close every position with reduce-only market
    orders, wait up to ``kill_timeout_s`` for them to fill (moving a replay feed), store the
    result under ``kv["kill"]`` with a critical alert."""
    t.halt(f"kill switch: {reason}")
    await t.exits.cancel_all(include_reduce_only=True)
    for order in await t.exchange.open_orders():
        try:
            t.store.record_order(await t.exchange.cancel_order(
                order.symbol, client_order_id=order.client_order_id))
        except ExchangeError as exc:
            t._alert("kill", f"cancel {order.client_order_id} failed: {exc}", level="error")
    positions = await t.exchange.positions()
    await flatten_positions(t, positions, f"kill switch ({reason})", None)
    deadline = time.monotonic() + t.config.kill_timeout_s
    while positions and time.monotonic() < deadline:
        await t.om.poll()
        t.store.drain_order_manager(t.om)
        positions = {s: p for s, p in (await t.exchange.positions()).items() if p.size}
        if not positions:
            break
        if await t.feed.next_event() is None:  # a replay must move for market orders to fill
            break
    flag = t.store.get_state("kill") or {}
    result = {"reason": reason, "requested_at": flag.get("requested_at"),
              "done_at": pd.Timestamp.now(tz="UTC"), "flat": not positions,
              "open_positions": {s: p.size for s, p in positions.items()}}
    t.store.set_state("kill", result)
    left = "flat" if not positions else f"still open: {result['open_positions']}"
    t._alert("kill_switch", f"kill switch done ({reason}): {left}", level="critical")
    return result


# ------------------------------------------------------------------------- persistence
async def persist_bar(t: Trader, event: Any, balance: Any,
                      positions: dict[str, ExchangePosition]) -> None:
    """After a bar: the order manager's events; when a position changed or a fill was seen,
    the new fills and positions (as of the bar's close); the equity when it moved."""
    store, at = t.store, event.bar_time + t.tf
    start = t._drained_events
    store.drain_order_manager(t.om)
    t._drained_events = len(t.om.events)
    filled = any(e.kind == "fill" for e in t.om.events[start:])
    await t.exits.refresh_adopted()
    changed = [s for s in t.symbols
               if t._last_positions.get(s) != (positions[s].size if s in positions else 0.0)]
    if changed or filled or t._fills_behind:
        try:
            await store_fills(t)
            t._fills_behind = False
        except ExchangeError as exc:  # stored at the next bar (from the newest one stored)
            t._fills_behind = True
            log.warning("fills not read: %s", t.store.redact(str(exc)))
    for s in changed:
        if s in positions:
            store.record_position(positions[s], time=at)
        else:
            store.record_flat(s, time=at)
        t._last_positions[s] = positions[s].size if s in positions else 0.0
    money = (balance.equity_usd, balance.wallet_usd, balance.free_usd)
    if money != t._last_equity:  # unchanged while flat: not written again
        store.record_equity(balance, time=at)
        t._last_equity = money
    if t._risk_key() != t._saved_risk_key:  # a lock, a new day, a trade: durable now
        t._save_state()


async def store_fills(t: Trader) -> None:
    """Store the exchange's fills not stored yet (from the newest one stored)."""
    for s in t.symbols:
        if s not in t._fill_since:
            t._fill_since[s] = t.store.last_fill_time(s)
        fills = [f for f in await t.exchange.fills(s, since=t._fill_since[s])
                 if f.id not in t._fill_seen[s]]
        if fills:
            t.store.record_fills(fills)
            t._fill_seen[s] = {f.id for f in fills if f.time == fills[-1].time}
            t._fill_since[s] = fills[-1].time
