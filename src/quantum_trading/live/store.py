"""The trading store: the repository the trader writes its state through.

:class:`TradingStore` turns the execution layer's values — :class:`ManagedOrder`,
:class:`ExchangeOrder`, :class:`ExchangeFill`, :class:`ExchangePosition`, :class:`Balance`,
:class:`RiskDecision`, :class:`ExitAction`, the order manager's events — into rows of
:mod:`quantum_trading.live.models`.

Crash safety
------------
Every method is one transaction: it is written whole or not at all. Every write is idempotent,
so after a crash at any point the trader can simply write again:

* orders are upserted by client order id; a terminal order never becomes live again, ``filled``
  never goes down (such an update is refused and logged, the row kept);
* fills are inserted once per ``(exchange, fill id)``; equity once per ``(exchange, time)``;
  positions are one row per symbol; ``kv`` one row per key;
* :meth:`TradingStore.drain_order_manager` remembers how many of a manager's events it wrote.

Secrets: every free-text value (reasons, tags, alert messages, event details) passes a
:class:`~quantum_trading.live.redact.SecretRedactor` before it is written.

Layout: this module owns the store itself (engine, sessions, clock), runs, fills, positions,
equity, risk decisions, alerts, every read and the key/value state; the order rows — the
write-ahead, the upserts with their guards, :meth:`~TradingStore.mark_order` and
:meth:`~TradingStore.drain_order_manager` — are written by
:class:`~quantum_trading.live.store_orders.OrderPersistence`, which :class:`TradingStore`
inherits.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from quantum_trading.execution.models import Balance, ExchangeFill, ExchangePosition
from quantum_trading.execution.order_manager import OrderManager
from quantum_trading.execution.order_state import ManagedOrder, OrderEvent, OrderState
from quantum_trading.execution.position_monitor import ExitAction
from quantum_trading.live.db import is_sqlite_file, open_database
from quantum_trading.live.models import (
    Alert,
    EquitySnapshot,
    FillRow,
    KeyValue,
    OrderEventRow,
    OrderRow,
    PositionRow,
    RiskDecisionRow,
    Run,
    utc,
)
from quantum_trading.live.raw_statement import RawStatement
from quantum_trading.live.redact import SecretRedactor
from quantum_trading.live.store_orders import (
    _TERMINAL,
    OrderPersistence,
    state_from_exchange,
)
from quantum_trading.live.store_upsert import Upserts
from quantum_trading.live.write_ahead_journal import WriteAheadJournal, journal_path
from quantum_trading.risk.limits import RiskDecision

__all__ = ["ALERT_LEVELS", "WAL_CHECKPOINT_EVERY", "TradingStore", "state_from_exchange"]

ALERT_LEVELS = ("info", "warning", "error", "critical")
"""Allowed values of ``Alert.level``."""

_RISK_COLUMNS = ("time", "client_order_id", "symbol", "action", "reason", "text",
                 "requested_size", "approved_size", "trading_state", "position_before",
                 "price", "equity_usd")
"""The columns of a risk decision's row (all but the key)."""
_FILL_COLUMNS = ("exchange", "fill_id", "exchange_order_id", "client_order_id", "symbol",
                 "side", "amount", "price", "fee_usd", "is_maker", "time", "recorded_at")
"""The columns of a fill's row (all but the key)."""
_RISK_MATCH = ("time", "symbol", "action", "requested_size", "client_order_id")
"""A risk decision is stored once: a row with the same values of these columns is the same
decision (written again after a restart, or by a retry)."""
WAL_CHECKPOINT_EVERY = 64
"""Calls of :meth:`TradingStore.checkpoint_wal` (bars, in the trader) between two checkpoints:
a trader's bar writes ≈ 5 pages, so the log stays near SQLite's default 1,000 pages."""


def _ts(value: datetime | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"__datetime__": pd.Timestamp(value).isoformat()}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    raise TypeError(f"set_state: {type(value).__name__} is not JSON-serialisable")


def _json_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "__datetime__" in obj:
        t = pd.Timestamp(obj["__datetime__"])
        return t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")
    return obj


