"""Restart reconciliation: make the database agree with the exchange before trading.

:func:`reconcile` runs once on start, before the trader sends anything. The exchange is the
truth; the database is brought in line and every difference is reported (a
:class:`Difference` in the :class:`ReconcileReport`, a log line and an alert row each):

=====================  ===================================================================
kind                   what was found → what is done
=====================  ===================================================================
``order_found``        stored NEW/UNKNOWN (answer lost), the exchange has it → updated
``order_never_sent``   stored NEW/UNKNOWN, the exchange never saw it → marked rejected;
                       **never re-sent** (the strategy decides again, with fresh data)
``order_closed``       stored live, terminal on the exchange → updated (its fills fetched)
``order_changed``      stored live, still live but with other fills / state → updated
``order_lost``         stored live (acknowledged), unknown to the exchange → cancelled
``cancel_completed``   stored pending-cancel, still live on the exchange → cancelled there
``order_unknown``      live on the exchange, not stored → adopted (inserted) or cancelled
``order_stray``        live on the exchange, terminal in the database → cancelled there
``fills_missing``      executions not stored (per order) → stored (idempotent)
``position_mismatch``  stored size differs from the exchange's → the exchange's stored
=====================  ===================================================================

First, orders the last run wrote ahead to its journal but not into the database (a crash
between the two, :meth:`TradingStore.recover_write_ahead`) are stored, in state NEW, so the
checks below see them. Nothing here ever creates an order. If the exchange cannot be read (open orders, positions,
balance) :class:`ReconcileError` is raised and the trader must not start; a single order that
could not be queried is listed in :attr:`ReconcileReport.unresolved` (``report.ok`` is False):
trade only when ``report.ok``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from quantum_trading.errors import ConfigError, ExchangeError
from quantum_trading.execution.errors import OrderNotFound
from quantum_trading.execution.models import (
    Balance,
    ExchangeFill,
    ExchangeOrder,
    ExchangePosition,
)
from quantum_trading.execution.order_state import OrderState
from quantum_trading.execution.protocol import Exchange
from quantum_trading.live.models import OrderRow
from quantum_trading.live.store import TradingStore, state_from_exchange

__all__ = ["Difference", "ReconcileError", "ReconcileReport", "reconcile"]

log = logging.getLogger(__name__)

S = OrderState
_UNSENT = (S.NEW.value, S.UNKNOWN.value)
_FINAL = (S.FILLED.value, S.CANCELLED.value, S.REJECTED.value, S.EXPIRED.value)
_LEVELS = {"order_lost": "error", "order_stray": "error", "position_mismatch": "error",
           "order_unknown": "warning"}
FILL_OVERLAP = pd.Timedelta(minutes=5)
"""Fills are fetched from this long before the newest stored one (overlap is harmless)."""


class ReconcileError(ExchangeError):
    """The exchange could not be read; the trader must not start."""


@dataclass(frozen=True)
class Difference:
    """One thing the database and the exchange disagreed on, and what was done about it.

    ``db_value`` / ``exchange_value`` describe each side in words (``"open, filled 0"``);
    ``client_order_id`` is None for positions.
    """

    kind: str
    symbol: str
    client_order_id: str | None
    db_value: str
    exchange_value: str
    action: str

    def message(self) -> str:
        """One line for logs and alerts."""
        who = f" {self.client_order_id}" if self.client_order_id else ""
        return (f"reconcile {self.kind}: {self.symbol}{who}: database {self.db_value}; "
                f"exchange {self.exchange_value} → {self.action}")


@dataclass(frozen=True)
class ReconcileReport:
    """What :func:`reconcile` found and did.

    ``open_orders``: client ids live on the exchange afterwards (adopted and ours);
    ``positions``: signed sizes by symbol on the exchange; ``fills_added``: executions stored;
    ``unresolved``: orders or symbols that could not be checked (then ``ok`` is False).
    """

    time: pd.Timestamp
    exchange: str
    differences: tuple[Difference, ...]
    orders_checked: int
    fills_added: int
    open_orders: tuple[str, ...]
    positions: Mapping[str, float]
    balance: Balance
    unresolved: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when everything could be checked (differences were all resolved)."""
        return not self.unresolved

    def of_kind(self, kind: str) -> list[Difference]:
        """The differences of one kind."""
        return [d for d in self.differences if d.kind == kind]


