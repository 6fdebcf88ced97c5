"""Alembic migrations of the trading database (run by
:func:`quantum_trading.live.db.upgrade_database`)."""
