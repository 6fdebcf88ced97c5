"""Engines and migrations of the trading database.

* :func:`make_engine` — an engine for any SQLAlchemy URL; the default is SQLite at
  ``user_data/db/quantum.sqlite`` (WAL journal, ``synchronous=NORMAL``, foreign keys on).
* :func:`upgrade_database` — applies the Alembic migrations shipped inside the package
  (``quantum_trading/live/migrations``) up to ``head``; no ``alembic.ini`` is needed.
  Upgrading a database that is already current does nothing.
* :func:`open_database` — both: what the trader calls on start.

URLs carry passwords (``postgresql+psycopg://user:pw@host/db``): they are only ever shown with
the password masked (:func:`safe_url`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from quantum_trading.paths import user_data_dir

__all__ = [
    "DEFAULT_DB_NAME",
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "default_url",
    "head_revision",
    "make_engine",
    "open_database",
    "safe_url",
    "upgrade_database",
]

log = logging.getLogger(__name__)

DEFAULT_DB_NAME = "quantum.sqlite"
"""File name of the default SQLite database under ``user_data/db/``."""

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script folder shipped inside the package."""


def default_url(user_data: str | Path | None = None) -> str:
    """``sqlite:///<user_data>/db/quantum.sqlite``
    (see :func:`quantum_trading.paths.user_data_dir`).

    >>> default_url("/tmp/ud")
    'sqlite:////tmp/ud/db/quantum.sqlite'
    """
    path = user_data_dir(user_data) / "db" / DEFAULT_DB_NAME
    return f"sqlite:///{path.resolve() if not path.is_absolute() else path}"


def safe_url(url: str | URL | Engine) -> str:
    """The URL with its password masked, for logs and messages.

    >>> safe_url("postgresql+psycopg://bot:hunter2@db:5432/trading")
    'postgresql+psycopg://bot:***@db:5432/trading'
    """
    if isinstance(url, Engine):
        url = url.url
    return make_url(url).render_as_string(hide_password=True)


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def is_sqlite_file(url: URL) -> bool:
    """Whether ``url`` is a SQLite database in a file (not ``sqlite://`` in memory, not a
    ``mode=memory`` URI): what has a folder beside it for the write-ahead journal and a
    write-ahead log to checkpoint.

    >>> from sqlalchemy.engine import make_url
    >>> is_sqlite_file(make_url("sqlite:///t.sqlite")), is_sqlite_file(make_url("sqlite://"))
    (True, False)
    """
    return (url.get_backend_name() == "sqlite" and not _is_memory(url)
            and "mode=memory" not in str(url))


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # no checkpoint inside a commit (it stalled one every ~1,000 pages by 4–5 ms, the
        # write-ahead of an order among them): the trader checkpoints after a bar's records
        # (TradingStore.checkpoint_wal), and SQLite when the last connection closes
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    finally:
        cursor.close()


def make_engine(url: str | URL | None = None, *, echo: bool = False) -> Engine:
    """An engine for the trading database.

    Parameters
    ----------
    url:
        Any SQLAlchemy URL (``sqlite:///path.sqlite``, ``postgresql+psycopg://…`` — the driver
        must be installed by the user); None = :func:`default_url`. For a SQLite file its
        folder is created; ``sqlite://`` (in memory) shares one connection, so every session
        sees the same database.
    echo:
        Log every SQL statement (SQLAlchemy's ``echo``).

    SQLite connections get ``PRAGMA journal_mode=WAL``, ``synchronous=NORMAL``,
    ``foreign_keys=ON``, a 5 s busy timeout and ``wal_autocheckpoint=0``: no commit copies the
    write-ahead log into the database file on its own (SQLite's default does it in the commit
    that passes 1,000 pages, a 4–5 ms stall there); the trader does it after a bar's records
    (:meth:`~quantum_trading.live.store.TradingStore.checkpoint_wal`), and SQLite does it when
    the last connection to the file closes.

    >>> engine = make_engine("sqlite://")
    >>> engine.dialect.name
    'sqlite'
    """
    parsed = make_url(default_url() if url is None else url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        if _is_memory(parsed):
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            assert parsed.database is not None
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs["pool_pre_ping"] = True
    engine = sa.create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(engine: Engine | None = None) -> Any:
    """An ``alembic.config.Config`` for the shipped migrations (no ini file).

    With ``engine``, migrations run on that engine (its URL is set, password masked only in
    Alembic's own messages; the engine itself is handed over in ``config.attributes``).
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.attributes["engine"] = engine
        # '%' must be doubled for configparser; the engine in attributes is what env.py uses
        cfg.set_main_option("sqlalchemy.url", safe_url(engine).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration shipped with the package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_database(url: str | URL | Engine | None = None, revision: str = "head") -> Engine:
    """Apply the shipped migrations up to ``revision``; returns the engine used.

    Idempotent: a database already at ``revision`` is left as it is. ``url`` may be an
    engine (reused), a URL, or None (:func:`default_url`).

    >>> engine = upgrade_database("sqlite://")
    >>> current_revision(engine) == head_revision()
    True
    """
    from alembic import command

    engine = url if isinstance(url, Engine) else make_engine(url)
    before = current_revision(engine)
    target = head_revision() if revision == "head" else revision
    if before == target:
        return engine
    log.info("upgrading the trading database %s from %s to %s", safe_url(engine),
             before or "empty", target)
    command.upgrade(alembic_config(engine), revision)
    return engine


def open_database(url: str | URL | None = None) -> Engine:
    """:func:`make_engine` then :func:`upgrade_database`: the trader's start-up call."""
    return upgrade_database(make_engine(url))
