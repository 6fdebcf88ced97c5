"""The order manager's re-queries: finding out what became of orders on the exchange.

:class:`~quantum_trading.execution.order_manager.OrderManager` calls these from
:meth:`~quantum_trading.execution.order_manager.OrderManager.poll` (and
:meth:`~quantum_trading.execution.order_manager.OrderManager.resolve_unknown`): UNKNOWN orders
(a create without an answer) are looked up by client order id and sent again under the same id
when the exchange never saw them; live orders are synced with the exchange's open orders.
Every state change goes through the manager's state machine.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from quantum_trading.execution.errors import ExchangeError, OrderNotFound
from quantum_trading.execution.order_state import LIVE_STATES, ManagedOrder, OrderState

if TYPE_CHECKING:
    from quantum_trading.execution.order_manager import OrderManager

__all__ = ["fetch_live", "query_unknown", "sync_open_orders"]

# The order manager's logger (the trader masks secrets on it by name).
log = logging.getLogger("quantum_trading.execution.order_manager")

S = OrderState


async def query_unknown(om: OrderManager, order: ManagedOrder) -> None:
    """Ask the exchange for an UNKNOWN ``order`` by client order id: found, it is applied (and
    cancelled if a cancel was asked meanwhile); never seen, it is sent again under the same id
    (at most ``max_submit_attempts`` sends) or, if a cancel was asked, ends CANCELLED; no
    answer, it is re-queried after a backoff (an error once ``max_query_attempts`` failed)."""
    try:
        snap = await om.exchange.fetch_order(order.symbol,
                                             client_order_id=order.client_order_id)
    except OrderNotFound:
        om._event(order, "query", "the exchange never saw it")
        if order.cancel_requested:
            om._transition(order, S.CANCELLED, "cancelled before it reached the exchange")
        elif order.submit_attempts < om.config.max_submit_attempts:
            await om._send(order)  # same client order id: idempotent
        else:
            om._transition(order, S.REJECTED, f"not on the exchange after "
                           f"{order.submit_attempts} sends")
        return
    except ExchangeError as exc:
        order.query_attempts += 1
        om._event(order, "timeout", f"query {order.query_attempts}: {type(exc).__name__}")
        if order.query_attempts == om.config.max_query_attempts:
            om._error(order, f"unresolved after {order.query_attempts} queries; still "
                      "querying every max_query_backoff_s")
        om._schedule_retry(order)
        return
    om._event(order, "query", f"found: {snap.status.value}, filled {snap.filled:g}")
    om._apply(order, snap, "query")
    if order.cancel_requested and order.state in (S.OPEN, S.PARTIALLY_FILLED):
        await om._request_cancel(order, "cancel requested while unknown")


async def sync_open_orders(om: OrderManager) -> None:
    """Sync the live orders with the exchange's open orders, one request per symbol: each
    listed order of ours is applied; one that is terminal here is cancelled there (an error);
    one not listed is fetched by client order id; an open order that is not ours is logged
    once."""
    by_symbol: dict[str, list[ManagedOrder]] = {}
    for o in om._active.values():
        if o.state in LIVE_STATES:
            by_symbol.setdefault(o.symbol, []).append(o)
    for symbol, live in by_symbol.items():
        try:
            listed = await om.exchange.open_orders(symbol)
        except ExchangeError as exc:
            log.warning("open_orders(%s) failed: %s", symbol, om._text(exc))
            continue
        seen: set[str] = set()
        for snap in listed:
            seen.add(snap.client_order_id)
            mine = om._orders.get(snap.client_order_id)
            if mine is None:
                if snap.client_order_id not in om._foreign:
                    om._foreign.add(snap.client_order_id)
                    log.warning("open order %s on %s is not ours", snap.client_order_id,
                                symbol)
            elif mine.is_terminal:
                om._error(mine, f"terminal here but {snap.status.value} on the exchange; "
                          "cancelling it there")
                try:
                    await om.exchange.cancel_order(symbol, client_order_id=mine.client_order_id)
                except ExchangeError as exc:
                    log.warning("cancel of stray %s failed: %s", mine.client_order_id,
                                om._text(exc))
            else:
                om._apply(mine, snap, "sync")
        for order in live:
            if order.client_order_id not in seen and not order.is_terminal:
                await fetch_live(om, order)


async def fetch_live(om: OrderManager, order: ManagedOrder) -> None:
    """Fetch an acknowledged ``order`` by client order id and apply it (an error if the
    exchange does not know it; a warning, and nothing changed, if it cannot answer)."""
    try:
        snap = await om.exchange.fetch_order(order.symbol,
                                             client_order_id=order.client_order_id)
    except OrderNotFound:
        om._error(order, "acknowledged order not found on the exchange")
        return
    except ExchangeError as exc:
        log.warning("fetch_order(%s) failed: %s", order.client_order_id, om._text(exc))
        return
    om._apply(order, snap, "fetch")
