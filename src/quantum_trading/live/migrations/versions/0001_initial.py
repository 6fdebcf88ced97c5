"""Initial schema: runs, orders, order events, fills, positions, equity, risk decisions,
alerts and kv.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

Written out in full (no imports from the models), so the migration stays what it was when the
models change later. Times are ``DateTime(timezone=True)`` (naive UTC on SQLite); money and
sizes are doubles; enums are strings.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), autoincrement=True, nullable=False)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, length: int = 64, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _num(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=nullable)


def _text(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _indexes(table: str, *columns: str) -> None:
    for column in columns:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column], unique=False)


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "runs", _id(), _time("started_at"), _time("ended_at", nullable=True),
        _str("exchange", 32), _str("mode", 16), _str("status", 16), _text("note"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_table(
        "orders", _id(), _str("client_order_id"), _str("exchange_order_id", nullable=True),
        _str("exchange", 32), _str("symbol"), _str("side", 4), _str("order_type", 32),
        _str("time_in_force", 8), _str("state", 20), _str("exchange_status", 20, nullable=True),
        _num("amount"), _num("filled"), _num("price", nullable=True),
        _num("stop_price", nullable=True), _num("average_price", nullable=True), _num("fee_usd"),
        sa.Column("reduce_only", sa.Boolean(), nullable=False), _str("tag", 128),
        _text("reason"), _str("origin", 16), _str("root_id", nullable=True),
        _str("parent_id", nullable=True), _str("replaced_by", nullable=True),
        sa.Column("submit_attempts", sa.Integer(), nullable=False),
        _str("risk_action", 16, nullable=True), _str("risk_reason", 32, nullable=True),
        _text("risk_text", nullable=True), _time("created_at"),
        _time("sent_at", nullable=True), _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
    )
    _indexes("orders", "exchange", "exchange_order_id", "state", "symbol")
    op.create_table(
        "order_events", _id(), sa.Column("run_id", sa.Integer(), nullable=True), _time("time"),
        _str("client_order_id"), _str("kind", 32), _str("state", 20), _text("detail"),
        sa.ForeignKeyConstraint(["client_order_id"], ["orders.client_order_id"],
                                name=op.f("fk_order_events_client_order_id_orders")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_order_events_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
    )
    _indexes("order_events", "client_order_id", "run_id")
    op.create_table(
        "fills", _id(), _str("exchange", 32), _str("fill_id"), _str("exchange_order_id"),
        _str("client_order_id"), _str("symbol"), _str("side", 4), _num("amount"), _num("price"),
        _num("fee_usd"), sa.Column("is_maker", sa.Boolean(), nullable=False), _time("time"),
        _time("recorded_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("exchange", "fill_id", name=op.f("uq_fills_exchange_fill_id")),
    )
    _indexes("fills", "client_order_id", "symbol", "time")
    op.create_table(
        "positions", _id(), _str("exchange", 32), _str("symbol"), _num("size"),
        _num("entry_price"), _num("mark_price"), _num("unrealized_pnl_usd"), _num("leverage"),
        _num("liquidation_price", nullable=True), _str("source", 16), _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
        sa.UniqueConstraint("exchange", "symbol", name=op.f("uq_positions_exchange_symbol")),
    )
    op.create_table(
        "equity", _id(), _str("exchange", 32), _time("time"), _num("equity_usd"),
        _num("wallet_usd"), _num("free_usd"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equity")),
        sa.UniqueConstraint("exchange", "time", name=op.f("uq_equity_exchange_time")),
    )
    _indexes("equity", "time")
    op.create_table(
        "risk_decisions", _id(), _time("time"), _str("client_order_id", nullable=True),
        _str("symbol"), _str("action", 16), _str("reason", 32), _text("text"),
        _num("requested_size"), _num("approved_size"), _str("trading_state", 16),
        _num("position_before"), _num("price"), _num("equity_usd"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_decisions")),
    )
    _indexes("risk_decisions", "client_order_id", "time")
    op.create_table(
        "alerts", _id(), sa.Column("run_id", sa.Integer(), nullable=True), _time("time"),
        _str("level", 16), _str("kind"), _text("message"), _str("symbol", nullable=True),
        _str("client_order_id", nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_alerts_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    _indexes("alerts", "run_id", "time")
    op.create_table(
        "kv", _str("key"), _text("value"), _time("updated_at"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_kv")),
    )


def downgrade() -> None:
    """Drop every table (the data goes with them)."""
    for table in ("kv", "alerts", "risk_decisions", "equity", "positions", "fills",
                  "order_events", "orders", "runs"):
        op.drop_table(table)
