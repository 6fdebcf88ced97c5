"""The trading database: SQLAlchemy 2 typed ORM models (freqtrade's ``persistence/`` style).

One row type a table:

==================  ==========================================================================
``orders``          every order we made or adopted, upserted by ``client_order_id`` (unique)
``order_events``    the order manager's audit log (:class:`~quantum_trading.execution.
                    order_state.OrderEvent`), append-only
``fills``           executions, unique per ``(exchange, fill_id)``: inserting one twice is a no-op
``positions``       the latest snapshot per ``(exchange, symbol)`` (signed size; 0 = flat)
``equity``          equity / wallet / free snapshots, unique per ``(exchange, time)``
``risk_decisions``  every :class:`~quantum_trading.risk.limits.RiskDecision` recorded
``alerts``          time, level, kind, message (reconcile differences, exits, errors)
``runs``            one row per trader start (started / ended, status)
``kv``              small trader state: last processed bar, trading state, kill switch …
==================  ==========================================================================

Conventions: times are stored as UTC (:class:`UTCDateTime` — naive UTC on SQLite, ``timestamp
with time zone`` elsewhere) and come back tz-aware UTC; sizes in base units, prices and money
in USDT (``_usd``); enums as their string values (no database enum types, so PostgreSQL and
SQLite share one migration). Nothing here is SQLite-specific. API keys and secrets have no
column anywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "NAMING_CONVENTION",
    "Alert",
    "Base",
    "EquitySnapshot",
    "FillRow",
    "KeyValue",
    "OrderEventRow",
    "OrderRow",
    "PositionRow",
    "RiskDecisionRow",
    "Run",
    "UTCDateTime",
    "utc",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations name the same things on every backend."""

ID = 64  # length of id columns (client order ids are at most 36 characters)


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: datetime | None) -> datetime | None:
    """``value`` as a tz-aware UTC ``datetime`` (naive values are taken as UTC).

    ``pd.Timestamp`` is accepted (it is a ``datetime``); nanoseconds are dropped.

    >>> utc(datetime(2024, 1, 1, 12)).isoformat()
    '2024-01-01T12:00:00+00:00'
    """
    if value is None:
        return None
    to_py = getattr(value, "to_pydatetime", None)
    if to_py is not None:  # pd.Timestamp
        value = to_py(warn=False)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A ``DateTime(timezone=True)`` that always stores UTC and always returns tz-aware UTC.

    SQLite has no time zones: values are stored there as naive UTC and read back with
    ``tzinfo=UTC`` attached.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime: expected a datetime, got {type(value).__name__}")
        out = utc(value)
        return out.replace(tzinfo=None) if dialect.name == "sqlite" else out

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return utc(value)


class Base(DeclarativeBase):
    """Declarative base of every table (its ``metadata`` is what the migrations build)."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy's class-level configuration
        datetime: UTCDateTime(),
        float: sa.Double(),
        bool: sa.Boolean(),
        int: sa.Integer(),
        str: sa.String(ID),
    }


class Run(Base):
    """One start of the trader: ``status`` is ``running`` until it ends (``stopped`` /
    ``failed``); a ``running`` row found at start belongs to a process that died."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    exchange: Mapped[str] = mapped_column(sa.String(32))
    mode: Mapped[str] = mapped_column(sa.String(16), default="")
    status: Mapped[str] = mapped_column(sa.String(16), default="running")
    note: Mapped[str] = mapped_column(sa.Text, default="")


class OrderRow(Base):
    """An order: what we asked (request), where it stands (state) and what the exchange said.

    ``state`` is our :class:`~quantum_trading.execution.order_state.OrderState` value (which
    adds ``unknown`` and ``pending_cancel`` to the exchange's statuses); ``exchange_status``
    the last :class:`~quantum_trading.execution.models.LiveOrderStatus` the exchange reported.
    ``root_id`` / ``parent_id`` / ``replaced_by`` link a re-price chain. ``origin``: ``ours``
    (the order manager), ``exchange`` (first seen in an exchange snapshot), ``adopted`` /
    ``foreign`` (open on the exchange, unknown to us, at reconcile: kept / cancelled).
    """

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(unique=True)
    exchange_order_id: Mapped[str | None] = mapped_column(index=True)
    exchange: Mapped[str] = mapped_column(sa.String(32), index=True)
    symbol: Mapped[str] = mapped_column(index=True)
    side: Mapped[str] = mapped_column(sa.String(4))
    order_type: Mapped[str] = mapped_column(sa.String(32))
    time_in_force: Mapped[str] = mapped_column(sa.String(8), default="GTC")
    state: Mapped[str] = mapped_column(sa.String(20), index=True)
    exchange_status: Mapped[str | None] = mapped_column(sa.String(20))
    amount: Mapped[float]
    filled: Mapped[float] = mapped_column(default=0.0)
    price: Mapped[float | None]
    stop_price: Mapped[float | None]
    average_price: Mapped[float | None]
    fee_usd: Mapped[float] = mapped_column(default=0.0)
    reduce_only: Mapped[bool] = mapped_column(default=False)
    tag: Mapped[str] = mapped_column(sa.String(128), default="")
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    origin: Mapped[str] = mapped_column(sa.String(16), default="ours")
    root_id: Mapped[str | None]
    parent_id: Mapped[str | None]
    replaced_by: Mapped[str | None]
    submit_attempts: Mapped[int] = mapped_column(default=0)
    risk_action: Mapped[str | None] = mapped_column(sa.String(16))
    risk_reason: Mapped[str | None] = mapped_column(sa.String(32))
    risk_text: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    def __repr__(self) -> str:
        return (f"OrderRow({self.client_order_id!r}, {self.symbol!r}, {self.side} "
                f"{self.amount:g} {self.order_type}, state={self.state!r}, filled={self.filled:g})")


