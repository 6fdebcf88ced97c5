"""The trading store's order rows: write-ahead, upserts and the order manager's events.

:class:`OrderPersistence` is the part of :class:`~quantum_trading.live.store.TradingStore`
that writes orders (the store inherits it; call these methods on a ``TradingStore``):

* :meth:`~OrderPersistence.write_ahead` — the trader's hot path: the orders of a bar, about
  to be sent, in one ``write`` to the journal beside a SQLite file
  (:mod:`~quantum_trading.live.write_ahead_journal`; put into the database by
  :meth:`~OrderPersistence.settle_write_ahead` once they are out, or by
  :meth:`~OrderPersistence.recover_write_ahead` on the next start), else in **one**
  committed transaction through the driver itself
  (:class:`~quantum_trading.live.raw_statement.RawStatement`);
* :meth:`~OrderPersistence.record_order` — upsert by client order id, of our
  :class:`ManagedOrder` or of an exchange's :class:`ExchangeOrder`; a terminal order never
  becomes live again and ``filled`` never goes down (such an update is refused and logged);
* :meth:`~OrderPersistence.mark_order` — a state set by hand (reconcile);
* :meth:`~OrderPersistence.drain_order_manager` — the manager's events not written yet, with
  the orders they touch and the risk decisions they mention, in one transaction.

:func:`state_from_exchange` maps an exchange snapshot to our :class:`OrderState` (as the
order manager does). The store's other rows (runs, fills, positions, equity, risk decisions,
alerts, key/value state) and every read stay in :mod:`~quantum_trading.live.store`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quantum_trading.execution.models import ExchangeOrder, LiveOrderStatus
from quantum_trading.execution.order_manager import OrderManager
from quantum_trading.execution.order_state import (
    TERMINAL_STATES,
    ManagedOrder,
    OrderEvent,
    OrderState,
)
from quantum_trading.live.models import OrderEventRow, OrderRow, utc
from quantum_trading.live.raw_statement import RawStatement

if TYPE_CHECKING:
    import weakref
    from contextlib import AbstractContextManager

    import pandas as pd

    from quantum_trading.live.redact import SecretRedactor
    from quantum_trading.live.store_upsert import Upserts
    from quantum_trading.live.write_ahead_journal import WriteAheadJournal
    from quantum_trading.risk.limits import RiskDecision

__all__ = ["OrderPersistence", "state_from_exchange"]

log = logging.getLogger("quantum_trading.live.store")  # the store's logger (levels, redaction)

_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)
_INSERT_ORDER = sa.insert(OrderRow.__table__)  # compiled once per engine, then cached
_ORDER_KEYS = tuple(c.key for c in OrderRow.__table__.columns if not c.primary_key)
_LIVE_STATUSES = (LiveOrderStatus.NEW, LiveOrderStatus.OPEN, LiveOrderStatus.PARTIALLY_FILLED)


def state_from_exchange(order: ExchangeOrder, current: str | None = None) -> OrderState:
    """Our :class:`OrderState` for an exchange snapshot (as the order manager maps it).

    A live snapshot is ``partially_filled`` once anything filled, else ``open``; an order we
    are cancelling (``current == "pending_cancel"``) stays ``pending_cancel`` until the
    exchange says it is final; terminal statuses map one to one.
    """
    if order.status in _LIVE_STATUSES:
        if current == OrderState.PENDING_CANCEL.value:
            return OrderState.PENDING_CANCEL
        tol = 1e-12 * max(1.0, order.amount)
        return OrderState.PARTIALLY_FILLED if order.filled > tol else OrderState.OPEN
    return OrderState(order.status.value)


class OrderPersistence:
    """The order-writing methods of :class:`~quantum_trading.live.store.TradingStore` (a
    mixin: the store provides the engine, the exchange name, the redactor, the clock, the
    transactions and the risk-decision insert). Every method is one transaction."""

    if TYPE_CHECKING:  # provided by TradingStore
        engine: Engine
        exchange: str
        redact: SecretRedactor
        run_id: int | None
        _drained: weakref.WeakKeyDictionary[OrderManager, tuple[int, OrderEvent]]
        _write_ahead: RawStatement | None
        _skip_insert: RawStatement | None
        _journal: WriteAheadJournal | None
        _journaled: list[ManagedOrder]
        _upserts: Upserts

        def now(self) -> pd.Timestamp: ...

        def transaction(self) -> AbstractContextManager[Session]: ...

        def _add_risk(self, s: Session, d: RiskDecision,
                      client_order_id: str | None) -> bool: ...

    # -- orders ----------------------------------------------------------------------------
    def record_order(self, order: ManagedOrder | ExchangeOrder, *,
                     origin: str | None = None) -> OrderRow:
        """Insert or update the order with this client order id; returns the stored row.

        A :class:`ManagedOrder` (ours) writes everything the manager knows; an
        :class:`ExchangeOrder` writes what the exchange says (status, filled, average price,
        fees, exchange id) and, for an order we never stored, inserts it with ``origin``
        (default ``"exchange"``). Updates that would move a terminal order to another state
        (unless the exchange reports another final state) or lower ``filled`` are refused
        and logged; the row stays as it was.
        """
        with self.transaction() as s:
            return self._upsert_order(s, order, origin)

    def write_ahead(self, orders: Sequence[ManagedOrder]) -> None:
        """Write orders about to be sent (ours, not stored yet) so that a crash from here on
        leaves a record that reconcile resolves (found on the exchange, or "never sent").
        The trader's hot path: bar in → *this* → ``create_order``.

        * **SQLite file** (the default database): one ``write`` of the rows to the account's
          :class:`~quantum_trading.live.write_ahead_journal.WriteAheadJournal` beside the
          file (a short line an order: ≈ 0.05 ms less than a committed transaction's
          0.15–0.2 ms in the trader's decision path); :meth:`settle_write_ahead`, called once the orders are out, puts
          the same rows into the database and empties the journal, and
          :meth:`recover_write_ahead` does it on the next start after a crash in between.
          Both survive a crash of the process (SIGKILL included), not necessarily a power
          loss or an OS crash (SQLite's WAL with ``synchronous=NORMAL``,
          :mod:`~quantum_trading.live.db`, may lose its last commits then too): the orders
          may then be missing here while the exchange has them, and reconcile on the next
          start adopts or cancels them (``unknown_orders``), so nothing is lost silently.
        * **Any other database** (PostgreSQL, in-memory SQLite, a store opened with
          ``journal=False``): one committed transaction, one Core ``INSERT`` for all the
          orders compiled once into the driver's SQL
          (:class:`~quantum_trading.live.raw_statement.RawStatement`); PostgreSQL commits
          durably. An id already stored (a decision written twice) falls back to
          :meth:`record_order` per order (an upsert).
        """
        if not orders:
            return
        if self._journal is not None:
            self._journal.append(orders)  # raises (nothing sent) when it cannot be written
            self._journaled.extend(orders)
            return
        self.prepare_write_ahead()
        assert self._write_ahead is not None
        try:
            self._write_ahead.run([self._new_order_values(o) for o in orders])
        except IntegrityError:
            for order in orders:
                self.record_order(order)

    def settle_write_ahead(self) -> int:
        """Put the orders written ahead to the journal since the last call into the
        database, as they are now (sent, maybe filled: the row the order manager's events
        would leave), in one transaction — an order stored meanwhile is kept as it is — then
        empty the journal. Returns how many rows were new. Nothing to do without a journal
        or when nothing was written ahead. If the database write fails the orders stay
        pending (journal and memory) and the error is raised."""
        if self._journal is None or not self._journaled:
            return 0
        orders, self._journaled = self._journaled, []
        try:
            stored = self._insert_absent_orders([self._new_order_values(o) for o in orders])
        except BaseException:
            self._journaled = orders + self._journaled
            raise
        self._journal.clear()
        return stored

    def recover_write_ahead(self) -> tuple[int, list[str]]:
        """On start (reconcile calls it first): store the orders a stopped or crashed run
        wrote ahead to the journal but not into the database, as new unsent orders (state
        ``new``: reconcile finds them on the exchange or marks them never sent), and empty
        the journal. Returns how many were stored and the journal lines that could not be
        read ("file: line N: why" — a line cut short by a crash during the write belongs to
        orders that were never sent). Orders the database has already are left as they
        are. Nothing to do without a journal."""
        if self._journal is None:
            return 0, []
        found = self._journal.read()
        rows = [self._new_order_values(o) for o in found.orders]
        stored = self._insert_absent_orders(rows) if rows else 0
        self._journal.clear()
        self._journaled = []
        return stored, list(found.problems)

    def _insert_absent_orders(self, rows: Sequence[dict[str, Any]]) -> int:
        if self._skip_insert is None:
            stmt = self._upserts.insert_or_skip(OrderRow.__table__, ("client_order_id",),
                                                _ORDER_KEYS)
            assert stmt is not None  # journals are kept for SQLite files only
            self._skip_insert = RawStatement(self.engine, stmt)
        return sum(self._skip_insert.run_each(rows))

    def prepare_write_ahead(self) -> None:
        """Compile the write-ahead ``INSERT`` (a :class:`RawStatement`) now, writing nothing:
        the trader's start calls it so that the first order does not pay the compilation
        (≈ 2 ms, between bar in and order out). Called by :meth:`write_ahead` otherwise.
        With a journal, open its file instead (the first write then finds it open)."""
        if self._journal is not None:
            self._journal.open()
        elif self._write_ahead is None:
            self._write_ahead = RawStatement(self.engine, _INSERT_ORDER, _ORDER_KEYS)

    def _new_order_values(self, o: ManagedOrder) -> dict[str, Any]:
        req, d = o.request, o.risk_decision
        created = utc(o.created_at)
        return {
            "client_order_id": o.client_order_id, "exchange_order_id": o.exchange_id,
            "exchange": self.exchange, "symbol": req.symbol, "side": req.side.name.lower(),
            "order_type": req.order_type.value, "time_in_force": req.time_in_force.value,
            "state": o.state.value, "exchange_status": None, "amount": req.amount,
            "filled": o.filled, "price": req.price, "stop_price": req.stop_price,
            "average_price": o.average_price, "fee_usd": o.fee_usd,
            "reduce_only": req.reduce_only, "tag": self.redact(o.tag)[:128],
            "reason": self.redact(o.reason), "origin": "ours", "root_id": o.root_id or None,
            "parent_id": o.replaces, "replaced_by": o.replaced_by,
            "submit_attempts": o.submit_attempts,
            "risk_action": None if d is None else d.action.label,
            "risk_reason": None if d is None else d.reason.label,
            "risk_text": None if d is None else self.redact(d.text),
            "created_at": created, "sent_at": utc(o.sent_at),
            "updated_at": utc(o.updated_at) or created,
        }

    def mark_order(self, client_order_id: str, state: OrderState, reason: str) -> OrderRow:
        """Set a stored order's state by hand (reconcile: "never sent" → rejected, an
        acknowledged order the exchange lost → cancelled). ``KeyError`` if unknown."""
        with self.transaction() as s:
            row = self._order_row(s, client_order_id)
            if row is None:
                raise KeyError(client_order_id)
            if row.state in _TERMINAL and row.state != state.value:
                raise ValueError(f"order {client_order_id} is {row.state}; it cannot become "
                                 f"{state.value}")
            row.state = state.value
            row.reason = self.redact(reason)
            row.updated_at = self.now()
            return row

    def _order_row(self, s: Session, client_order_id: str) -> OrderRow | None:
        return s.scalars(sa.select(OrderRow).where(OrderRow.client_order_id == client_order_id)
                         ).one_or_none()

    def _upsert_order(self, s: Session, order: ManagedOrder | ExchangeOrder,
                      origin: str | None) -> OrderRow:
        row = self._order_row(s, order.client_order_id)
        is_new = row is None
        if row is None:
            row = OrderRow(client_order_id=order.client_order_id, exchange=self.exchange,
                           origin=origin or ("ours" if isinstance(order, ManagedOrder)
                                             else "exchange"))
            s.add(row)
        elif origin is not None:
            row.origin = origin
        if isinstance(order, ManagedOrder):
            self._apply_managed(row, order, is_new)
        else:
            self._apply_exchange(row, order, is_new)
        s.flush()
        return row

    def _guard(self, row: OrderRow, new_state: str, filled: float, *, final_from_exchange: bool,
               source: str) -> bool:
        tol = 1e-12 * max(1.0, row.amount or 0.0)
        if row.state in _TERMINAL and new_state != row.state and not (
                final_from_exchange and new_state in _TERMINAL):
            log.warning("order %s: %s update to %s refused: the stored order is %s",
                        row.client_order_id, source, new_state, row.state)
            return False
        if filled < (row.filled or 0.0) - tol:
            log.warning("order %s: %s update refused: filled would go back from %g to %g",
                        row.client_order_id, source, row.filled, filled)
            return False
        return True

    def _apply_managed(self, row: OrderRow, o: ManagedOrder, is_new: bool) -> None:
        if not is_new and not self._guard(row, o.state.value, o.filled,
                                          final_from_exchange=False, source="manager"):
            return
        req = o.request
        row.exchange_order_id = o.exchange_id or row.exchange_order_id
        row.symbol, row.side = req.symbol, req.side.name.lower()
        row.order_type, row.time_in_force = req.order_type.value, req.time_in_force.value
        row.amount, row.price, row.stop_price = req.amount, req.price, req.stop_price
        row.reduce_only = req.reduce_only
        row.state = o.state.value
        row.filled, row.average_price, row.fee_usd = o.filled, o.average_price, o.fee_usd
        row.tag, row.reason = self.redact(o.tag)[:128], self.redact(o.reason)
        row.root_id, row.parent_id, row.replaced_by = o.root_id or None, o.replaces, o.replaced_by
        row.submit_attempts = o.submit_attempts
        d = o.risk_decision
        if d is not None:
            row.risk_action, row.risk_reason = d.action.label, d.reason.label
            row.risk_text = self.redact(d.text)
        row.created_at = utc(o.created_at) if is_new else row.created_at
        row.sent_at = utc(o.sent_at)
        row.updated_at = utc(o.updated_at) or utc(o.created_at)

    def _apply_exchange(self, row: OrderRow, o: ExchangeOrder, is_new: bool) -> None:
        state = state_from_exchange(o, None if is_new else row.state)
        if not is_new and not self._guard(row, state.value, o.filled, final_from_exchange=True,
                                          source="exchange"):
            return
        if is_new:
            row.symbol, row.side = o.symbol, o.side.name.lower()
            row.order_type, row.price, row.stop_price = o.order_type.value, o.price, o.stop_price
            row.reduce_only, row.created_at = o.reduce_only, utc(o.created_at)
            row.root_id, row.tag, row.reason = o.client_order_id, "", ""
        row.exchange_order_id = o.id
        row.exchange_status = o.status.value
        row.state = state.value
        row.amount = o.amount
        row.filled, row.average_price, row.fee_usd = o.filled, o.average_price, o.fee_usd
        row.updated_at = utc(o.updated_at) or self.now()

    # -- the order manager -----------------------------------------------------------------
    def _drain_start(self, manager: OrderManager) -> int:
        mark = self._drained.get(manager)
        if mark is None:
            return 0
        n, last = mark
        events = manager.events
        if 0 < n <= len(events) and events[n - 1] is last:
            return n
        # the list was trimmed or cleared by someone else: find the last event written
        for i in range(len(events) - 1, -1, -1):
            if events[i] is last:
                return i + 1
        return 0

    def drain_order_manager(self, manager: OrderManager, *, clear: bool = False) -> int:
        """Write the manager's events not written yet, with the current state of every order
        they touch and the risk decisions they mention (one transaction). Returns the number
        of events written. Call it after each :meth:`OrderManager.submit` / ``poll``.

        With ``clear`` the written events are removed from ``manager.events`` (a long-running
        trader keeps memory flat); otherwise the store remembers how far it wrote. Trimming
        the list by other means is noticed too.
        """
        start = self._drain_start(manager)
        events: list[OrderEvent] = manager.events[start:]
        if not events:
            return 0
        touched = dict.fromkeys(e.client_order_id for e in events)
        with self.transaction() as s:
            for cid in touched:
                order = manager.orders.get(cid)
                if order is not None:
                    self._upsert_order(s, order, None)
                    if order.risk_decision is not None and any(
                            e.kind == "risk" and e.client_order_id == cid for e in events):
                        self._add_risk(s, order.risk_decision, cid)
            s.add_all(OrderEventRow(run_id=self.run_id, time=utc(e.time),
                                    client_order_id=e.client_order_id, kind=e.kind[:32],
                                    state=e.state.value, detail=self.redact(e.detail))
                      for e in events if e.client_order_id in manager.orders)
        if clear:
            del manager.events[:start + len(events)]
            self._drained.pop(manager, None)
        else:
            self._drained[manager] = (start + len(events), events[-1])
        return len(events)
