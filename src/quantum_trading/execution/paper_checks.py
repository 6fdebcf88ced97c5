"""The paper exchange's order-entry checks: what Binance USDⓈ-M rejects when an order arrives,
and the initial margin an accepted order reserves while it is open.

:func:`admit_order` runs at submission time, against the account as it stands then (the last
close as the reference price of a market order; the limit price of a limit order; the trigger
of a stop). It checks, in this order: bankruptcy, lot size, tick size, a price to value the
order at, reduce-only direction; then, for an order that **opens or increases** exposure, the
long-only rule, the instrument's minimum notional, the tier cap of the leverage and the free
margin. An order that **only reduces** the position — reduce-only, or a close no larger than
the position (it does not flip) — passes those four untouched, as Binance lets a reduce-only
order under the minimum notional close a position.

Units: sizes in base units, prices and money in USDT.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from quantum_trading.domain import Instrument
from quantum_trading.execution.errors import InsufficientFunds, InvalidOrder
from quantum_trading.execution.models import LiveOrderType, OrderRequest
from quantum_trading.execution.paper_accounts import PaperAccount
from quantum_trading.execution.paper_book import CONDITIONAL_TYPES, is_multiple

__all__ = ["MARGIN_TOL", "admit_order", "rejected"]

MARGIN_TOL = 1e-9
"""Relative tolerance of the free-margin check (the simulator's, ``sim.orders_nb``)."""


def rejected(reason: str, message: str) -> InvalidOrder:
    """An :class:`InvalidOrder` (``reason == "margin"``: :class:`InsufficientFunds`) carrying a
    machine-readable ``reason``: unknown_symbol, bankrupt, lot_size, tick_size, no_price,
    reduce_only, short, min_notional, max_position, margin, leverage."""
    error = InsufficientFunds(message) if reason == "margin" else InvalidOrder(message)
    error.reason = reason  # type: ignore[attr-defined]
    return error


def admit_order(
    req: OrderRequest,
    inst: Instrument,
    acc: PaperAccount,
    i: int,
    *,
    last: float,
    free_margin_usd: Callable[[], float],
) -> float:
    """Check ``req`` for symbol ``i`` of ``acc`` at submission; return the initial margin (USDT)
    it reserves while open, for its full amount (0 for conditional orders and for orders that
    only reduce the position).

    ``last``: the symbol's last close (NaN before its first bar). ``free_margin_usd``: the
    account's free margin now (equity − position margin − margin reserved by open orders),
    called only when the order needs margin.

    Raises
    ------
    InvalidOrder
        With ``reason`` bankrupt, lot_size, tick_size, no_price, reduce_only, short,
        min_notional or max_position.
    InsufficientFunds
        ``reason == "margin"``: the opening part needs more initial margin than is free
        (what the order closes first frees its own margin).

    Examples
    --------
    >>> from quantum_trading.domain import BINANCE_BTCUSDT_PERP, Side
    >>> acc = PaperAccount([BINANCE_BTCUSDT_PERP])
    >>> req = OrderRequest("BTC/USDT:USDT", Side.BUY, LiveOrderType.MARKET, 0.01,
    ...                    client_order_id="a")
    >>> admit_order(req, BINANCE_BTCUSDT_PERP, acc, 0, last=30_000.0,
    ...             free_margin_usd=lambda: 10_000.0)  # 0.01 · 30,000 / 1×
    300.0
    """
    if acc.bankrupt:
        raise rejected("bankrupt", "paper: the account is bankrupt; no order is accepted")
    if not is_multiple(req.amount, inst.lot_size) or req.amount < inst.lot_size:
        raise rejected(
            "lot_size",
            f"paper {req.symbol}: amount {req.amount} is not a positive "
            f"multiple of the lot size {inst.lot_size}",
        )
    for what, px in (("price", req.price), ("stop_price", req.stop_price)):
        if px is not None and not is_multiple(px, inst.tick_size):
            raise rejected(
                "tick_size",
                f"paper {req.symbol}: {what} {px} is not a multiple of the "
                f"tick size {inst.tick_size}",
            )
    if math.isnan(last):
        raise rejected("no_price", f"paper {req.symbol}: no market data yet (no bar received)")
    conditional = req.order_type in CONDITIONAL_TYPES
    ref = req.price if req.order_type is LiveOrderType.LIMIT else (req.stop_price or last)
    q = float(req.side) * req.amount
    pos = acc.size(i)
    if req.reduce_only and not conditional and (pos == 0.0 or (pos > 0) == (q > 0)):
        raise rejected(
            "reduce_only",
            f"paper {req.symbol}: reduce-only order would increase the position ({pos})",
        )
    closable = min(abs(q), abs(pos)) if pos != 0.0 and (pos > 0) != (q > 0) else 0.0
    # reduce-only, or a close that does not flip: nothing opens, so no opening rule applies
    opening = 0.0 if req.reduce_only else abs(q) - closable
    if opening <= 0.0:
        return 0.0
    lev = acc.leverage(i)
    if pos + q < 0.0 and not acc.account.allow_short:
        raise rejected("short", f"paper {req.symbol}: shorts are not allowed in this account")
    if req.amount * ref < inst.min_notional_usd:
        raise rejected(
            "min_notional",
            f"paper {req.symbol}: notional {req.amount * ref:.4f} USDT is under the minimum "
            f"{inst.min_notional_usd} (only orders that reduce the position are exempt)",
        )
    cap = inst.max_notional_usd(lev)
    if abs(pos + q) * ref > cap:
        raise rejected(
            "max_position",
            f"paper {req.symbol}: position {abs(pos + q)} exceeds the "
            f"maximum notional {cap} USDT at leverage {lev}",
        )
    if conditional:
        return 0.0
    reserve = opening * ref / lev
    # what the order closes first frees its margin
    free = free_margin_usd() + closable * ref / lev
    if reserve > free * (1.0 + MARGIN_TOL):
        raise rejected(
            "margin",
            f"paper {req.symbol}: order needs {reserve:.2f} USDT of "
            f"initial margin, {free:.2f} USDT free",
        )
    return reserve