class OrderEventRow(Base):
    """One order-manager event (created, risk, sent, transition, fill, timeout, …)."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"), index=True)
    time: Mapped[datetime]
    client_order_id: Mapped[str] = mapped_column(
        sa.ForeignKey("orders.client_order_id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    state: Mapped[str] = mapped_column(sa.String(20))
    detail: Mapped[str] = mapped_column(sa.Text, default="")


class FillRow(Base):
    """One execution of an order; ``(exchange, fill_id)`` is unique (idempotent inserts).

    No foreign key to ``orders``: fills of orders we never made (manual trades, liquidations)
    are the account's history too.
    """

    __tablename__ = "fills"
    __table_args__ = (sa.UniqueConstraint("exchange", "fill_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(sa.String(32))
    fill_id: Mapped[str]
    exchange_order_id: Mapped[str]
    client_order_id: Mapped[str] = mapped_column(index=True)
    symbol: Mapped[str] = mapped_column(index=True)
    side: Mapped[str] = mapped_column(sa.String(4))
    amount: Mapped[float]
    price: Mapped[float]
    fee_usd: Mapped[float]
    is_maker: Mapped[bool]
    time: Mapped[datetime] = mapped_column(index=True)
    recorded_at: Mapped[datetime]


class PositionRow(Base):
    """The latest position snapshot per ``(exchange, symbol)``: signed ``size`` (0 = flat)."""

    __tablename__ = "positions"
    __table_args__ = (sa.UniqueConstraint("exchange", "symbol"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(sa.String(32))
    symbol: Mapped[str]
    size: Mapped[float]
    entry_price: Mapped[float]
    mark_price: Mapped[float]
    unrealized_pnl_usd: Mapped[float]
    leverage: Mapped[float]
    liquidation_price: Mapped[float | None]
    source: Mapped[str] = mapped_column(sa.String(16), default="exchange")
    updated_at: Mapped[datetime]


class EquitySnapshot(Base):
    """Account money at ``time`` (USDT); one row per ``(exchange, time)``."""

    __tablename__ = "equity"
    __table_args__ = (sa.UniqueConstraint("exchange", "time"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(sa.String(32))
    time: Mapped[datetime] = mapped_column(index=True)
    equity_usd: Mapped[float]
    wallet_usd: Mapped[float]
    free_usd: Mapped[float]


class RiskDecisionRow(Base):
    """One risk-engine decision (:meth:`RiskDecision.as_dict` plus the order it was for)."""

    __tablename__ = "risk_decisions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(index=True)
    client_order_id: Mapped[str | None] = mapped_column(index=True)
    symbol: Mapped[str]
    action: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.String(32))
    text: Mapped[str] = mapped_column(sa.Text, default="")
    requested_size: Mapped[float]
    approved_size: Mapped[float]
    trading_state: Mapped[str] = mapped_column(sa.String(16))
    position_before: Mapped[float]
    price: Mapped[float]
    equity_usd: Mapped[float]


class Alert(Base):
    """Something a person should see: ``level`` info / warning / error / critical, ``kind`` a
    short key (``reconcile:order_closed``, ``exit:stop_loss`` …), ``message`` the sentence."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"), index=True)
    time: Mapped[datetime] = mapped_column(index=True)
    level: Mapped[str] = mapped_column(sa.String(16))
    kind: Mapped[str]
    message: Mapped[str] = mapped_column(sa.Text)
    symbol: Mapped[str | None]
    client_order_id: Mapped[str | None]


class KeyValue(Base):
    """Small trader state as JSON text under a key (``last_bar_time``, ``trading_state`` …)."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime]
