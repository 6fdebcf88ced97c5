"""Execution algorithms: a parent order worked through child orders.

An :class:`ExecAlgorithm` turns one parent order (symbol, side, amount in base units) into
child orders placed through an :class:`~quantum_trading.execution.order_manager.OrderManager`
(so every child passes the risk engine, is idempotent, re-queried after timeouts and
re-priced when stale). Each child is recorded as a :class:`ChildOrder`: parent id, the client
ids of its order chain (a re-priced child is one chain), times, size and fills.

Driving it (same clock and poll mechanism as the manager)::

    algo = TWAP(manager, symbol=..., side=Side.BUY, amount=5.0, config=TWAPConfig(...))
    await algo.start()                  # arrival price = ticker mid now
    while not algo.finished:
        await manager.poll()            # fills, re-queries, re-prices
        await algo.poll()               # records fills, places the children that are due
        ...wait for the next tick...

Slippage is measured against the **arrival price** (the mid when :meth:`ExecAlgorithm.start`
ran), in bps of it, signed so that **positive = worse**: a buy filled above the arrival mid
or a sell filled below it.

A child rejected (by the risk engine or the exchange) stops the algorithm: the decision is
honoured, not retried.
"""

from __future__ import annotations

import logging
import math
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from quantum_trading.domain import Side
from quantum_trading.errors import ConfigError
from quantum_trading.execution.config import TWAPConfig, VWAPConfig
from quantum_trading.execution.models import LiveOrderType, OrderRequest
from quantum_trading.execution.order_manager import (
    OrderManager,
    OrderState,
    StaleOverride,
    round_to_step,
)

__all__ = [
    "AlgoReport",
    "AlgoStatus",
    "ChildOrder",
    "ExecAlgorithm",
    "ScheduledAlgorithm",
    "floor_to_lot",
    "slippage_bps",
]

log = logging.getLogger(__name__)

AlgoStatus = Literal["pending", "running", "finished", "cancelled", "stopped"]


def slippage_bps(side: Side, average_price: float, arrival_price: float) -> float:
    """Execution price against the arrival price in bps, positive = worse.

    >>> slippage_bps(Side.BUY, 100.1, 100.0), slippage_bps(Side.SELL, 100.1, 100.0)
    (10.0, -10.0)
    """
    return round(int(side) * (average_price - arrival_price) / arrival_price * 1e4, 10)


def floor_to_lot(amount: float, lot_size: float) -> float:
    """``amount`` rounded down to a multiple of ``lot_size`` (0 = no rounding).

    >>> floor_to_lot(2.57, 0.1)
    2.5
    """
    return round_to_step(amount, lot_size, "down")


@dataclass(slots=True, eq=False)
class ChildOrder:
    """One child of a parent order; its fills sum over its re-price chain.

    ``client_order_id`` is the chain's first order; ``client_order_ids`` all of them.
    ``amount``/``filled`` base units, ``average_price`` USDT, times UTC.
    """

    parent_id: str
    client_order_id: str
    scheduled_at: pd.Timestamp
    sent_at: pd.Timestamp
    amount: float
    price: float | None
    filled: float = 0.0
    average_price: float | None = None
    fee_usd: float = 0.0
    state: OrderState = OrderState.NEW
    done: bool = False
    done_at: pd.Timestamp | None = None
    client_order_ids: tuple[str, ...] = ()

    @property
    def allocated(self) -> float:
        """What this child takes of the parent: its fills once done, else its size."""
        return self.filled if self.done else self.amount


@dataclass(frozen=True)
class AlgoReport:
    """Summary of a parent order (units in names; slippage positive = worse)."""

    parent_id: str
    algorithm: str
    symbol: str
    side: Side
    amount: float
    filled: float
    average_price: float | None
    arrival_price: float
    slippage_bps: float | None
    fee_usd: float
    n_children: int
    status: AlgoStatus
    reason: str
    started_at: pd.Timestamp
    finished_at: pd.Timestamp | None


