"""The trader's per-bar decision path: steps 1–5 of a bar, up to the orders out.

:func:`bar_decision` is what :meth:`Trader.on_bar <quantum_trading.live.trader.Trader.on_bar>`
runs while the garbage collector is held off (bar t has just closed; its orders are sent at
once and, in a replay, fill at bar t+1's open — the simulator's timing): the bar joins the
history; balance and positions are read (with the exchange's open orders while an order of
an earlier decision may still be working: stale rests are cancelled and decided again, see
:func:`_supersede`); the risk engine observes the equity at the close; exits follow the
positions; then, unless a drawdown flatten or a halt took over, the strategy's targets are
read, sized and risk-checked at the reference instant (the next open) and
:func:`send_orders` writes them ahead (one committed transaction) and sends them through the
order manager. The loop, the lifecycle, ticks, halts, the kill switch and shutdown stay in
:mod:`~quantum_trading.live.trader`; the exits, the restored state and the bar's records in
:mod:`~quantum_trading.live.trader_exits`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from quantum_trading.domain import Side
from quantum_trading.execution.errors import ExchangeError
from quantum_trading.execution.models import LiveOrderType, OrderRequest
from quantum_trading.execution.order_state import ManagedOrder, OrderState
from quantum_trading.live.sizing import plan_orders, read_targets
from quantum_trading.live.target_tag import TARGET_PREFIX, target_tag

if TYPE_CHECKING:
    from quantum_trading.execution.models import ExchangeOrder, ExchangePosition
    from quantum_trading.live.feed import FeedEvent
    from quantum_trading.live.trader import Trader

__all__ = ["bar_decision", "send_orders"]

_FILLING = (LiveOrderType.MARKET, LiveOrderType.LIMIT)  # orders whose rest counts as held


def _stale_rest(order_type: str, filled: float) -> bool:
    """Whether a target order still working at the next bar is superseded: a limit order,
    or a market order that filled part of its size (the rest of a partial fill)."""
    return order_type == "limit" or (order_type == "market" and filled > 0.0)


async def bar_decision(t: Trader, event: FeedEvent
                        ) -> tuple[Any, dict[str, ExchangePosition]] | None:
    """Steps 1–5 of a bar (up to the orders out and their records); returns the account
    read (balance, positions) for the records, None when it could not be read."""
    t_in = event.received or time.perf_counter()
    cpu_in = time.thread_time()
    assert event.bar_time is not None
    for stamp, rows in event.history:
        for s, row in rows.items():
            t.history[s].append(stamp, row)
    for s, row in event.bars.items():
        t.history[s].append(event.bar_time, row)
    t.summary.bars += 1
    try:
        if _in_flight(t):  # one more read, at the same time as the account's
            if t.om.unresolved():  # before the list: a query may send one again
                await t.om.resolve_unknown()
            balance, positions, listed = await asyncio.gather(
                t.exchange.balance(), t.exchange.positions(),
                t.exchange.open_orders())
            if await _supersede(t, listed):  # cancelled: what filled meanwhile counts
                balance, positions, listed = await asyncio.gather(
                    t.exchange.balance(), t.exchange.positions(),
                    t.exchange.open_orders())
            t._working_now = _working(t, listed)
        else:
            balance = await t.exchange.balance()
            positions = await t.exchange.positions()
            t._working_now = {}
    except ExchangeError as exc:  # the adapter's retries failed: no decision this bar
        t._alert("exchange", f"bar {event.bar_time}: account unreadable, no decision "
             f"this bar ({type(exc).__name__}: {exc})", level="warning")
        await t.om.poll()
        t.store.drain_order_manager(t.om)
        return None
    closes = {s: float(event.bars[s]["close"]) for s in t.symbols if s in event.bars}
    flat = []
    if t.risk is not None:
        flat = t.risk.update(event.bar_time, balance.equity_usd,
                             positions=_sizes(t, positions), prices=_prices(
                                 t, positions, closes))
        if flat:  # the flatten replaces this close's decision (as the simulator)
            await t._flatten(positions, "risk: drawdown limit", flat)
    await t.exits.sync(positions)
    if t.monitor is not None:  # tickers only for a monitor to read
        await t._poll_monitor(_tickers(t, closes))
    sent = 0
    if event.reference is not None and not flat and not t._stop.is_set():
        sent = await _decide(t, event, balance, positions)
    if sent:
        t.summary.latencies_us.append((t._t_out - t_in) * 1e6)
        t.summary.cpu_us.append((t._cpu_out - cpu_in) * 1e6)
        (s0, s1), (p1, w1) = t._t_strategy, t._t_send
        t.summary.stages_us.append(((s0 - t_in) * 1e6, (s1 - s0) * 1e6, (p1 - s1) * 1e6,
                                    (w1 - p1) * 1e6, (t._t_out - w1) * 1e6))
    return balance, positions


async def _decide(t: Trader, event: FeedEvent, balance: Any,
                  positions: dict[str, ExchangePosition]) -> int:
    assert event.reference is not None and event.bar_time is not None
    ref_time = event.bar_time + t.tf
    ref = event.reference
    sizes = _sizes(t, positions)
    entries = {s: p.entry_price for s, p in positions.items()}
    prices = {s: ref[s].price for s in t.symbols}
    cash = float(balance.wallet_usd)
    for s in t.symbols:  # funding settled at the reference instant (as the sim)
        r = ref[s]
        if sizes.get(s, 0.0) != 0.0 and math.isfinite(r.funding_rate) and r.funding_rate:
            cash += -sizes[s] * r.mark * r.funding_rate
    if t.risk is not None:
        equity = cash + sum(sizes[s] * (prices[s] - entries[s]) for s in t.symbols
                            if sizes.get(s, 0.0) != 0.0)
        flat = t.risk.update(ref_time, equity, positions=sizes, prices=prices)
        if flat:
            await t._flatten(positions, "risk: drawdown limit", flat)
            return 0
    if t.halted:
        return 0
    t0 = time.perf_counter()
    try:
        result = t._call_strategy.on_history(t.history, t.config.window_bars)
        raw = result.targets
        t._t_strategy = (t0, time.perf_counter())
    except Exception as exc:
        t._alert("strategy", f"{t.strategy.name} failed at {event.bar_time}: "
                 f"{type(exc).__name__}: {exc}", level="error")
        return 0
    t.summary.strategy_us.append((t._t_strategy[1] - t0) * 1e6)
    targets, caps = read_targets(raw, t.last_target, t.config.account, t.leverage)
    closing = t.exits.closing_symbols()
    for s in [s for s in targets if s in closing]:
        del targets[s]  # the monitor is closing it: decide again next bar
        t.last_target[s] = math.nan
    if not targets:
        return 0
    working = t._working_now
    plans = plan_orders(ref_time, targets, symbols=t.symbols, cash_usd=cash,
                        positions=sizes, entries=entries, prices=prices,
                        instruments=t.instruments, account=t.config.account,
                        costs=t.config.costs, leverage=t.leverage, risk=t.risk,
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
            t.exits.expect(plan.symbol, result.exits(plan.symbol))
        # reduce-only only where it reduces the position held now (orders in flight may
        # make a reduction of the planned position a flip of the present one)
        reduce = plan.reduce and held != 0.0 and (plan.size > 0) != (held > 0) and \
            abs(plan.size) <= abs(held) * (1 + 1e-12)
        tag = target_tag(plan.symbol, t.last_target[plan.symbol], event.bar_time.value)
        requests.append((_order_request(t, plan.symbol, plan.size, reduce_only=reduce),
                         tag, plan.decision))
    t._last_bar = event.bar_time
    return await t.send(requests, unsent=unsent)


def _in_flight(t: Trader) -> bool:
    """Whether orders of an earlier decision may still fill (ours not final, a
    replacement waiting, a cancel not confirmed, orders adopted on restart)."""
    return bool(t._superseded or t.om.pending_followups()
                or any(o.request.order_type in _FILLING for o in t.om.open_orders())
                or any(a.order_type in ("market", "limit") for a in t.exits.adopted.values()))


async def _supersede(t: Trader, listed: list[ExchangeOrder]) -> bool:
    """Target orders of an earlier decision still working when a bar closes — the rest
    of a partly filled order, a limit order not filled, a replacement waiting to be
    sent — are cancelled: this bar decides again for their symbols from the position
    held (their last target is forgotten, so the decision is made even when the target
    did not change). A market order that has not filled anything yet is on its way (a
    replay behind the trader) and stays; its size counts as held (:func:`_working`), as
    does the rest of a cancel not confirmed yet, looked at again at the next bar.

    ``listed``: the exchange's open orders, read with the account (what filled comes
    from there: no order-manager poll in the decision path; orders whose fate was
    unknown were queried before it was read). Returns whether anything was cancelled.
    Not called while nothing is in flight (the usual case)."""
    on_exchange = {o.client_order_id: o for o in listed}
    cancelled = False
    for o in t.om.pending_followups():
        if o.tag.startswith(TARGET_PREFIX):
            await t.om.cancel(o.client_order_id, reason="superseded by the next decision")
            t._superseded[o.client_order_id] = o.symbol
    for o in t.om.open_orders():
        snap = on_exchange.get(o.client_order_id)
        if snap is not None and o.tag.startswith(TARGET_PREFIX) and \
                _stale_rest(o.request.order_type.value, snap.filled):
            await t.om.cancel(o.client_order_id, reason="superseded by the next decision")
            t._superseded[o.client_order_id] = o.symbol
            cancelled = True
    for cid, adopted in list(t.exits.adopted.items()):
        snap = on_exchange.get(cid)
        if snap is not None and adopted.tag.startswith(TARGET_PREFIX) and \
                _stale_rest(adopted.order_type, snap.filled):
            await t.exits.cancel(adopted.symbol, cid)
            t._superseded[cid] = adopted.symbol
            cancelled = True
    for cid, symbol in list(t._superseded.items()):
        order = t.om.orders.get(cid)
        if order is None or order.is_terminal:
            del t._superseded[cid]
            if order is None or order.remaining > 1e-12 * max(1.0, order.amount):
                t.last_target[symbol] = math.nan  # decide again from what is held
    t.store.drain_order_manager(t.om)
    return cancelled


def _working(t: Trader, listed: list[ExchangeOrder]) -> dict[str, float]:
    """Signed size still to fill of our market / limit orders, by symbol: the rest the
    exchange lists for each open one (``listed``), the whole size of ours it does not
    list yet (not sent, or not answered: they may still arrive), nothing for the ones
    it no longer lists (finished)."""
    on_exchange = {o.client_order_id: o for o in listed}
    out: dict[str, float] = {}

    def add(symbol: str, signed: float) -> None:
        out[symbol] = out.get(symbol, 0.0) + signed

    for o in t.om.open_orders():
        if o.request.order_type not in _FILLING:
            continue
        snap = on_exchange.get(o.client_order_id)
        if snap is not None:
            add(o.symbol, int(o.side) * max(snap.amount - snap.filled, 0.0))
        elif o.state in (OrderState.NEW, OrderState.UNKNOWN):
            add(o.symbol, int(o.side) * o.remaining)
    for cid in t.exits.adopted:
        snap = on_exchange.get(cid)
        if snap is not None and snap.order_type in _FILLING:
            add(snap.symbol, int(snap.side) * max(snap.amount - snap.filled, 0.0))
    return out


def _order_request(t: Trader, symbol: str, size: float, *, reduce_only: bool) -> OrderRequest:
    side = Side.BUY if size > 0 else Side.SELL
    cid = t.om.new_client_order_id()
    if t.config.entry_order == "limit":
        from quantum_trading.execution.order_state import round_to_step

        bid, ask = _quote(t, symbol)
        tick = t.instruments[symbol].tick_size
        price = round_to_step(bid, tick, "down") if side is Side.BUY else \
            round_to_step(ask, tick, "up")
        return OrderRequest(symbol, side, LiveOrderType.LIMIT, abs(size), price=price,
                            reduce_only=reduce_only, client_order_id=cid)
    return OrderRequest(symbol, side, LiveOrderType.MARKET, abs(size),
                        reduce_only=reduce_only, client_order_id=cid)


def _quote(t: Trader, symbol: str) -> tuple[float, float]:
    last = t.history[symbol].window(1)["close"].iloc[-1]
    hs = t.config.costs.half_spread_bps / 1e4
    return float(last) * (1 - hs), float(last) * (1 + hs)


async def send_orders(t: Trader, requests: list[tuple[OrderRequest, str, Any]], *,
                      unsent: Sequence[tuple[Any, str | None]] = ()) -> int:
    """Write every order ahead (state ``new``, :meth:`TradingStore.write_ahead`: one write
    to the journal beside a SQLite file, else one committed transaction for the batch; a
    target order's tag carries the target and its bar, so a restart knows the decision was
    made), then send them in order through the order manager; then put them into the
    database (:meth:`TradingStore.settle_write_ahead`, also when sending raised), record
    the risk decisions — the sent orders' and ``unsent``
    (decisions that sent nothing), in one transaction — and the trader's state. Returns how
    many were sent."""
    if not requests:
        t.store.record_risk_decisions(unsent)
        return 0
    now = t.clock()
    t_plan = time.perf_counter()
    t.store.write_ahead([ManagedOrder(request=req, created_at=now, tag=tag,
                                      root_id=req.client_order_id)
                         for req, tag, _ in requests])
    t_written = time.perf_counter()
    try:
        orders = [await t.om.submit(req, tag=tag) for req, tag, _ in requests]
        t._t_out = time.perf_counter()
        t._cpu_out = time.thread_time()
    finally:  # the orders written ahead to the journal go into the database
        t.store.settle_write_ahead()
    t._t_send = (t_plan, t_written)
    t.store.record_risk_decisions([*((decision, req.client_order_id)
                                     for req, _, decision in requests
                                     if decision is not None), *unsent])
    for (req, tag, _), order in zip(requests, orders, strict=True):
        t.summary.orders_sent += 1
        if order.state.value == "rejected":
            t.summary.rejected += 1
            t._alert("order_rejected", f"{tag} {req.client_order_id} rejected: "
                     f"{order.reason}", level="error", symbol=req.symbol,
                     client_order_id=req.client_order_id)
    t._save_state()
    return len(requests)


def _tickers(t: Trader, closes: dict[str, float]) -> dict[str, Any]:
    from quantum_trading.execution.models import Ticker

    now = t.clock()
    return {s: Ticker(s, c, c, c, now) for s, c in closes.items()}


def _sizes(t: Trader, positions: dict[str, ExchangePosition]) -> dict[str, float]:
    return {s: (positions[s].size if s in positions else 0.0) for s in t.symbols}


def _prices(t: Trader, positions: dict[str, ExchangePosition], closes: dict[str, float]
            ) -> dict[str, float]:
    return {s: closes.get(s, positions[s].mark_price if s in positions else math.nan)
            for s in t.symbols}
