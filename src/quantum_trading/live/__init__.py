"""Live trading: persistence (SQLAlchemy 2, Alembic migrations) and restart reconciliation.

* :mod:`~quantum_trading.live.models` — the tables (orders, order events, fills, positions,
  equity, risk decisions, alerts, runs, kv);
* :mod:`~quantum_trading.live.db` — engines (SQLite by default at ``user_data/db/``, any
  SQLAlchemy URL) and the shipped migrations, applied on start;
* :mod:`~quantum_trading.live.store` — :class:`TradingStore`, the repository the trader writes
  through (one transaction a call, idempotent writes; its order rows in
  :mod:`~quantum_trading.live.store_orders`);
* :mod:`~quantum_trading.live.reconcile` — :func:`reconcile`, run on start before trading;
* :mod:`~quantum_trading.live.redact` — keeps API keys and secrets out of the database and logs.
"""

from __future__ import annotations

from quantum_trading.live.db import (
    current_revision,
    default_url,
    head_revision,
    make_engine,
    open_database,
    safe_url,
    upgrade_database,
)
from quantum_trading.live.reconcile import (
    Difference,
    ReconcileError,
    ReconcileReport,
    reconcile,
)
from quantum_trading.live.redact import RedactingFilter, SecretRedactor
from quantum_trading.live.store import TradingStore

__all__ = [
    "Difference",
    "ReconcileError",
    "ReconcileReport",
    "RedactingFilter",
    "SecretRedactor",
    "TradingStore",
    "current_revision",
    "default_url",
    "head_revision",
    "make_engine",
    "open_database",
    "reconcile",
    "safe_url",
    "upgrade_database",
]