class ExecAlgorithm(ABC):
    """Base of the execution algorithms (see the module docstring).

    Parameters
    ----------
    manager:
        The order manager children go through (its exchange and clock are used).
    symbol, side, amount:
        The parent order: ccxt symbol, BUY/SELL, base units > 0.
    reduce_only:
        Children are reduce-only (working out of a position).
    lot_size:
        Children are rounded down to this size increment (base units; 0 = none; None = the
        instrument's lot size from the exchange's markets, read at :meth:`start`).
    parent_id:
        Our id for the parent (generated when None).
    """

    name: ClassVar[str] = "algo"

    def __init__(self, manager: OrderManager, *, symbol: str, side: Side, amount: float,
                 reduce_only: bool = False, lot_size: float | None = None,
                 parent_id: str | None = None) -> None:
        if not isinstance(manager, OrderManager):
            raise ConfigError(f"{self.name}: manager must be an OrderManager")
        if not isinstance(side, Side):
            raise ConfigError(f"{self.name}: side must be a Side")
        if not (math.isfinite(amount) and amount > 0):
            raise ConfigError(f"{self.name}: amount must be > 0, got {amount!r}")
        if lot_size is not None and not (math.isfinite(lot_size) and lot_size >= 0):
            raise ConfigError(f"{self.name}: lot_size must be >= 0, got {lot_size!r}")
        self.manager = manager
        self.symbol = symbol
        self.side = side
        self.amount = float(amount)
        self.reduce_only = reduce_only
        self.lot_size = math.nan if lot_size is None else float(lot_size)
        self.parent_id = parent_id or f"{self.name}-{uuid.uuid4().hex[:10]}"
        self.children: list[ChildOrder] = []
        self.status: AlgoStatus = "pending"
        self.reason = ""
        self.arrival_price = math.nan
        self.started_at: pd.Timestamp | None = None
        self.finished_at: pd.Timestamp | None = None
        self._tol = 1e-9 * max(1.0, self.amount)

    # -- reading ---------------------------------------------------------------------------
    @property
    def filled(self) -> float:
        """Base units filled over all children."""
        return sum(c.filled for c in self.children)

    @property
    def allocated(self) -> float:
        """Base units working or filled (see :attr:`ChildOrder.allocated`)."""
        return sum(c.allocated for c in self.children)

    @property
    def average_price(self) -> float | None:
        """Volume-weighted fill price over all children (USDT; None before any fill)."""
        filled = self.filled
        if filled <= 0:
            return None
        return sum(c.filled * c.average_price for c in self.children
                   if c.average_price is not None) / filled

    @property
    def slippage_bps(self) -> float | None:
        """Average fill price against the arrival price, bps, positive = worse."""
        avg = self.average_price
        return None if avg is None else slippage_bps(self.side, avg, self.arrival_price)

    @property
    def finished(self) -> bool:
        """True once nothing more will happen (finished, cancelled or stopped)."""
        return self.status in ("finished", "cancelled", "stopped")

    def report(self) -> AlgoReport:
        """A summary of the parent order now."""
        if self.started_at is None:
            raise ConfigError(f"{self.name}: not started")
        return AlgoReport(parent_id=self.parent_id, algorithm=self.name, symbol=self.symbol,
                          side=self.side, amount=self.amount, filled=self.filled,
                          average_price=self.average_price, arrival_price=self.arrival_price,
                          slippage_bps=self.slippage_bps,
                          fee_usd=sum(c.fee_usd for c in self.children),
                          n_children=len(self.children), status=self.status,
                          reason=self.reason, started_at=self.started_at,
                          finished_at=self.finished_at)

    def children_frame(self) -> pd.DataFrame:
        """One row per child: ids, times, size, price, fills, state."""
        cols = ["parent_id", "client_order_id", "client_order_ids", "scheduled_at", "sent_at",
                "amount", "price", "filled", "average_price", "fee_usd", "state", "done_at"]
        return pd.DataFrame([{c: getattr(ch, c) for c in cols} for ch in self.children],
                            columns=cols)

    # -- driving ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Record the arrival price (ticker mid) and start time; place what is due now."""
        if self.status != "pending":
            raise ConfigError(f"{self.name} {self.parent_id}: already started")
        ticker = await self.manager.exchange.ticker(self.symbol)
        if math.isnan(self.lot_size):
            inst = await self.manager.instrument(self.symbol)
            self.lot_size = inst.lot_size if inst is not None else 0.0
        self.arrival_price = ticker.mid
        self.started_at = self.manager.now()
        self.status = "running"
        self._on_start(self.started_at)
        await self.poll()

    async def poll(self) -> list[ChildOrder]:
        """Update the children from the manager and place the children now due. Returns the
        children placed in this call."""
        self._refresh()
        placed_before = len(self.children)
        if self.status == "running":
            await self._step(self.manager.now())
            self._refresh()
            if self.status == "running" and self._complete():
                self._finish("finished", "")
        return self.children[placed_before:]

    async def cancel(self, reason: str = "cancelled") -> None:
        """Stop placing children and cancel the working ones."""
        for child in self.children:
            if not child.done:
                await self.manager.cancel(child.client_order_ids[-1], reason=reason)
        self._refresh()
        self._finish("cancelled", reason)

    # -- for subclasses --------------------------------------------------------------------
    def _on_start(self, now: pd.Timestamp) -> None:  # noqa: B027 - optional hook
        """Plan at start (schedules)."""

    @abstractmethod
    async def _step(self, now: pd.Timestamp) -> None:
        """Place the children due at ``now`` (through :meth:`_place`)."""

    @abstractmethod
    def _complete(self) -> bool:
        """True when the parent needs nothing more (children done included)."""

    def _working(self) -> bool:
        return any(not c.done for c in self.children)

    async def _place(self, amount: float, *, scheduled_at: pd.Timestamp,
                     order_type: Literal["market", "limit"], price: float | None = None,
                     on_stale: StaleOverride | None = None) -> ChildOrder | bool | None:
        """Send one child of ``amount`` (lot-rounded). Returns the child, None if too small,
        or False when no price could be had (try again later)."""
        amount = floor_to_lot(min(amount, self.amount - self.allocated), self.lot_size)
        if amount <= self._tol:
            return None
        manager = self.manager
        if order_type == "limit" and price is None:
            price = await manager.passive_price(self.symbol, self.side)
            if price is None:
                return False
        request = OrderRequest(
            symbol=self.symbol, side=self.side,
            order_type=LiveOrderType.LIMIT if order_type == "limit" else LiveOrderType.MARKET,
            amount=amount, price=price if order_type == "limit" else None,
            reduce_only=self.reduce_only, client_order_id=manager.new_client_order_id())
        order = await manager.submit(request, tag=f"{self.name}:{self.parent_id}",
                                     on_stale=on_stale)
        child = ChildOrder(parent_id=self.parent_id, client_order_id=order.client_order_id,
                           scheduled_at=scheduled_at, sent_at=manager.now(), amount=order.amount,
                           price=request.price)
        self.children.append(child)
        self._refresh()
        return child

    def _refresh(self) -> None:
        now = self.manager.now()
        for child in self.children:
            if child.done:
                continue
            chain = self.manager.chain_fill(child.client_order_id)
            child.filled = chain.filled
            child.average_price = chain.average_price
            child.fee_usd = chain.fee_usd
            child.state = chain.last_state
            child.client_order_ids = chain.client_order_ids
            if chain.done:
                child.done = True
                child.done_at = now
                if chain.last_state is OrderState.REJECTED and self.status == "running":
                    reason = self.manager.get(chain.client_order_ids[-1]).reason
                    self._finish("stopped", f"child {chain.client_order_ids[-1]} rejected: "
                                 f"{reason}")

    def _finish(self, status: AlgoStatus, reason: str) -> None:
        if self.finished:
            return
        self.status = status
        self.reason = reason
        self.finished_at = self.manager.now()
        log.info("%s %s %s: filled %g of %g (%s)", self.name, self.parent_id, status,
                 self.filled, self.amount, reason)