class TradingStore(OrderPersistence):
    """Orders, fills, positions, equity, risk decisions, alerts and trader state in one
    database (see the module docstring for the guarantees).

    Parameters
    ----------
    engine:
        An engine on a migrated database (:func:`~quantum_trading.live.db.open_database`);
        :meth:`open` does both.
    exchange:
        Name of the exchange (account) the rows belong to (``orders.exchange``,
        ``fills.exchange`` …); reads are limited to it.
    clock:
        Returns "now" as a tz-aware UTC ``pd.Timestamp`` (for ``updated_at`` / ``recorded_at``
        and default times); None = the wall clock.
    redactor:
        Masks secrets in free text; None = one reading the environment now.
    journal:
        On a SQLite database file, write orders ahead to a journal file beside it
        (:meth:`write_ahead`; :mod:`~quantum_trading.live.write_ahead_journal`); False =
        write them ahead into the database. Other databases never use one.

    >>> store = TradingStore.open("sqlite://", exchange="paper")
    >>> store.set_state("trading_state", "active")
    >>> store.get_state("trading_state")
    'active'
    """

    def __init__(self, engine: Engine, *, exchange: str = "default",
                 clock: Callable[[], pd.Timestamp] | None = None,
                 redactor: SecretRedactor | None = None, journal: bool = True) -> None:
        if not isinstance(engine, Engine):
            raise TypeError("TradingStore: engine must be a sqlalchemy Engine")
        if not exchange or len(exchange) > 32:
            raise ValueError(f"TradingStore: exchange name must have 1–32 characters, "
                             f"got {exchange!r}")
        self.engine = engine
        self.exchange = exchange
        self.clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))
        self.redact = redactor or SecretRedactor()
        self.run_id: int | None = None
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._drained: weakref.WeakKeyDictionary[OrderManager, tuple[int, OrderEvent]] = \
            weakref.WeakKeyDictionary()
        self._write_ahead: RawStatement | None = None
        self._skip_insert: RawStatement | None = None
        self._journal = (WriteAheadJournal(journal_path(str(engine.url.database), exchange),
                                           redact=self.redact)
                         if journal and is_sqlite_file(engine.url) else None)
        self._journaled: list[ManagedOrder] = []
        self._risk_insert: RawStatement | None = None
        self._fill_insert: RawStatement | None = None
        self._upserts = Upserts(engine.dialect.name)
        self._since_checkpoint = 0

    @classmethod
    def open(cls, url: str | URL | None = None, **kwargs: Any) -> TradingStore:
        """Open (and migrate to the newest schema) the database at ``url`` (None = the
        default SQLite file) and return a store on it; ``kwargs`` go to the constructor."""
        return cls(open_database(url), **kwargs)

    def now(self) -> pd.Timestamp:
        """The clock's time."""
        return pd.Timestamp(self.clock()).tz_convert("UTC")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: committed on exit, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def checkpoint_wal(self, every: int = WAL_CHECKPOINT_EVERY) -> bool:
        """On a SQLite file, copy the write-ahead log into the database file at every
        ``every``-th call (``PRAGMA wal_checkpoint(PASSIVE)``: it waits for no reader or
        writer); returns whether it ran. The trader calls it after each bar's records, after
        its orders are out: the connections do not checkpoint on their own
        (:func:`~quantum_trading.live.db.make_engine`), so no commit — the write-ahead of an
        order included — pays for it. Other databases: nothing to do (False)."""
        if not is_sqlite_file(self.engine.url):
            return False
        self._since_checkpoint += 1
        if self._since_checkpoint < every:
            return False
        self._since_checkpoint = 0
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        return True

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, *, mode: str = "", note: str = "") -> int:
        """Record a trader start; runs left ``running`` by a dead process become ``crashed``.
        Later events and alerts carry the new run's id."""
        now = self.now()
        with self.transaction() as s:
            s.execute(sa.update(Run).where(Run.exchange == self.exchange, Run.status == "running")
                      .values(status="crashed"))
            run = Run(started_at=now, exchange=self.exchange, mode=mode, status="running",
                      note=self.redact(note))
            s.add(run)
            s.flush()
            self.run_id = run.id
        return run.id

    def end_run(self, status: str = "stopped") -> None:
        """Mark the current run ended (``stopped`` / ``failed``)."""
        if self.run_id is None:
            return
        with self.transaction() as s:
            s.execute(sa.update(Run).where(Run.id == self.run_id)
                      .values(status=status, ended_at=self.now()))

    # -- fills -----------------------------------------------------------------------------
    def record_fill(self, fill: ExchangeFill) -> bool:
        """Store one execution; True if new, False if ``(exchange, fill.id)`` was stored
        already (then nothing changes)."""
        return bool(self.record_fills([fill]))

    def record_fills(self, fills: Iterable[ExchangeFill]) -> list[ExchangeFill]:
        """Store executions not stored yet (one transaction); returns the new ones. On
        SQLite and PostgreSQL each is one ``INSERT … ON CONFLICT DO NOTHING`` sent through the
        driver (:class:`~quantum_trading.live.raw_statement.RawStatement`), elsewhere a read
        and ORM inserts."""
        batch = {f.id: f for f in fills}  # the same id twice in one batch: once
        if not batch:
            return []
        if self._fill_insert is None:
            stmt = self._upserts.insert_or_skip(FillRow.__table__, ("exchange", "fill_id"),
                                                _FILL_COLUMNS)
            if stmt is not None:
                self._fill_insert = RawStatement(self.engine, stmt)
        if self._fill_insert is not None:  # SQLite / PostgreSQL: one statement a fill
            now = utc(self.now())
            fresh = self._fill_insert.run_each([self._fill_values(f, now)
                                                for f in batch.values()])
            return [f for f, n in zip(batch.values(), fresh, strict=True) if n]
        try:
            with self.transaction() as s:
                known = set(s.scalars(sa.select(FillRow.fill_id).where(
                    FillRow.exchange == self.exchange, FillRow.fill_id.in_(list(batch)))))
                new = [f for fid, f in batch.items() if fid not in known]
                now = utc(self.now())
                s.add_all(FillRow(**self._fill_values(f, now)) for f in new)
        except IntegrityError:  # another writer stored some of them meanwhile: one by one
            if len(batch) == 1:
                return []
            return [f for f in batch.values() if self.record_fill(f)]
        return new

    def _fill_values(self, f: ExchangeFill, recorded_at: Any) -> dict[str, Any]:
        """A fill's row (column → value)."""
        return {"exchange": self.exchange, "fill_id": f.id, "exchange_order_id": f.order_id,
                "client_order_id": f.client_order_id, "symbol": f.symbol,
                "side": f.side.name.lower(), "amount": f.amount, "price": f.price,
                "fee_usd": f.fee_usd, "is_maker": f.is_maker, "time": utc(f.time),
                "recorded_at": recorded_at}

    # -- positions, equity -----------------------------------------------------------------
    def record_position(self, position: ExchangePosition, *, time: pd.Timestamp | None = None,
                        source: str = "exchange") -> PositionRow:
        """Set the snapshot of ``position.symbol`` (one row per symbol, overwritten). One
        upsert on SQLite and PostgreSQL (the returned row is then transient, without its
        ``id``), the ORM elsewhere."""
        values = {"exchange": self.exchange, "symbol": position.symbol,
                  "size": float(position.size), "entry_price": float(position.entry_price),
                  "mark_price": float(position.mark_price),
                  "unrealized_pnl_usd": float(position.unrealized_pnl_usd),
                  "leverage": float(position.leverage),
                  "liquidation_price": (None if position.liquidation_price is None
                                        else float(position.liquidation_price)),
                  "source": source, "updated_at": utc(time) or utc(self.now())}
        if self._upserts.run(self.engine, PositionRow.__table__, ("exchange", "symbol"),
                             values):
            return PositionRow(**values)
        with self.transaction() as s:
            row = s.scalars(sa.select(PositionRow).where(
                PositionRow.exchange == self.exchange, PositionRow.symbol == position.symbol)
            ).one_or_none()
            if row is None:
                row = PositionRow(exchange=self.exchange, symbol=position.symbol)
                s.add(row)
            row.size, row.entry_price = position.size, position.entry_price
            row.mark_price = position.mark_price
            row.unrealized_pnl_usd = position.unrealized_pnl_usd
            row.leverage, row.liquidation_price = position.leverage, position.liquidation_price
            row.source, row.updated_at = source, utc(time) or self.now()
            s.flush()
            return row

    def record_flat(self, symbol: str, *, time: pd.Timestamp | None = None,
                    source: str = "exchange") -> PositionRow:
        """Record that ``symbol`` has no position (size 0)."""
        return self.record_position(ExchangePosition(symbol=symbol, size=0.0, entry_price=0.0,
                                                     mark_price=0.0, unrealized_pnl_usd=0.0,
                                                     leverage=1.0),
                                    time=time, source=source)

    def record_equity(self, balance: Balance, *,
                      time: pd.Timestamp | None = None) -> EquitySnapshot:
        """Store the account's money at ``time`` (default now); a second snapshot at the same
        time replaces the first. Returns the row's values (on SQLite and PostgreSQL a
        transient :class:`EquitySnapshot`, not attached to a session, without its ``id``).

        Written after every bar that moved the account: one upsert on SQLite and PostgreSQL
        (:mod:`~quantum_trading.live.store_upsert`), the ORM elsewhere."""
        t = utc(time) or utc(self.now())
        values = {"exchange": self.exchange, "time": t,
                  "equity_usd": float(balance.equity_usd),
                  "wallet_usd": float(balance.wallet_usd), "free_usd": float(balance.free_usd)}
        if self._upserts.run(self.engine, EquitySnapshot.__table__, ("exchange", "time"),
                             values):
            return EquitySnapshot(**values)
        with self.transaction() as s:
            row = s.scalars(sa.select(EquitySnapshot).where(
                EquitySnapshot.exchange == self.exchange, EquitySnapshot.time == t)).one_or_none()
            if row is None:
                row = EquitySnapshot(exchange=self.exchange, time=t)
                s.add(row)
            row.equity_usd, row.wallet_usd = balance.equity_usd, balance.wallet_usd
            row.free_usd = balance.free_usd
            s.flush()
            return row

    # -- risk, alerts, exits ---------------------------------------------------------------
    def record_risk_decision(self, decision: RiskDecision, *,
                             client_order_id: str | None = None) -> bool:
        """Store a risk decision (True) unless the same one is stored already (False)."""
        return self.record_risk_decisions([(decision, client_order_id)]) == 1

    def record_risk_decisions(self, decisions: Iterable[tuple[RiskDecision, str | None]]
                              ) -> int:
        """Store several ``(decision, client order id or None)`` in one transaction (the
        ones stored already — same time, symbol, action, requested size and order — are
        skipped); returns how many were new. On SQLite each is one ``INSERT … WHERE NOT
        EXISTS`` (:meth:`Upserts.insert_absent`) sent through the driver
        (:class:`~quantum_trading.live.raw_statement.RawStatement`), elsewhere a read and an
        ORM insert."""
        items = list(decisions)
        if not items:
            return 0
        if self._risk_insert is None:
            stmt = self._upserts.insert_absent(RiskDecisionRow.__table__, _RISK_COLUMNS,
                                               _RISK_MATCH)
            if stmt is None:
                with self.transaction() as s:
                    return sum(self._add_risk(s, d, cid) for d, cid in items)
            self._risk_insert = RawStatement(self.engine, stmt)
        return self._risk_insert.run([self._risk_values(d, cid) for d, cid in items])

    def _risk_values(self, d: RiskDecision, client_order_id: str | None) -> dict[str, Any]:
        """A risk decision's row (column → value; the text redacted)."""
        return {"time": utc(d.time), "client_order_id": client_order_id, "symbol": d.symbol,
                "action": d.action.label, "reason": d.reason.label,
                "text": self.redact(d.text), "requested_size": d.requested_size,
                "approved_size": d.approved_size, "trading_state": d.trading_state.label,
                "position_before": d.position_before, "price": d.price,
                "equity_usd": d.equity_usd}

    def _add_risk(self, s: Session, d: RiskDecision, client_order_id: str | None) -> bool:
        values = self._risk_values(d, client_order_id)
        table = RiskDecisionRow.__table__
        same = sa.select(table.c.id).where(*(
            table.c[c].is_not_distinct_from(values[c]) if table.c[c].nullable
            else table.c[c] == values[c] for c in _RISK_MATCH))
        if s.scalars(same).first() is not None:
            return False
        s.add(RiskDecisionRow(**values))
        return True

    def record_alert(self, kind: str, message: str, *, level: str = "warning",
                     symbol: str | None = None, client_order_id: str | None = None,
                     time: pd.Timestamp | None = None) -> Alert:
        """Store an alert (``level`` one of :data:`ALERT_LEVELS`). Not logged here: the
        caller logs what it alerts."""
        if level not in ALERT_LEVELS:
            raise ValueError(f"record_alert: level must be one of {ALERT_LEVELS}, got {level!r}")
        with self.transaction() as s:
            row = Alert(run_id=self.run_id, time=utc(time) or utc(self.now()), level=level,
                        kind=kind[:64], message=self.redact(message), symbol=symbol,
                        client_order_id=client_order_id)
            s.add(row)
            s.flush()
            return row

    def record_exit(self, action: ExitAction) -> Alert:
        """Store a position-monitor exit as an ``info`` alert of kind ``exit:<trigger>``."""
        return self.record_alert(f"exit:{action.trigger.value}", action.reason, level="info",
                                 symbol=action.symbol, client_order_id=action.client_order_id,
                                 time=action.time)

    # -- reading ---------------------------------------------------------------------------
    def get_order(self, client_order_id: str) -> OrderRow | None:
        """The stored order with this client order id, or None."""
        with self.transaction() as s:
            return self._order_row(s, client_order_id)

    def _orders(self, *where: Any) -> list[OrderRow]:
        with self.transaction() as s:
            return list(s.scalars(sa.select(OrderRow).where(OrderRow.exchange == self.exchange,
                                                            *where).order_by(OrderRow.id)))

    def open_orders(self, symbol: str | None = None) -> list[OrderRow]:
        """Orders not terminal (new, unknown, open, partially filled, pending cancel)."""
        cond: list[sa.ColumnElement[bool]] = [OrderRow.state.not_in(sorted(_TERMINAL))]
        if symbol is not None:
            cond.append(OrderRow.symbol == symbol)
        return self._orders(*cond)

    def orders_by_status(self, *states: OrderState | str) -> list[OrderRow]:
        """Orders in any of ``states`` (``OrderState`` members or their values), oldest first."""
        values = sorted({OrderState(s).value for s in states})
        return self._orders(OrderRow.state.in_(values))

    def all_orders(self) -> list[OrderRow]:
        """Every stored order of this exchange, oldest first."""
        return self._orders()

    def fills_for(self, client_order_id: str) -> list[FillRow]:
        """The stored fills of one order, oldest first."""
        with self.transaction() as s:
            return list(s.scalars(sa.select(FillRow).where(
                FillRow.exchange == self.exchange, FillRow.client_order_id == client_order_id
            ).order_by(FillRow.time, FillRow.id)))

    def fills(self, symbol: str | None = None) -> list[FillRow]:
        """Every stored fill (of ``symbol``), oldest first."""
        cond: list[sa.ColumnElement[bool]] = [FillRow.exchange == self.exchange]
        if symbol is not None:
            cond.append(FillRow.symbol == symbol)
        with self.transaction() as s:
            return list(s.scalars(sa.select(FillRow).where(*cond).order_by(FillRow.time,
                                                                              FillRow.id)))

    def last_fill_time(self, symbol: str | None = None) -> pd.Timestamp | None:
        """Time of the newest stored fill (of ``symbol``); None when there is none."""
        cond: list[sa.ColumnElement[bool]] = [FillRow.exchange == self.exchange]
        if symbol is not None:
            cond.append(FillRow.symbol == symbol)
        with self.transaction() as s:
            return _ts(s.scalar(sa.select(sa.func.max(FillRow.time)).where(*cond)))

    def positions(self, *, include_flat: bool = False) -> dict[str, PositionRow]:
        """The stored position snapshots by symbol (flat ones only with ``include_flat``)."""
        with self.transaction() as s:
            rows = s.scalars(sa.select(PositionRow).where(PositionRow.exchange == self.exchange))
            return {r.symbol: r for r in rows if include_flat or r.size != 0.0}

    def latest_equity(self) -> EquitySnapshot | None:
        """The newest equity snapshot."""
        with self.transaction() as s:
            return s.scalars(sa.select(EquitySnapshot).where(
                EquitySnapshot.exchange == self.exchange).order_by(
                EquitySnapshot.time.desc()).limit(1)).first()

    def max_equity_since(self, time: pd.Timestamp) -> float | None:
        """The highest stored equity (USDT) strictly after ``time``; None when none."""
        with self.transaction() as s:
            value = s.scalar(sa.select(sa.func.max(EquitySnapshot.equity_usd)).where(
                EquitySnapshot.exchange == self.exchange, EquitySnapshot.time > utc(time)))
            return None if value is None else float(value)

    def risk_decisions(self, client_order_id: str | None = None) -> list[RiskDecisionRow]:
        """Stored risk decisions (of one order), oldest first."""
        stmt = sa.select(RiskDecisionRow).order_by(RiskDecisionRow.time, RiskDecisionRow.id)
        if client_order_id is not None:
            stmt = stmt.where(RiskDecisionRow.client_order_id == client_order_id)
        with self.transaction() as s:
            return list(s.scalars(stmt))

    def alerts(self, kind_prefix: str | None = None) -> list[Alert]:
        """Stored alerts (whose kind starts with ``kind_prefix``), oldest first."""
        stmt = sa.select(Alert).order_by(Alert.time, Alert.id)
        if kind_prefix is not None:
            stmt = stmt.where(Alert.kind.startswith(kind_prefix, autoescape=True))
        with self.transaction() as s:
            return list(s.scalars(stmt))

    def order_events(self, client_order_id: str | None = None) -> list[OrderEventRow]:
        """Stored order events (of one order), in the order they happened."""
        stmt = sa.select(OrderEventRow).order_by(OrderEventRow.id)
        if client_order_id is not None:
            stmt = stmt.where(OrderEventRow.client_order_id == client_order_id)
        with self.transaction() as s:
            return list(s.scalars(stmt))

    # -- key/value state -------------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` (JSON; timestamps come back as UTC
        ``pd.Timestamp``), or ``default``."""
        with self.transaction() as s:
            row = s.get(KeyValue, key)
            return default if row is None else json.loads(row.value, object_hook=_json_hook)

    def state_updated_at(self, key: str) -> pd.Timestamp | None:
        """When ``key`` was last written (the writer's store clock), or None."""
        with self.transaction() as s:
            row = s.get(KeyValue, key)
            return None if row is None else _ts(row.updated_at)

    def set_state(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable; datetimes and numpy scalars allowed) under
        ``key``, replacing what was there."""
        if not key or len(key) > 64:
            raise ValueError(f"set_state: key must have 1–64 characters, got {key!r}")
        text = self.redact(json.dumps(value, default=_json_default, sort_keys=True))
        if self._upserts.run(self.engine, KeyValue.__table__, ("key",),
                             {"key": key, "value": text, "updated_at": utc(self.now())}):
            return
        with self.transaction() as s:
            row = s.get(KeyValue, key)
            if row is None:
                s.add(KeyValue(key=key, value=text, updated_at=utc(self.now())))
            else:
                row.value, row.updated_at = text, utc(self.now())

    def delete_state(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        with self.transaction() as s:
            s.execute(sa.delete(KeyValue).where(KeyValue.key == key))
