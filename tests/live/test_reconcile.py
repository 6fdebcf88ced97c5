"""Restart reconciliation against the fake exchange of ``tests/execution``: unknown orders
adopted or cancelled, lost responses found, orders that never left marked and not re-sent,
orders filled while we were down updated with their fills, positions corrected, failures
reported, and a crash at the worst moments followed by a restart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from quantum_trading.domain import Side
from quantum_trading.errors import ConfigError
from quantum_trading.execution.errors import ExchangeUnavailable
from quantum_trading.execution.models import ExchangePosition, LiveOrderStatus
from quantum_trading.execution.order_manager import OrderManager
from quantum_trading.execution.order_state import ManagedOrder
from quantum_trading.live.reconcile import ReconcileError, ReconcileReport, reconcile
from quantum_trading.live.store import TradingStore

from ._helpers import SYMBOL, FakeExchange, limit, market, run, snapshot, store_at

ETH = "ETH/USDT:USDT"


@pytest.fixture
def ex() -> FakeExchange:
    return FakeExchange()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "q.sqlite"


def restart(db: Path, ex: FakeExchange) -> TradingStore:
    """A new process: a fresh store object on the same file."""
    return store_at(db, clock=ex.clock)


def kinds(report: ReconcileReport) -> list[str]:
    return sorted(d.kind for d in report.differences)


def settle(store: TradingStore, ex: FakeExchange, **kw) -> ReconcileReport:
    """Reconcile, check that an alert row was written for each difference, then check that a
    second reconcile finds nothing (reconciling is idempotent)."""
    before = len(store.alerts("reconcile:"))
    report = run(reconcile(store, ex, **kw))
    alerts = store.alerts("reconcile:")[before:]
    assert sorted(a.kind for a in alerts if a.kind != "reconcile:unresolved") == \
        sorted(f"reconcile:{k}" for k in kinds(report))
    if report.ok:
        again = run(reconcile(store, ex, **kw))
        assert again.differences == () and again.ok, again.differences
    return report


def assert_agree(store: TradingStore, ex: FakeExchange) -> None:
    """The database and the exchange tell the same story."""
    live = {o.client_order_id for o in ex.orders.values() if not o.is_terminal}
    assert {r.client_order_id for r in store.open_orders()} == live
    for row in store.all_orders():
        theirs = ex.orders.get(row.client_order_id)
        if theirs is None:
            assert row.state == "rejected", row
            continue
        assert row.state.replace("partially_filled", "open") == \
            theirs.status.value.replace("partially_filled", "open")
        assert row.filled == pytest.approx(theirs.filled)
        assert row.exchange_order_id == theirs.id
    assert {f.fill_id for f in store.fills()} == {t.id for t in ex.trades}
    assert {s: p.size for s, p in store.positions().items()} == \
        {s: size for s, (size, _) in ex.pos.items()}


def test_unknown_order_is_adopted(db: Path, ex: FakeExchange) -> None:
    store = restart(db, ex)
    run(ex.create_order(limit(Side.BUY, 1.0, 99.0, "manual-1")))
    report = settle(store, ex, unknown_orders="adopt")
    assert kinds(report) == ["order_unknown"]
    d = report.differences[0]
    assert (d.client_order_id, d.db_value, d.action) == ("manual-1", "absent", "adopted")
    row = store.get_order("manual-1")
    assert row is not None and (row.origin, row.state) == ("adopted", "open")
    assert report.open_orders == ("manual-1",) and not ex.orders["manual-1"].is_terminal
    assert_agree(store, ex)


def test_unknown_order_is_cancelled_by_default(db: Path, ex: FakeExchange) -> None:
    store = restart(db, ex)
    run(ex.create_order(limit(Side.BUY, 1.0, 99.0, "manual-1")))
    report = settle(store, ex)
    assert kinds(report) == ["order_unknown"] and report.open_orders == ()
    assert ex.orders["manual-1"].status is LiveOrderStatus.CANCELLED
    row = store.get_order("manual-1")
    assert row is not None and (row.origin, row.state) == ("foreign", "cancelled")
    alert = store.alerts("reconcile:order_unknown")[0]
    assert alert.level == "warning" and "manual-1" in alert.message
    assert_agree(store, ex)


def test_lost_response_order_is_found_and_not_sent_again(db: Path, ex: FakeExchange) -> None:
    store = restart(db, ex)
    om = OrderManager(ex, clock=ex.clock)
    ex.fail_next("create_order", after=True)  # it reached the exchange; the answer was lost
    order = run(om.submit(market(Side.BUY, 1.0, "lost-1")))
    assert order.state.value == "unknown"
    store.drain_order_manager(om)
    del om, order  # the process dies before re-querying
    store = restart(db, ex)
    report = settle(store, ex)
    assert kinds(report) == ["fills_missing", "order_found", "position_mismatch"]
    row = store.get_order("lost-1")
    assert row is not None and (row.state, row.filled) == ("filled", 1.0)
    assert row.average_price == pytest.approx(100.05)
    assert [f.amount for f in store.fills_for("lost-1")] == [1.0]
    assert ex.create_calls["lost-1"] == 1
    assert_agree(store, ex)


def test_order_that_never_left_is_marked_rejected_not_resent(db: Path, ex: FakeExchange) -> None:
    store = restart(db, ex)
    t0 = ex.clock()
    # stored as NEW, then the process died before sending it
    store.record_order(ManagedOrder(request=market(Side.BUY, 1.0, "never-1"), created_at=t0))
    store.record_order(ManagedOrder(request=market(Side.SELL, 2.0, "never-2"), created_at=t0))
    report = settle(store, ex)
    assert kinds(report) == ["order_never_sent", "order_never_sent"]
    for cid in ("never-1", "never-2"):
        row = store.get_order(cid)
        assert row is not None and row.state == "rejected" and "never sent" in row.reason
        assert ex.create_calls[cid] == 0 and ex.not_found[cid] == 1
    assert ex.orders == {} and store.open_orders() == []


def test_open_order_filled_while_down_is_updated_with_its_fills(db: Path, ex: FakeExchange) -> None:
    store = restart(db, ex)
    om = OrderManager(ex, clock=ex.clock)
    run(om.submit(limit(Side.BUY, 1.0, 99.0, "rest-1"), on_stale="keep"))
    run(om.submit(limit(Side.BUY, 1.0, 98.0, "rest-2"), on_stale="keep"))
    store.drain_order_manager(om)
    assert [r.state for r in store.open_orders()] == ["open", "open"]
    del om
    ex.advance(60)
    ex.fill("rest-2", 0.4)  # part of one ...
    ex.advance(60)
    ex.set_quote(98.9, 98.95)  # ... all of the other
    store = restart(db, ex)
    report = settle(store, ex)
    assert kinds(report) == ["fills_missing", "fills_missing", "order_changed", "order_closed",
                             "position_mismatch"]
    closed = report.of_kind("order_closed")[0]
    assert (closed.client_order_id, closed.db_value, closed.exchange_value) == \
        ("rest-1", "open, filled 0", "filled, filled 1")
    assert store.get_order("rest-1").state == "filled"
    assert store.get_order("rest-2").state == "partially_filled"
    assert [f.price for f in store.fills_for("rest-1")] == [99.0]
    assert report.open_orders == ("rest-2",) and report.fills_added == 2
    assert report.positions == {SYMBOL: pytest.approx(1.4)}
    assert_agree(store, ex)


def test_pending_cancel_is_completed_and_stray_orders_are_cancelled(db: Path,
                                                                     ex: FakeExchange) -> None:
    store = restart(db, ex)
    om = OrderManager(ex, clock=ex.clock)
    run(om.submit(limit(Side.BUY, 1.0, 99.0, "cxl-1"), on_stale="keep"))
    ex.fail_next("cancel_order", after=False)  # the cancel request is lost
    run(om.cancel("cxl-1"))
    assert om.get("cxl-1").state.value == "pending_cancel"
    store.drain_order_manager(om)
    # an order we stored as cancelled is live on the exchange (a cancel answer that lied)
    run(ex.create_order(limit(Side.SELL, 1.0, 120.0, "stray-1")))
    store.record_order(snapshot("stray-1", LiveOrderStatus.CANCELLED, 0.0))
    del om
    store = restart(db, ex)
    report = settle(store, ex, unknown_orders="adopt")
    assert kinds(report) == ["cancel_completed", "order_stray"]
    assert ex.orders["cxl-1"].status is LiveOrderStatus.CANCELLED
    assert ex.orders["stray-1"].status is LiveOrderStatus.CANCELLED
    assert store.get_order("cxl-1").state == "cancelled"
    assert store.alerts("reconcile:order_stray")[0].level == "error"
    assert report.open_orders == ()
    assert_agree(store, ex)


def test_position_mismatch_the_exchange_wins(db: Path, ex: FakeExchange) -> None:
    store = restart(db, ex)
    pos = ExchangePosition(symbol=SYMBOL, size=2.0, entry_price=100.0, mark_price=100.0,
                           unrealized_pnl_usd=0.0, leverage=1.0)
    store.record_position(pos)
    store.record_position(ExchangePosition(ETH, -3.0, 2000.0, 2000.0, 0.0, 1.0))
    ex.pos[SYMBOL] = (1.0, 100.0)  # someone closed half by hand; ETH was closed entirely
    report = settle(store, ex)
    mism = {d.symbol: (d.db_value, d.exchange_value) for d in report.of_kind("position_mismatch")}
    assert mism == {SYMBOL: ("size 2", "size 1"), ETH: ("size -3", "size 0")}
    assert {s: p.size for s, p in store.positions().items()} == {SYMBOL: 1.0}
    assert {a.symbol for a in store.alerts("reconcile:position_mismatch")} == {SYMBOL, ETH}
    eq = store.latest_equity()
    assert eq is not None and eq.equity_usd == pytest.approx(100_000.0)


def test_an_unreadable_exchange_stops_the_start(db: Path) -> None:
    class Down(FakeExchange):
        async def positions(self):  # type: ignore[override]
            raise ExchangeUnavailable("503 maintenance")

    ex = Down()
    store = restart(db, ex)
    with pytest.raises(ReconcileError, match="503 maintenance"):
        run(reconcile(store, ex))
    assert [a.level for a in store.alerts("reconcile:failed")] == ["critical"]
    with pytest.raises(ConfigError, match="unknown_orders"):
        run(reconcile(store, ex, unknown_orders="ignore"))  # type: ignore[arg-type]


def test_an_order_that_cannot_be_queried_is_unresolved(db: Path, ex: FakeExchange) -> None:
    store = restart(db, ex)
    om = OrderManager(ex, clock=ex.clock)
    ex.fail_next("create_order", after=True)
    run(om.submit(market(Side.BUY, 1.0, "lost-1")))
    store.drain_order_manager(om)
    ex.fail_next("fetch_order")  # the query at restart times out
    report = run(reconcile(store, ex))
    assert not report.ok and "lost-1" in report.unresolved[0]
    assert store.get_order("lost-1").state == "unknown"  # left for the next attempt
    report = settle(store, ex)  # the trader retries before trading
    assert report.ok and "order_found" in kinds(report)
    assert_agree(store, ex)


def test_crash_at_the_worst_moments_then_restart(db: Path, ex: FakeExchange) -> None:
    """Orders in every unfinished state when the process dies; after the restart the
    database and the exchange agree and nothing was sent twice."""
    store = restart(db, ex)
    store.start_run(mode="live")

    async def trade() -> None:  # the first process: its order manager dies with it
        om = OrderManager(ex, clock=ex.clock)
        await om.submit(market(Side.BUY, 2.0, "done-1"))  # filled and fully recorded
        store.drain_order_manager(om)
        store.record_fills(await ex.fills(SYMBOL))
        for p in (await ex.positions()).values():
            store.record_position(p)
        await om.submit(limit(Side.SELL, 1.0, 101.0, "rest-1"), on_stale="keep")
        await om.submit(limit(Side.BUY, 1.0, 99.0, "rest-2"), on_stale="keep")
        ex.fail_next("create_order", after=True)
        await om.submit(market(Side.SELL, 0.5, "lost-1"))  # reached the exchange, answer lost
        ex.fail_next("create_order", after=False)
        await om.submit(market(Side.BUY, 0.5, "gone-1"))  # request lost on the way
        store.drain_order_manager(om)
        # stored as NEW just before sending it ... and then the process dies
        store.record_order(ManagedOrder(request=market(Side.BUY, 3.0, "new-1"),
                                        created_at=ex.clock()))

    run(trade())
    ex.advance(30)
    ex.set_quote(101.0, 101.1)  # rest-1 (sell at 101) fills while we are down
    store.engine.dispose()

    store = restart(db, ex)
    run_id = store.start_run(mode="live")
    report = settle(store, ex)
    assert report.ok
    assert kinds(report) == ["fills_missing", "fills_missing", "order_closed", "order_found",
                             "order_never_sent", "order_never_sent", "position_mismatch"]
    assert {d.client_order_id for d in report.of_kind("order_never_sent")} == {"gone-1", "new-1"}
    assert report.open_orders == ("rest-2",)
    assert_agree(store, ex)
    assert ex.create_calls == {"done-1": 1, "rest-1": 1, "rest-2": 1, "lost-1": 1, "gone-1": 1}
    assert all(a.run_id == run_id for a in store.alerts("reconcile:"))
    assert store.get_state("last_reconcile")["ok"] is True
    assert isinstance(store.get_state("last_reconcile")["time"], pd.Timestamp)