class ScheduledAlgorithm(ExecAlgorithm):
    """Children on a fixed schedule: slice k due at ``start + k × duration_s / n_slices``,
    sized so the cumulative target after slice k is ``amount × w_0..k / Σw`` (lot-rounded
    down; the last slice takes the rest). A slice sends what the schedule asks minus what is
    already working or filled, so a shortfall of a cancelled child is made up at the next
    slice; a poll that finds several slices due sends one child for all of them. After the
    last slice nothing more is sent (an unfilled rest is reported, not chased). Subclasses
    give the weights :meth:`_weights`."""

    def __init__(self, manager: OrderManager, *, symbol: str, side: Side, amount: float,
                 config: TWAPConfig | VWAPConfig, reduce_only: bool = False,
                 lot_size: float | None = None, parent_id: str | None = None) -> None:
        super().__init__(manager, symbol=symbol, side=side, amount=amount,
                         reduce_only=reduce_only, lot_size=lot_size, parent_id=parent_id)
        self.config = config
        self.schedule: pd.DataFrame | None = None
        """Columns ``due_at``, ``weight``, ``target_cum`` (base units), one row a slice."""
        self._slices_due = 0

    @abstractmethod
    def _weights(self, times: pd.DatetimeIndex, slice_s: float) -> np.ndarray:
        """Non-negative weight of each slice [t, t + slice_s)."""

    def _on_start(self, now: pd.Timestamp) -> None:
        n = self.config.n_slices
        slice_s = self.config.duration_s / n
        times = pd.DatetimeIndex([now + pd.Timedelta(seconds=k * slice_s) for k in range(n)])
        w = np.asarray(self._weights(times, slice_s), dtype=np.float64)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ConfigError(f"{self.name}: slice weights must be {n} finite values >= 0")
        if w.sum() <= 0:
            w = np.ones(n)
        cum = np.array([floor_to_lot(x, self.lot_size) for x in self.amount * np.cumsum(w)
                        / w.sum()])
        cum[-1] = self.amount
        self.schedule = pd.DataFrame({"due_at": times, "weight": w / w.sum(),
                                      "target_cum": cum})

    async def _step(self, now: pd.Timestamp) -> None:
        assert self.schedule is not None
        due = int((self.schedule["due_at"] <= now).sum())
        if due <= self._slices_due:
            return
        target = float(self.schedule["target_cum"].iloc[due - 1])
        placed = await self._place(target - self.allocated,
                                   scheduled_at=self.schedule["due_at"].iloc[due - 1],
                                   order_type=self.config.child_order_type)
        if placed is not False:  # no price: the slice stays due
            self._slices_due = due

    def _complete(self) -> bool:
        return self._slices_due == self.config.n_slices and not self._working()