def _describe(row: OrderRow) -> str:
    return f"{row.state}, filled {row.filled:g}"


def _snap(order: ExchangeOrder) -> str:
    return f"{order.status.value}, filled {order.filled:g}"


class _Run:
    """One reconciliation (state shared by the steps)."""

    def __init__(self, store: TradingStore, exchange: Exchange, now: pd.Timestamp) -> None:
        self.store, self.exchange, self.now = store, exchange, now
        self.differences: list[Difference] = []
        self.unresolved: list[str] = []
        self.fill_since: dict[str, pd.Timestamp | None] = {}

    def note(self, kind: str, symbol: str, cid: str | None, db: str, ex: str, action: str) -> None:
        d = Difference(kind, symbol, cid, db, ex, action)
        self.differences.append(d)
        level = _LEVELS.get(kind, "warning")
        text = self.store.redact(d.message())
        log.log(logging.ERROR if level == "error" else logging.WARNING, "%s", text)
        self.store.record_alert(f"reconcile:{kind}", text, level=level, symbol=symbol,
                                client_order_id=cid, time=self.now)

    def fail(self, what: str, exc: BaseException) -> None:
        text = self.store.redact(f"{what}: {type(exc).__name__}: {exc}")
        self.unresolved.append(text)
        log.error("reconcile: %s", text)
        self.store.record_alert("reconcile:unresolved", text, level="error", time=self.now)

    def want_fills(self, symbol: str, since: pd.Timestamp | None) -> None:
        """Fetch ``symbol``'s fills from ``since`` (None = as far back as the exchange goes)."""
        if symbol in self.fill_since:
            old = self.fill_since[symbol]
            since = None if old is None or since is None else min(old, since)
        self.fill_since[symbol] = since

    # -- orders we stored as not terminal --------------------------------------------------
    async def check_stored(self, row: OrderRow, live: Mapping[str, ExchangeOrder]) -> None:
        cid = row.client_order_id
        snap = live.get(cid)
        if snap is None:
            try:
                snap = await self.exchange.fetch_order(row.symbol, client_order_id=cid)
            except OrderNotFound:
                if row.state in _UNSENT:
                    self.store.mark_order(cid, S.REJECTED, "never sent: the exchange did not "
                                          "know it at reconcile; not re-sent")
                    self.note("order_never_sent", row.symbol, cid, _describe(row), "not found",
                              "marked rejected; not re-sent")
                else:
                    self.store.mark_order(cid, S.CANCELLED, "acknowledged, but unknown to the "
                                          "exchange at reconcile")
                    self.note("order_lost", row.symbol, cid, _describe(row), "not found",
                              "marked cancelled")
                return
            except ExchangeError as exc:
                self.fail(f"fetch_order {cid}", exc)
                return
        self.want_fills(row.symbol, pd.Timestamp(row.created_at) - FILL_OVERLAP)
        if row.state == S.PENDING_CANCEL.value and not snap.is_terminal:
            try:
                snap = await self.exchange.cancel_order(row.symbol, client_order_id=cid)
            except ExchangeError as exc:
                self.fail(f"cancel_order {cid}", exc)
                self.store.record_order(snap)
                return
            self.store.record_order(snap)
            self.note("cancel_completed", row.symbol, cid, _describe(row), "live",
                      f"cancelled on the exchange ({_snap(snap)})")
            return
        new_state = state_from_exchange(snap, row.state)
        tol = 1e-12 * max(1.0, row.amount)
        changed = new_state.value != row.state or abs(snap.filled - row.filled) > tol
        self.store.record_order(snap)
        if not changed:
            return
        if row.state in _UNSENT:
            kind = "order_found"
        elif snap.is_terminal:
            kind = "order_closed"
        else:
            kind = "order_changed"
        self.note(kind, row.symbol, cid, _describe(row), _snap(snap),
                  f"updated from the exchange ({new_state.value})")

    # -- orders live on the exchange -------------------------------------------------------
    async def check_live(self, snap: ExchangeOrder, policy: str) -> str | None:
        """Returns the client id if the order stays live on the exchange."""
        cid = snap.client_order_id
        row = self.store.get_order(cid)
        if row is None and policy == "adopt":
            self.store.record_order(snap, origin="adopted")
            self.want_fills(snap.symbol, snap.created_at - FILL_OVERLAP)
            self.note("order_unknown", snap.symbol, cid, "absent", _snap(snap), "adopted")
            return cid
        kind = "order_unknown" if row is None else "order_stray"
        db = "absent" if row is None else _describe(row)
        try:
            final = await self.exchange.cancel_order(snap.symbol, client_order_id=cid)
        except ExchangeError as exc:
            self.fail(f"cancel_order {cid}", exc)
            if row is None:
                self.store.record_order(snap, origin="foreign")
            self.note(kind, snap.symbol, cid, db, _snap(snap), "cancel failed")
            return cid
        self.store.record_order(final, origin="foreign" if row is None else None)
        self.want_fills(snap.symbol, snap.created_at - FILL_OVERLAP)
        self.note(kind, snap.symbol, cid, db, _snap(snap),
                  f"cancelled on the exchange ({final.status.value})")
        return None

    # -- fills and positions ---------------------------------------------------------------
    async def sync_fills(self) -> int:
        added = 0
        for symbol, since in sorted(self.fill_since.items()):
            try:
                fills = await self.exchange.fills(symbol, since=since)
            except ExchangeError as exc:
                self.fail(f"fills {symbol}", exc)
                continue
            new = self.store.record_fills(fills)
            added += len(new)
            by_order: dict[str, list[ExchangeFill]] = defaultdict(list)
            for f in new:
                by_order[f.client_order_id].append(f)
            for cid, group in by_order.items():
                amount = sum(f.amount for f in group)
                self.note("fills_missing", symbol, cid, "absent",
                          f"{len(group)} fill(s), {amount:g} units", "stored")
        return added

    def sync_positions(self, positions: Mapping[str, ExchangePosition]) -> None:
        stored = self.store.positions()
        for symbol in sorted(set(stored) | set(positions)):
            db = stored[symbol].size if symbol in stored else 0.0
            pos = positions.get(symbol)
            ex = pos.size if pos is not None else 0.0
            if abs(db - ex) > 1e-9 * max(1.0, abs(db), abs(ex)):
                self.note("position_mismatch", symbol, None, f"size {db:g}", f"size {ex:g}",
                          "the exchange's position stored")
            if pos is not None:
                self.store.record_position(pos, time=self.now, source="reconcile")
            else:
                self.store.record_flat(symbol, time=self.now, source="reconcile")


