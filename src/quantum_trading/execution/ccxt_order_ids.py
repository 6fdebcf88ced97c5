"""What the ccxt adapter remembers about orders: for each client order id, whether it is a stop
(a trigger order), its exchange id and, once a stop triggered, its actual (regular) order; and
for each exchange order id, its client order id (fills carry only the former).

:class:`~quantum_trading.execution.ccxt_exchange.CcxtExchange` holds one :class:`OrderIds`
and converts every order it reads from ccxt through :meth:`OrderIds.convert`, which keeps a
stop's algo id as :attr:`ExchangeOrder.id` for its whole life. Nothing here sends a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quantum_trading.execution.ccxt_convert import order_from_ccxt
from quantum_trading.execution.models import ExchangeOrder, LiveOrderType

__all__ = ["STOPS", "KnownOrder", "OrderIds"]

STOPS = (LiveOrderType.STOP_MARKET, LiveOrderType.TAKE_PROFIT_MARKET)
"""The order types that are ccxt trigger orders."""


@dataclass
class KnownOrder:
    """What the adapter learned about one client order id."""

    conditional: bool
    order_id: str = ""
    actual_id: str | None = None  # a triggered stop's regular order (Binance)


class OrderIds:
    """Client order id → :class:`KnownOrder`, exchange order id → client order id."""

    def __init__(self) -> None:
        self.known: dict[str, KnownOrder] = {}
        self.cid_by_order_id: dict[str, str] = {}

    def remember(self, order: ExchangeOrder, *, actual_id: str | None = None) -> ExchangeOrder:
        """Record ``order`` (and a triggered stop's ``actual_id``); returns ``order``."""
        cid = order.client_order_id
        if not cid:
            return order
        known = self.known.get(cid)
        if known is None:
            known = self.known[cid] = KnownOrder(order.order_type in STOPS, order.id)
        elif not known.conditional:  # a regular order (the newest one under this id)
            known.conditional, known.order_id = order.order_type in STOPS, order.id
        elif not known.order_id:
            known.order_id = order.id
        if actual_id:
            known.actual_id = actual_id
            self.cid_by_order_id[actual_id] = cid
        if order.id:
            self.cid_by_order_id[order.id] = cid
        return order

    def convert(self, raw: dict[str, Any], symbol: str, cs: float, **overrides: Any
                ) -> ExchangeOrder:
        """:func:`~.ccxt_convert.order_from_ccxt` of ``raw`` (contract size ``cs``),
        remembered; a triggered stop's regular order keeps the stop's algo id."""
        cid = overrides.pop("client_order_id", None) or raw.get("clientOrderId")
        known = self.known.get(cid or "")
        actual_id = None
        info = raw.get("info") or {}
        if (known is not None and known.conditional and known.order_id and raw.get("id")
                and str(raw["id"]) != known.order_id and "algoStatus" not in info):
            actual_id = str(raw["id"])  # a triggered stop's regular order
            overrides.setdefault("order_id", known.order_id)  # a stop keeps its algo id
        return self.remember(order_from_ccxt(raw, contract_size=cs, symbol=symbol,
                                             client_order_id=cid, **overrides),
                             actual_id=actual_id)
