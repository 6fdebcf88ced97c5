"""The order manager's stale-order policy: cancelling resting limit orders that are too old or
too far from the mid, and sending what follows (a re-priced limit at the touch, or a market
order), as :class:`~quantum_trading.execution.config.OrderManagerConfig` (``max_order_age_s``,
``cancel_on_price_move_pct``, ``on_stale``, ``max_reprices``, ``on_reprices_exhausted``) and
each order's ``on_stale`` say.

:class:`~quantum_trading.execution.order_manager.OrderManager` calls these from
:meth:`~quantum_trading.execution.order_manager.OrderManager.poll`; a replacement is submitted
in the chain of the order it replaces (risk-checked again).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import pandas as pd

from quantum_trading.execution.models import LiveOrderType, OrderRequest, Ticker
from quantum_trading.execution.order_state import OrderState, round_to_step

if TYPE_CHECKING:
    from quantum_trading.execution.order_manager import OrderManager

__all__ = ["check_stale", "run_followups"]

S = OrderState


async def check_stale(om: OrderManager, now: pd.Timestamp, tickers: dict[str, Ticker]
                      ) -> None:
    """Cancel every resting limit order (not ``on_stale="keep"``) older than
    ``max_order_age_s`` or more than ``cancel_on_price_move_pct`` from the mid (tickers not in
    ``tickers`` are fetched into it), marking what follows its cancel: a re-price (while
    ``max_reprices`` allows, then ``on_reprices_exhausted``), a market order, or nothing."""
    cfg = om.config
    for order in [o for o in om._active.values()
                  if o.state in (S.OPEN, S.PARTIALLY_FILLED)
                  and o.request.order_type is LiveOrderType.LIMIT and o.on_stale != "keep"]:
        age_s = (now - (order.sent_at or order.created_at)).total_seconds()
        ticker = await om._ticker(order.symbol, tickers)
        move_pct = (abs(order.request.price - ticker.mid) / ticker.mid * 100.0
                    if ticker is not None and order.request.price is not None else 0.0)
        if age_s > cfg.max_order_age_s:
            why = f"age {age_s:g} s > {cfg.max_order_age_s:g} s"
        elif move_pct > cfg.cancel_on_price_move_pct:
            why = f"{move_pct:.3f}% from mid > {cfg.cancel_on_price_move_pct:g}%"
        else:
            continue
        policy = order.on_stale or cfg.on_stale
        follow: Literal["reprice", "market"] | None = None
        if policy == "reprice":
            follow = "reprice" if order.reprices < cfg.max_reprices else (
                "market" if cfg.on_reprices_exhausted == "market" else None)
        elif policy == "market":
            follow = "market"
        om._event(order, "stale", f"{why}; then {follow or 'cancel'}")
        order.after_cancel = follow
        await om._request_cancel(order, f"stale: {why}")


async def run_followups(om: OrderManager, tickers: dict[str, Ticker]) -> None:
    """Send the replacement of each cancelled stale order: its rest, rounded down to the lot,
    as a limit at the touch (:meth:`OrderManager.passive_price`; kept for the next cycle when
    no quote) or as a market order, in the same chain. A rest below one lot is not replaced."""
    pending, om._followups = om._followups, []
    for old in pending:
        req = old.request
        inst = await om.instrument(req.symbol)
        amount = round_to_step(old.remaining, inst.lot_size if inst else 0.0, "down")
        if amount <= 0.0:
            old.pending_followup = False
            om._event(old, "reprice", f"rest {old.remaining:g} is below one lot: none")
            continue
        if old.after_cancel == "reprice":
            price = await om.passive_price(req.symbol, req.side, tickers)
            if price is None:  # no quote: try again next cycle
                om._followups.append(old)
                continue
            new = replace(req, amount=amount, price=price,
                          client_order_id=om.new_client_order_id())
            kind = "reprice"
        else:
            new = OrderRequest(symbol=req.symbol, side=req.side,
                               order_type=LiveOrderType.MARKET, amount=amount,
                               reduce_only=req.reduce_only,
                               client_order_id=om.new_client_order_id())
            kind = "escalate"
        old.replaced_by = new.client_order_id
        old.pending_followup = False
        om._event(old, kind, f"replaced by {new.client_order_id} ({new.amount:g} at "
                  f"{new.price if new.price is not None else 'market'})")
        await om._submit(new, tag=old.tag, on_stale=old.on_stale, parent=old,
                         reprices=old.reprices + (kind == "reprice"))
