"""Reading a stop (a ccxt trigger order) for the ccxt adapter, where the exchange keeps trigger
orders apart (Binance ``/fapi/v1/algoOrder``, OKX).

A stop is fetched with ``params={"trigger": True}``. Until it triggers, that answer is the
order. Once triggered (``algoStatus`` TRIGGERED / FINISHED, or an ``actualOrderId``), its fills
are on its actual (regular) order, which is fetched and reported under the stop's client id
and algo id (a stop keeps its algo id as :attr:`ExchangeOrder.id` for its whole life).
"""

from __future__ import annotations

from typing import Any

from quantum_trading.execution.ccxt_convert import order_from_ccxt, order_type_from_ccxt
from quantum_trading.execution.ccxt_order_ids import KnownOrder, OrderIds
from quantum_trading.execution.ccxt_requests import CcxtRequests
from quantum_trading.execution.errors import OrderNotFound
from quantum_trading.execution.models import ExchangeOrder

__all__ = ["fetch_stop"]

_TRIGGERED = ("TRIGGERED", "FINISHED")


async def fetch_stop(requests: CcxtRequests, client: Any, ids: OrderIds, symbol: str, cid: str,
                     cs: float) -> ExchangeOrder:
    """The stop with client order id ``cid`` as it is now (contract size ``cs``), recorded in
    ``ids``; a triggered stop reports its actual order's fills (still open with nothing filled
    while that order is not visible yet). :class:`OrderNotFound` if the exchange has no such
    trigger order."""
    raw = await requests.call("fetch_order", symbol, lambda: client.fetch_order(
        None, symbol, {"clientOrderId": cid, "trigger": True}))
    info = raw.get("info") or {}
    algo_id = str(raw.get("id") or "")
    ids.known[cid] = known = ids.known.get(cid) or KnownOrder(True)
    known.conditional, known.order_id = True, algo_id
    stop = raw.get("triggerPrice")
    otype = order_type_from_ccxt(raw)
    actual = str(info.get("actualOrderId") or "")
    actual_id = actual if actual.strip("0") else None  # set once it triggered
    if str(info.get("algoStatus") or "").upper() not in _TRIGGERED and actual_id is None:
        return ids.convert(raw, symbol, cs, client_order_id=cid, order_type=otype)
    try:  # triggered: its fills are on its actual (regular) order
        order = await requests.call("fetch_order", symbol, lambda: client.fetch_order(
            actual_id, symbol, {} if actual_id else {"clientOrderId": cid}))
    except OrderNotFound:  # its order is not visible yet
        waiting = {**raw, "status": "open", "filled": 0.0}
        return ids.convert(waiting, symbol, cs, client_order_id=cid, order_type=otype)
    return ids.remember(order_from_ccxt(
        order, contract_size=cs, symbol=symbol, client_order_id=cid, order_type=otype,
        stop_price=float(stop) if stop else None, order_id=algo_id,
    ), actual_id=str(order.get("id") or actual_id or ""))
