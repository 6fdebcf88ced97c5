"""Alembic environment of the trading database.

Run programmatically by :func:`quantum_trading.live.db.upgrade_database`, which hands over an
engine in ``config.attributes["engine"]``; a plain ``sqlalchemy.url`` option works too (e.g.
``alembic -x`` style use from a script with a :class:`alembic.config.Config`). Offline mode
(``--sql``) renders the SQL for the URL's dialect without connecting.

Logging is left to the application: no ``fileConfig`` here.
"""

from __future__ import annotations

from alembic import context
from alembic.config import Config
from sqlalchemy.engine import Connection

from quantum_trading.live.models import Base

target_metadata = Base.metadata
config: Config | None
try:
    config = context.config
except AttributeError:  # imported outside Alembic (doc tools, test collection): nothing to run
    config = None


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER on SQLite = copy+move
    )


def run_migrations_offline() -> None:
    """Emit the SQL for ``sqlalchemy.url``'s dialect without a database."""
    assert config is not None
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the engine handed over by ``upgrade_database`` (else one made from the URL)."""
    assert config is not None
    engine = config.attributes.get("engine")
    if engine is None:
        from quantum_trading.live.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


# Alembic sets `config` when it runs this file; importing it as a module (e.g. for package
# discovery) must not run migrations.
if config is not None:
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
