"""The same schema, store and reconciliation on PostgreSQL.

Runs only when ``QUANTUM_TEST_PG_URL`` names a **throwaway** database (its trading tables are
dropped and re-created), e.g. ``postgresql+psycopg://postgres@/qt_test?host=/tmp/pgsock``, and
the driver is installed; skipped otherwise (the project does not depend on a driver).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from quantum_trading.domain import Side
from quantum_trading.execution.order_manager import OrderManager
from quantum_trading.live import db
from quantum_trading.live.models import Base
from quantum_trading.live.reconcile import reconcile
from quantum_trading.live.store import TradingStore

from ._helpers import FakeExchange, limit, market, run

URL = os.environ.get("QUANTUM_TEST_PG_URL")
pytestmark = pytest.mark.skipif(not URL, reason="QUANTUM_TEST_PG_URL not set")


@pytest.fixture
def engine() -> sa.Engine:
    assert URL is not None
    try:
        engine = db.make_engine(URL)
        with engine.connect():
            pass
    except (ImportError, sa.exc.OperationalError) as exc:  # pragma: no cover
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    if db.current_revision(engine) is not None:
        command.downgrade(db.alembic_config(engine), "base")
    db.upgrade_database(engine)
    yield engine
    engine.dispose()


def test_schema_equals_the_orm_and_upgrade_is_idempotent(engine: sa.Engine) -> None:
    assert engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
    db.upgrade_database(engine)
    assert db.current_revision(engine) == db.head_revision()


def test_store_and_reconcile_on_postgresql(engine: sa.Engine) -> None:
    ex = FakeExchange()
    store = TradingStore(engine, exchange="fake", clock=ex.clock)
    local = datetime(2024, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    store.set_state("t", local)
    assert store.get_state("t") == pd.Timestamp("2024-03-01 12:30", tz="UTC")
    om = OrderManager(ex, clock=ex.clock)
    run(om.submit(limit(Side.BUY, 1.0, 99.0, "rest-1"), on_stale="keep"))
    ex.fail_next("create_order", after=True)
    run(om.submit(market(Side.BUY, 1.0, "lost-1")))
    store.drain_order_manager(om)
    ex.set_quote(98.9, 98.95)
    fills = run(ex.fills("BTC/USDT:USDT"))
    assert len(store.record_fills(fills)) == 2 and store.record_fills(fills) == []
    report = run(reconcile(store, ex))
    assert report.ok
    assert sorted(d.kind for d in report.differences) == ["order_closed", "order_found",
                                                          "position_mismatch"]
    assert store.get_order("rest-1").state == "filled" and store.open_orders() == []
    assert store.get_order("lost-1").updated_at.tzinfo is not None
    assert run(reconcile(store, ex)).differences == ()
