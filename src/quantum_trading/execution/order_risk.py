"""The order manager's pre-trade risk check: every order that is not reduce-only passes the
:class:`~quantum_trading.risk.engine.RiskEngine` before it is sent.

:class:`~quantum_trading.execution.order_manager.OrderManager` calls :func:`check_order_risk`
when it has a risk engine. A denial is a REJECTED order with the reason (a value, not an
exception); a resize changes the order's amount before it is sent.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import TYPE_CHECKING

from quantum_trading.errors import ConfigError
from quantum_trading.execution.errors import ExchangeError
from quantum_trading.execution.models import LiveOrderType
from quantum_trading.execution.order_state import ManagedOrder, OrderState
from quantum_trading.risk.limits import RiskAction

if TYPE_CHECKING:
    from quantum_trading.execution.order_manager import OrderManager

__all__ = ["check_order_risk"]

# The order manager's logger (the trader masks secrets on it by name).
log = logging.getLogger("quantum_trading.execution.order_manager")

S = OrderState


async def check_order_risk(om: OrderManager, order: ManagedOrder) -> bool:
    """Whether ``order`` may be sent (``om.risk`` must be set): checked with the exchange's
    equity, the positions (at mark prices) of the engine's symbols and the order's price (its
    limit price, else the ticker mid). False: the order is REJECTED (inputs unavailable, the
    check failed, or denied); True: approved, its amount resized where the engine says so."""
    assert om.risk is not None
    req = order.request
    try:
        balance = await om.exchange.balance()
        positions = await om.exchange.positions()
        price = req.price if req.order_type is LiveOrderType.LIMIT else \
            (await om.exchange.ticker(req.symbol)).mid
    except ExchangeError as exc:
        om._transition(order, S.REJECTED, f"risk inputs unavailable: {om._text(exc)}")
        return False
    known = set(om.risk.symbols)
    pos = {s: p.size for s, p in positions.items() if s in known}
    px = {s: p.mark_price for s, p in positions.items() if s in known}
    px[req.symbol] = float(price) if price is not None else math.nan
    try:
        decision = om.risk.check_order(om.now(), req.symbol, int(req.side) * req.amount,
                                       equity_usd=balance.equity_usd, positions=pos,
                                       prices=px)
    except ConfigError as exc:
        log.error("order %s: risk check failed: %s", order.client_order_id, om._text(exc))
        om._transition(order, S.REJECTED, f"risk check failed: {om._text(exc)}")
        return False
    order.risk_decision = decision
    om._event(order, "risk", decision.text)
    if not decision.approved:
        om._transition(order, S.REJECTED, f"risk: {decision.text}")
        return False
    if decision.action is RiskAction.RESIZE:
        order.request = replace(req, amount=abs(decision.approved_size))
    return True
