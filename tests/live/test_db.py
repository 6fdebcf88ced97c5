"""The database: engine settings, migrations (fresh, idempotent, schema equal to the ORM,
portable to PostgreSQL), UTC times and foreign keys."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

from quantum_trading.live import db
from quantum_trading.live.models import Base, KeyValue, OrderEventRow


def _diffs(engine: sa.Engine, metadata: sa.MetaData = Base.metadata) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "compare_server_default": True})
        return compare_metadata(ctx, metadata)


def test_fresh_database_is_migrated_to_head_with_every_table(tmp_path: Path) -> None:
    engine = db.open_database(f"sqlite:///{tmp_path / 'q.sqlite'}")
    assert db.current_revision(engine) == db.head_revision() == "0001"
    tables = set(sa.inspect(engine).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert set(Base.metadata.tables) == {"runs", "orders", "order_events", "fills", "positions",
                                         "equity", "risk_decisions", "alerts", "kv"}


def test_migration_creates_exactly_the_orm_schema(tmp_path: Path) -> None:
    engine = db.open_database(f"sqlite:///{tmp_path / 'q.sqlite'}")
    assert _diffs(engine) == []
    # the comparison is not vacuous: a model change the migration lacks is seen
    changed = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["orders"].append_column(sa.Column("leverage", sa.Double(), nullable=True))
    sa.Index("ix_fills_price", changed.tables["fills"].c.price)
    kinds = {d[0] for d in _diffs(engine, changed)}
    assert kinds == {"add_column", "add_index"}


def test_upgrading_a_current_database_is_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    engine = db.open_database(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(KeyValue).values(key="k", value='"v"',
                                                updated_at=datetime(2024, 1, 1)))
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, stmt, *a: statements.append(stmt))
    db.upgrade_database(engine)
    assert not [s for s in statements if s.lstrip().upper().startswith(("CREATE", "ALTER",
                                                                         "DROP", "INSERT",
                                                                         "UPDATE"))]
    command.upgrade(db.alembic_config(engine), "head")  # alembic itself: nothing to do either
    assert not [s for s in statements if s.lstrip().upper().startswith(("CREATE", "ALTER",
                                                                         "DROP"))]
    engine.dispose()
    again = db.open_database(url)  # a restart
    assert db.current_revision(again) == db.head_revision()
    with again.connect() as conn:
        assert conn.execute(sa.select(KeyValue.value)).scalar_one() == '"v"'


def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    engine = db.open_database(f"sqlite:///{tmp_path / 'q.sqlite'}")
    command.downgrade(db.alembic_config(engine), "base")
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    assert db.current_revision(engine) is None
    db.upgrade_database(engine)
    assert _diffs(engine) == []


def test_default_database_is_sqlite_in_user_data_with_wal(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTUM_USER_DATA", str(tmp_path / "ud"))
    engine = db.open_database()
    path = tmp_path / "ud" / "db" / "quantum.sqlite"
    assert path.exists() and engine.url.database == str(path)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    engine = db.open_database(f"sqlite:///{tmp_path / 'q.sqlite'}")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(OrderEventRow).values(time=datetime(2024, 1, 1),
                                                     client_order_id="nobody", kind="created",
                                                     state="new", detail=""))


def test_times_are_stored_as_utc_and_come_back_aware() -> None:
    engine = db.open_database("sqlite://")
    local = datetime(2024, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    with engine.begin() as conn:
        conn.execute(sa.insert(KeyValue).values(key="a", value="1", updated_at=local))
        conn.execute(sa.insert(KeyValue).values(key="b", value="1",
                                                updated_at=datetime(2024, 3, 1, 12, 30)))
        raw = conn.exec_driver_sql("SELECT updated_at FROM kv ORDER BY key").scalars().all()
        back = conn.execute(sa.select(KeyValue.updated_at).order_by(KeyValue.key)).scalars().all()
    assert [r[:19] for r in raw] == ["2024-03-01 12:30:00"] * 2  # UTC on disk
    assert back == [datetime(2024, 3, 1, 12, 30, tzinfo=UTC)] * 2 and back[0].tzinfo is UTC


def test_schema_is_portable_to_postgresql() -> None:
    """Offline SQL for PostgreSQL (no driver needed): the migration and the models compile
    with time zones, doubles and named constraints, and nothing SQLite-only."""
    cfg = db.alembic_config()
    cfg.output_buffer = buf = io.StringIO()
    cfg.set_main_option("sqlalchemy.url", "postgresql+psycopg://bot:pw@localhost/trading")
    command.upgrade(cfg, "head", sql=True)
    sql = buf.getvalue()
    for table in Base.metadata.tables:
        assert f"CREATE TABLE {table} (" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql and "DOUBLE PRECISION" in sql
    assert "CONSTRAINT uq_fills_exchange_fill_id UNIQUE (exchange, fill_id)" in sql
    assert "PRAGMA" not in sql and "AUTOINCREMENT" not in sql
    dialect = postgresql.dialect()
    for table in Base.metadata.sorted_tables:
        assert "CREATE TABLE" in str(CreateTable(table).compile(dialect=dialect))


def test_urls_never_show_passwords() -> None:
    assert db.safe_url("postgresql+psycopg://bot:hunter2@db/trading") == \
        "postgresql+psycopg://bot:***@db/trading"
    cfg = db.alembic_config(sa.create_engine("sqlite://"))
    assert cfg.get_main_option("sqlalchemy.url") == "sqlite://"