async def reconcile(store: TradingStore, exchange: Exchange, *,
                    unknown_orders: Literal["adopt", "cancel"] = "cancel",
                    fills_since: pd.Timestamp | None = None,
                    now: pd.Timestamp | None = None) -> ReconcileReport:
    """Bring ``store`` in line with ``exchange`` (see the module docstring); call it on start,
    before trading.

    Parameters
    ----------
    store:
        The trading database.
    exchange:
        Any :class:`~quantum_trading.execution.protocol.Exchange`.
    unknown_orders:
        What to do with orders live on the exchange that the database does not know (by
        client order id): ``"adopt"`` (store them and keep them) or ``"cancel"`` (cancel them
        and store them as ``foreign``).
    fills_since:
        Fetch fills from this time for every symbol concerned; None = from 5 minutes before
        the newest stored fill of the symbol or the oldest order being checked, whichever is
        earlier (everything the exchange returns when neither exists).
    now:
        Time stamped on alerts, snapshots and the report (default: the store's clock).

    Raises
    ------
    ReconcileError
        When open orders, positions or the balance cannot be read.

    >>> report = asyncio.run(reconcile(store, exchange, unknown_orders="adopt"))  # doctest: +SKIP
    >>> report.ok, [d.kind for d in report.differences]  # doctest: +SKIP
    (True, ['order_closed', 'fills_missing'])
    """
    if unknown_orders not in ("adopt", "cancel"):
        raise ConfigError(f"reconcile: unknown_orders must be 'adopt' or 'cancel', got "
                          f"{unknown_orders!r}")
    now = store.now() if now is None else pd.Timestamp(now).tz_convert("UTC")
    run = _Run(store, exchange, now)
    recovered, unreadable = store.recover_write_ahead()  # a crash after write-ahead
    if recovered:
        log.warning("reconcile: %d order(s) written ahead by the last run were only in its "
                    "journal: stored now (state new), checked below", recovered)
    for problem in unreadable:
        text = store.redact(f"write-ahead journal line skipped: {problem}")
        log.warning("reconcile: %s", text)
        store.record_alert("reconcile:journal", text, level="warning", time=now)
    try:
        live = await exchange.open_orders()
        positions = await exchange.positions()
        balance = await exchange.balance()
    except ExchangeError as exc:
        text = store.redact(f"cannot read the exchange: {type(exc).__name__}: {exc}")
        log.critical("reconcile: %s", text)
        store.record_alert("reconcile:failed", text, level="critical", time=now)
        # the cause's text is in the (redacted) message; chaining it would carry it unmasked
        raise ReconcileError(f"reconcile: {text}") from None
    live_by_cid = {o.client_order_id: o for o in live}

    stored_open = store.open_orders()
    for row in stored_open:
        await run.check_stored(row, live_by_cid)
    handled = {row.client_order_id for row in stored_open}
    still_live = []
    for snap in live:
        if snap.client_order_id in handled:  # ours: checked above; live unless cancelled there
            now_row = store.get_order(snap.client_order_id)
            if now_row is not None and now_row.state not in _FINAL:
                still_live.append(snap.client_order_id)
            continue
        cid = await run.check_live(snap, unknown_orders)
        if cid is not None:
            still_live.append(cid)

    for symbol in set(positions) | set(store.positions()):
        run.want_fills(symbol, None)
    for symbol, since in list(run.fill_since.items()):
        if fills_since is not None:
            run.fill_since[symbol] = pd.Timestamp(fills_since)
            continue
        last = store.last_fill_time(symbol)
        if last is not None:  # stored fills up to `last`: fetch from there (or earlier)
            start = last - FILL_OVERLAP
            run.fill_since[symbol] = start if since is None else min(start, since)
    fills_added = await run.sync_fills()
    run.sync_positions(positions)
    store.record_equity(balance, time=now)

    report = ReconcileReport(
        time=now, exchange=store.exchange, differences=tuple(run.differences),
        orders_checked=len(stored_open) + len(set(live_by_cid) - handled), fills_added=fills_added,
        open_orders=tuple(still_live), positions={s: p.size for s, p in positions.items()},
        balance=balance, unresolved=tuple(run.unresolved))
    store.set_state("last_reconcile", {"time": now, "differences": len(run.differences),
                                       "unresolved": len(run.unresolved), "ok": report.ok})
    log.info("reconcile: %d difference(s), %d unresolved, %d fill(s) stored, %d open order(s)",
             len(run.differences), len(run.unresolved), fills_added, len(still_live))
    return report

