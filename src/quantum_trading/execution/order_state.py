"""Order states of the :class:`~quantum_trading.execution.order_manager.OrderManager`: the
state enum, the allowed transitions, and the records the manager keeps per order.

State machine (``from → to``; fills inside ``PARTIALLY_FILLED`` / ``PENDING_CANCEL`` update
the order without a state change; terminal states never change):

================  ===========================================================================
NEW               UNKNOWN, OPEN, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED, EXPIRED
UNKNOWN           OPEN, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED, EXPIRED
OPEN              PARTIALLY_FILLED, FILLED, PENDING_CANCEL, CANCELLED, EXPIRED
PARTIALLY_FILLED  FILLED, PENDING_CANCEL, CANCELLED, EXPIRED
PENDING_CANCEL    FILLED, CANCELLED, EXPIRED
================  ===========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Literal

import pandas as pd

from quantum_trading.domain import Side
from quantum_trading.execution.config import StalePolicy
from quantum_trading.execution.models import (
    OrderRequest,
)
from quantum_trading.risk.limits import RiskDecision

__all__ = [
    "LIVE_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "ChainFill",
    "ManagedOrder",
    "OrderEvent",
    "OrderState",
    "StaleOverride",
    "is_legal_transition",
    "round_to_step",
]


StaleOverride = StalePolicy | Literal["keep"]
"""A per-order stale policy: the config's choices, or ``"keep"`` (never cancelled as stale)."""


class OrderState(StrEnum):
    """Our view of an order. ``NEW``: stored, not yet answered; ``UNKNOWN``: a request timed
    out, being re-queried by client order id; ``PENDING_CANCEL``: cancel sent, not confirmed."""

    NEW = "new"
    UNKNOWN = "unknown"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


S = OrderState
TERMINAL_STATES = frozenset({S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED})
"""States after which an order never changes."""

TRANSITIONS: Mapping[OrderState, frozenset[OrderState]] = {
    S.NEW: frozenset({S.UNKNOWN, S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED,
                      S.REJECTED, S.EXPIRED}),
    S.UNKNOWN: frozenset({S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED,
                          S.EXPIRED}),
    S.OPEN: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}
"""The allowed state changes (see the module docstring)."""

LIVE_STATES = frozenset({S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL})


def round_to_step(value: float, step: float, direction: Literal["down", "up"]) -> float:
    """``value`` rounded down or up to a multiple of ``step`` (0 = unchanged); values within
    1e-9 of a step count as on it.

    >>> round_to_step(0.3 - 0.1, 0.1, "down"), round_to_step(100.01, 0.1, "up")
    (0.2, 100.1)
    """
    if step <= 0.0:
        return value
    x = value / step
    n = math.floor(x + 1e-9) if direction == "down" else math.ceil(x - 1e-9)
    digits = max(0, -int(Decimal(repr(step)).normalize().as_tuple().exponent))
    return round(n * step, digits + 2)


def is_legal_transition(current: OrderState, new: OrderState) -> bool:
    """Whether ``current → new`` is in :data:`TRANSITIONS`.

    >>> is_legal_transition(OrderState.OPEN, OrderState.FILLED)
    True
    >>> is_legal_transition(OrderState.FILLED, OrderState.OPEN)
    False
    """
    return new in TRANSITIONS[current]


@dataclass(frozen=True)
class OrderEvent:
    """One thing that happened to an order (the audit log).

    ``kind``: created, risk, sent, transition, fill, timeout, query, resubmit, stale,
    reprice, escalate, cancel_requested, error. ``state`` is the order's state after it.
    """

    time: pd.Timestamp
    client_order_id: str
    kind: str
    state: OrderState
    detail: str = ""


@dataclass(slots=True, eq=False)
class ManagedOrder:
    """An order as the manager tracks it (read it; only the manager changes it).

    ``root_id`` is the client order id of the first order of a re-price chain (its own id
    when it replaces nothing); ``replaces`` / ``replaced_by`` link the chain. Times are UTC
    from the manager's clock; ``filled`` base units; prices USDT.
    """

    request: OrderRequest
    created_at: pd.Timestamp
    tag: str = ""
    root_id: str = ""
    on_stale: StaleOverride | None = None
    reprices: int = 0
    replaces: str | None = None
    replaced_by: str | None = None
    state: OrderState = S.NEW
    sent_at: pd.Timestamp | None = None
    updated_at: pd.Timestamp | None = None
    exchange_id: str | None = None
    filled: float = 0.0
    average_price: float | None = None
    fee_usd: float = 0.0
    risk_decision: RiskDecision | None = None
    reason: str = ""
    submit_attempts: int = 0
    query_attempts: int = 0
    cancel_attempts: int = 0
    retry_at: pd.Timestamp | None = None
    cancel_requested: bool = False
    after_cancel: Literal["reprice", "market"] | None = None
    pending_followup: bool = False
    history: list[tuple[pd.Timestamp, OrderState, OrderState, str]] = field(default_factory=list)

    @property
    def client_order_id(self) -> str:
        """Our idempotency key."""
        return self.request.client_order_id

    @property
    def symbol(self) -> str:
        """ccxt unified symbol."""
        return self.request.symbol

    @property
    def side(self) -> Side:
        """BUY or SELL."""
        return self.request.side

    @property
    def amount(self) -> float:
        """Ordered base units (after a risk resize)."""
        return self.request.amount

    @property
    def remaining(self) -> float:
        """Base units not filled."""
        return max(self.request.amount - self.filled, 0.0)

    @property
    def is_terminal(self) -> bool:
        """True once the state can never change."""
        return self.state in TERMINAL_STATES


@dataclass(frozen=True)
class ChainFill:
    """Fills of an order and all its replacements (re-prices, escalations).

    ``done``: the last order of the chain is terminal and no replacement is pending.
    """

    root_id: str
    client_order_ids: tuple[str, ...]
    amount: float
    filled: float
    average_price: float | None
    fee_usd: float
    done: bool
    last_state: OrderState


