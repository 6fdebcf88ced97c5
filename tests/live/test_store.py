"""The trading store: idempotent writes (fills, equity, positions, orders), order upsert
transitions, draining the order manager, risk decisions, alerts, runs and kv state."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from quantum_trading.domain import Side
from quantum_trading.execution.models import (
    Balance,
    ExchangeFill,
    ExchangePosition,
    LiveOrderStatus,
    LiveOrderType,
    OrderRequest,
)
from quantum_trading.execution.order_manager import OrderManager, OrderState
from quantum_trading.execution.order_state import ManagedOrder
from quantum_trading.execution.position_monitor import ExitAction, ExitTrigger
from quantum_trading.live.models import Alert, FillRow, OrderEventRow, OrderRow
from quantum_trading.live.store import TradingStore
from quantum_trading.live.store_upsert import Upserts
from quantum_trading.risk import RiskConfig, RiskEngine
from quantum_trading.risk.limits import RiskAction, RiskDecision, RiskReason, TradingState

from ._helpers import SYMBOL, FakeExchange, limit, run, snapshot, store_at

S = OrderState
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def fill(fid: str, cid: str = "c1", amount: float = 0.5) -> ExchangeFill:
    return ExchangeFill(id=fid, order_id="ex-c1", client_order_id=cid, symbol=SYMBOL,
                        side=Side.BUY, amount=amount, price=100.0, fee_usd=0.02, is_maker=True,
                        time=T0)


def count(store: TradingStore, model: type) -> int:
    with store.transaction() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.mark.parametrize("path", ["raw", "orm"])
def test_the_same_fill_twice_is_one_row(tmp_path: Path, path: str) -> None:
    """SQLite / PostgreSQL add fills with ``INSERT … ON CONFLICT DO NOTHING`` through the
    driver, other databases with the ORM's read-then-insert: the same behaviour."""
    store = store_at(tmp_path / "q.sqlite")
    if path == "orm":
        store._upserts = Upserts("none")  # as on a database without the clause
    assert store.record_fill(fill("t1")) is True
    assert store.record_fill(fill("t1")) is False
    assert [f.id for f in store.record_fills([fill("t1"), fill("t2"), fill("t2")])] == ["t2"]
    assert count(store, FillRow) == 2
    rows = store.fills_for("c1")
    assert [r.fill_id for r in rows] == ["t1", "t2"] and rows[0].time == T0
    assert store.last_fill_time() == T0 and store.last_fill_time("ETH/USDT:USDT") is None
    other = TradingStore(store.engine, exchange="other")  # unique per exchange, not globally
    if path == "orm":
        other._upserts = Upserts("none")
    assert other.record_fill(fill("t1")) is True and len(other.fills_for("c1")) == 1
    r = rows[1]
    assert (r.exchange, r.exchange_order_id, r.symbol, r.side, r.amount, r.price, r.fee_usd,
            r.is_maker) == ("fake", "ex-c1", SYMBOL, "buy", 0.5, 100.0, 0.02, True)


def test_exchange_order_upsert_follows_the_lifecycle(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    store = store_at(tmp_path / "q.sqlite")
    row = store.record_order(snapshot("c1", LiveOrderStatus.OPEN, 0.0))
    assert (row.state, row.origin, row.exchange_order_id) == ("open", "exchange", "ex-c1")
    assert store.record_order(snapshot("c1", LiveOrderStatus.PARTIALLY_FILLED, 0.4)).state == \
        "partially_filled"
    assert store.record_order(snapshot("c1", LiveOrderStatus.OPEN, 0.4)).state == \
        "partially_filled"  # the exchange's "open" with fills is our partially filled
    with caplog.at_level(logging.WARNING, logger="quantum_trading.live.store"):
        back = store.record_order(snapshot("c1", LiveOrderStatus.OPEN, 0.1))
    assert back.filled == 0.4 and "filled would go back" in caplog.text
    assert store.record_order(snapshot("c1", LiveOrderStatus.FILLED, 1.0)).state == "filled"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="quantum_trading.live.store"):
        assert store.record_order(snapshot("c1", LiveOrderStatus.OPEN, 1.0)).state == "filled"
    assert "refused" in caplog.text
    assert count(store, OrderRow) == 1
    assert [r.client_order_id for r in store.orders_by_status(S.FILLED)] == ["c1"]
    assert store.open_orders() == []


def test_managed_orders_and_events_are_drained_once(tmp_path: Path) -> None:
    store = store_at(tmp_path / "q.sqlite")
    ex = FakeExchange()
    om = OrderManager(ex, clock=ex.clock)

    async def go() -> None:
        o = await om.submit(limit(Side.BUY, 1.0, 99.0, "c1"), tag="entry", on_stale="keep")
        assert store.drain_order_manager(om) == len(om.events)
        assert store.drain_order_manager(om) == 0  # nothing new: nothing written
        row = store.get_order("c1")
        assert row is not None and (row.state, row.tag, row.origin) == ("open", "entry", "ours")
        assert row.exchange_order_id == o.exchange_id and row.root_id == "c1"
        ex.fill("c1", 0.25)
        ex.advance(1)
        await om.poll()
        store.drain_order_manager(om)
        assert store.get_order("c1").state == "partially_filled"
        assert store.get_order("c1").filled == 0.25
        await om.cancel("c1")
        store.drain_order_manager(om)
        assert store.get_order("c1").state == "cancelled"
        assert store.orders_by_status("cancelled", S.FILLED)[0].client_order_id == "c1"

    run(go())
    events = store.order_events("c1")
    assert [(e.kind, e.state, e.detail) for e in events] == \
        [(e.kind, e.state.value, e.detail) for e in om.events]
    assert all(e.time.tzinfo is not None for e in events)
    assert count(store, OrderEventRow) == len(om.events)


def test_risk_decisions_are_stored_with_their_order(tmp_path: Path) -> None:
    store = store_at(tmp_path / "q.sqlite")
    ex = FakeExchange()
    risk = RiskEngine(RiskConfig(max_position_frac=0.1), symbols=[SYMBOL])
    om = OrderManager(ex, clock=ex.clock, risk=risk)
    risk.update(om.now(), 100_000.0)

    async def go() -> None:
        await om.submit(limit(Side.BUY, 150.0, 99.0, "big"))  # resized to the 10 % cap
    run(go())
    store.drain_order_manager(om)
    row = store.get_order("big")
    assert row is not None and row.risk_action == "resize" and row.amount < 150.0
    decisions = store.risk_decisions("big")
    assert len(decisions) == 1 and decisions[0].requested_size == 150.0
    decision = om.get("big").risk_decision
    assert store.record_risk_decision(decision, client_order_id="big") is False  # once only
    manual = RiskDecision(time=T0, symbol=SYMBOL, action=RiskAction.REJECT,
                          reason=RiskReason.DAILY_LOSS, text="daily loss limit", requested_size=1.0,
                          approved_size=0.0, trading_state=TradingState.REDUCING,
                          position_before=0.0, price=100.0, equity_usd=95_000.0)
    assert store.record_risk_decision(manual) is True
    assert store.record_risk_decision(manual) is False
    assert [d.reason for d in store.risk_decisions()] == ["max_position", "daily_loss"]


def test_positions_and_equity_are_snapshots(tmp_path: Path) -> None:
    store = store_at(tmp_path / "q.sqlite")
    pos = ExchangePosition(symbol=SYMBOL, size=0.5, entry_price=100.0, mark_price=101.0,
                           unrealized_pnl_usd=0.5, leverage=2.0)
    store.record_position(pos, time=T0)
    store.record_position(ExchangePosition(**{**pos.__dict__, "size": -0.2}), time=T0)
    assert {s: p.size for s, p in store.positions().items()} == {SYMBOL: -0.2}
    store.record_flat(SYMBOL)
    assert store.positions() == {} and store.positions(include_flat=True)[SYMBOL].size == 0.0
    bal = Balance(wallet_usd=1000.0, free_usd=900.0, equity_usd=1010.0)
    store.record_equity(bal, time=T0)
    store.record_equity(Balance(1000.0, 800.0, 1020.0), time=T0)  # same time: replaced
    store.record_equity(bal, time=T0 + pd.Timedelta("1h"))
    latest = store.latest_equity()
    assert latest is not None and latest.time == T0 + pd.Timedelta("1h")
    with store.transaction() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM equity")) == 2
        assert s.scalar(sa.text("SELECT equity_usd FROM equity ORDER BY time LIMIT 1")) == 1020.0


def test_alerts_exits_runs_and_state(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    store = store_at(path)
    first = store.start_run(mode="paper")
    store.record_alert("test", "hello", level="info")
    with pytest.raises(ValueError, match="level"):
        store.record_alert("test", "x", level="loud")
    store.record_exit(ExitAction(time=T0, symbol=SYMBOL, trigger=ExitTrigger.STOP_LOSS,
                                 position_size=1.0, entry_price=100.0, price=95.0, pnl_pct=-5.0,
                                 age_s=60.0, client_order_id="x1", reason="stop 95 crossed"))
    exits = store.alerts("exit:")
    assert len(exits) == 1 and exits[0].kind == "exit:stop_loss" and exits[0].run_id == first
    store.set_state("last_bar_time", T0)
    store.set_state("kill_switch", True)
    store.set_state("kill_switch", False)
    store.set_state("limits", {"daily_loss_pct": 5.0, "since": T0})
    store.engine.dispose()
    # the process dies; a new one opens the same file: a dead run is marked crashed
    again = store_at(path)
    second = again.start_run(mode="paper")
    assert second != first
    assert again.get_state("last_bar_time") == T0
    assert again.get_state("kill_switch") is False
    assert again.get_state("limits") == {"daily_loss_pct": 5.0, "since": T0}
    assert again.get_state("missing", "dflt") == "dflt"
    again.delete_state("kill_switch")
    assert again.get_state("kill_switch") is None
    with again.transaction() as s:
        statuses = s.execute(sa.text("SELECT id, status FROM runs ORDER BY id")).all()
    assert statuses == [(first, "crashed"), (second, "running")]
    again.end_run()
    with again.transaction() as s:
        assert s.scalar(sa.text("SELECT status FROM runs WHERE id = :i"), {"i": second}) == \
            "stopped"


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    """One transaction a call: an error in the middle of a drain writes none of it."""
    store = store_at(tmp_path / "q.sqlite")
    ex = FakeExchange()
    om = OrderManager(ex, clock=ex.clock)
    run(om.submit(limit(Side.BUY, 1.0, 99.0, "c1")))
    om.events.append(om.events[-1].__class__(T0, "c1", "x" * 40, S.OPEN, "ok"))
    broken = om.events[-1]
    object.__setattr__(broken, "time", "not a time")  # makes the event insert fail
    with pytest.raises(AttributeError):
        store.drain_order_manager(om)
    assert count(store, OrderRow) == 0 and count(store, OrderEventRow) == 0
    om.events.pop()
    assert store.drain_order_manager(om) == len(om.events)  # the retry writes it all
    assert count(store, OrderRow) == 1


def test_drain_with_clear_and_after_someone_trimmed_the_events(tmp_path: Path) -> None:
    store = store_at(tmp_path / "q.sqlite")
    ex = FakeExchange()
    om = OrderManager(ex, clock=ex.clock)
    run(om.submit(limit(Side.BUY, 1.0, 99.0, "c1"), on_stale="keep"))
    n1 = store.drain_order_manager(om, clear=True)
    assert n1 > 0 and om.events == []
    run(om.submit(limit(Side.BUY, 1.0, 98.0, "c2"), on_stale="keep"))
    n2 = store.drain_order_manager(om)
    del om.events[:1]  # another reader trims the list
    run(om.cancel("c2"))
    n3 = store.drain_order_manager(om)
    om.events.clear()  # ... or clears it
    run(om.cancel("c1"))
    n4 = store.drain_order_manager(om)
    assert n3 > 0 and n4 > 0
    assert count(store, OrderEventRow) == n1 + n2 + n3 + n4
    assert [e.kind for e in store.order_events("c2")][:2] == ["created", "sent"]
    assert store.get_order("c1").state == store.get_order("c2").state == "cancelled"


def _row_dict(row: OrderRow) -> dict:
    return {c.name: getattr(row, c.name) for c in OrderRow.__table__.columns if c.name != "id"}


def _managed(cid: str, **kw: object) -> ManagedOrder:
    req = OrderRequest(SYMBOL, Side.SELL, LiveOrderType.LIMIT, 0.25, price=101.5,
                       reduce_only=True, client_order_id=cid)
    return ManagedOrder(request=req, created_at=T0, tag=f"target:{SYMBOL}=-0.5@1",
                        root_id=cid, **kw)


@pytest.mark.parametrize("journal", [False, True])
def test_write_ahead_stores_what_record_order_stores(tmp_path: Path, journal: bool) -> None:
    """The write-ahead — one Core INSERT for the batch, or one write to the journal then the
    same rows put into the database by ``settle_write_ahead`` — gives the rows the ORM
    upsert gives; the batch is committed (or in the journal) when it returns; an id already
    stored is upserted (database path) or kept as stored (journal path: the stored row is
    the later one)."""
    a = store_at(tmp_path / "a.sqlite", journal=journal)
    b = store_at(tmp_path / "b.sqlite")
    a.write_ahead([_managed("w1"), _managed("w2")])
    for cid in ("w1", "w2"):
        b.record_order(_managed(cid))
    if journal:
        assert count(a, OrderRow) == 0 and len(a._journal.read().orders) == 2
        assert a.settle_write_ahead() == 2
        assert a._journal.read().orders == [] and a.settle_write_ahead() == 0
    else:
        assert a._journal is None and a.settle_write_ahead() == 0
    assert count(a, OrderRow) == 2
    for cid in ("w1", "w2"):
        assert _row_dict(a.get_order(cid)) == _row_dict(b.get_order(cid))
    assert a.get_order("w1").state == "new" and a.get_order("w1").origin == "ours"
    # committed: another engine on the same file sees it at once
    assert store_at(tmp_path / "a.sqlite").get_order("w2") is not None
    # an id already there: not doubled, and the new one of the batch still written
    a.record_order(_managed("w1", reason="sent"))
    a.write_ahead([_managed("w1"), _managed("w3")])
    a.settle_write_ahead()
    assert count(a, OrderRow) == 3
    assert a.get_order("w1").reason == ("" if not journal else "sent")
    a.write_ahead([])
    assert count(a, OrderRow) == 3


def test_only_sqlite_files_get_a_journal(tmp_path: Path) -> None:
    """The journal sits beside a SQLite file, named after the file and the account; an
    in-memory database or ``journal=False`` writes ahead into the database."""
    assert store_at(tmp_path / "t.sqlite", exchange="binance usdm")._journal.path == \
        tmp_path / "t.sqlite.binance_usdm.write-ahead.log"
    assert TradingStore.open("sqlite://", exchange="x")._journal is None
    assert store_at(tmp_path / "u.sqlite", journal=False)._journal is None


def test_recover_write_ahead_stores_what_a_crash_left_in_the_journal(tmp_path: Path) -> None:
    """A run killed between the journal write and the database (no settle): the next start's
    recover stores those orders (state new, the row a fresh write-ahead stores; one already
    stored is kept as it is), skips a line cut short and one that is not an order, reports
    them, and empties the journal."""
    crashed = store_at(tmp_path / "c.sqlite")
    crashed.record_order(_managed("known", reason="stored"))
    crashed.write_ahead([_managed("lost1"), _managed("lost2"), _managed("known")])
    path = crashed._journal.path
    with path.open("a") as f:
        f.write("__import__('os').system('true')\n")  # not a literal: never evaluated
        f.write("('cut', 'BTC/USDT:US")  # the write a SIGKILL cut short
    restarted = store_at(tmp_path / "c.sqlite")
    stored, problems = restarted.recover_write_ahead()
    assert stored == 2
    assert len(problems) == 2 and "line 4" in problems[0] and "line 5" in problems[1]
    assert all(str(path) in p for p in problems)
    assert restarted.get_order("lost1").state == "new"
    assert restarted.get_order("lost2") is not None
    assert restarted.get_order("known").reason == "stored"
    assert restarted.get_order("cut") is None
    assert path.read_text() == "" and restarted.recover_write_ahead() == (0, [])
    reference = store_at(tmp_path / "ref.sqlite", journal=False)
    reference.write_ahead([_managed("lost1")])
    assert _row_dict(restarted.get_order("lost1")) == _row_dict(reference.get_order("lost1"))


def test_a_failed_settle_keeps_the_orders_pending(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The database refuses the settle (locked, disk full …): the error is raised, the rows
    stay in the journal and in memory, and the next settle stores them."""
    store = store_at(tmp_path / "f.sqlite")
    store.write_ahead([_managed("p1")])

    def refuse(rows: object) -> int:
        raise OSError("database is locked")

    monkeypatch.setattr(store, "_insert_absent_orders", refuse)
    with pytest.raises(OSError, match="locked"):
        store.settle_write_ahead()
    assert len(store._journal.read().orders) == 1
    monkeypatch.undo()
    store.write_ahead([_managed("p2")])
    assert store.settle_write_ahead() == 2
    assert count(store, OrderRow) == 2 and store._journal.read().orders == []


def test_risk_decisions_batch_skips_stored_ones(tmp_path: Path) -> None:
    store = store_at(tmp_path / "q.sqlite")
    eng = RiskEngine(RiskConfig(max_position_frac=0.5), symbols=[SYMBOL])
    eng.update(T0, 10_000.0)
    d1 = eng.check_order(T0, SYMBOL, 1.0, equity_usd=10_000.0, prices={SYMBOL: 100.0})
    d2 = eng.check_order(T0, SYMBOL, 200.0, equity_usd=10_000.0, prices={SYMBOL: 100.0})
    assert store.record_risk_decisions([(d1, "c1"), (d2, None)]) == 2
    assert store.record_risk_decisions([(d1, "c1"), (d2, None)]) == 0
    assert store.record_risk_decisions([]) == 0
    rows = store.risk_decisions()
    assert [(r.client_order_id, r.action) for r in rows] == [("c1", "approve"), (None, "resize")]


def test_risk_decisions_core_and_orm_paths_store_the_same_rows(tmp_path: Path) -> None:
    """SQLite adds a risk decision with one ``INSERT … WHERE NOT EXISTS``, other databases
    with the ORM's read-then-insert: the same rows, the same ones skipped (NULL order ids
    match each other, a decision of another order or size is new)."""
    eng = RiskEngine(RiskConfig(max_position_frac=0.5), symbols=[SYMBOL])
    eng.update(T0, 10_000.0)
    d1 = eng.check_order(T0, SYMBOL, 1.0, equity_usd=10_000.0, prices={SYMBOL: 100.0})
    d2 = eng.check_order(T0, SYMBOL, 200.0, equity_usd=10_000.0, prices={SYMBOL: 100.0})
    stored, counts = [], []
    for core in (True, False):
        store = store_at(tmp_path / f"risk-{core}.sqlite")
        if not core:
            store._upserts = Upserts("none")  # as on a database without the Core path
        counts.append([store.record_risk_decisions([(d1, "c1"), (d2, None), (d2, None)]),
                       store.record_risk_decisions([(d1, "c1"), (d1, "c2"), (d2, None)]),
                       store.record_risk_decision(d2), store.record_risk_decision(d1)])
        stored.append([{c: getattr(r, c) for c in ("time", "client_order_id", "symbol",
                                                    "action", "reason", "text",
                                                    "requested_size", "approved_size",
                                                    "trading_state", "position_before",
                                                    "price", "equity_usd")}
                       for r in store.risk_decisions()])
    assert counts[0] == counts[1] == [2, 1, False, True]
    assert stored[0] == stored[1]
    assert [(r["client_order_id"], r["action"]) for r in stored[0]] == [
        ("c1", "approve"), (None, "resize"), ("c2", "approve"), (None, "approve")]


def test_upserts_and_orm_path_store_the_same_rows(tmp_path: Path) -> None:
    """SQLite / PostgreSQL overwrite the equity snapshot of a time, the position of a symbol
    and a state value with one ``INSERT … ON CONFLICT DO UPDATE``; other databases with the
    ORM's read-then-write. Both store the same rows (a second write replaces the first)."""
    rows = []
    for upsert in (True, False):
        store = store_at(tmp_path / f"equity-{upsert}.sqlite")
        if not upsert:
            store._upserts = Upserts("none")  # as on a database without the upsert
        store.record_equity(Balance(1000.0, 900.0, 1010.0), time=T0)
        snap = store.record_equity(Balance(1000.0, 800.0, 1020.0), time=T0)
        store.record_equity(Balance(1000.0, 900.0, 990.0), time=T0 + pd.Timedelta("1h"))
        assert (snap.time, snap.equity_usd, snap.free_usd) == (T0, 1020.0, 800.0)
        pos = ExchangePosition(symbol=SYMBOL, size=0.1, entry_price=30_000.0,
                               mark_price=30_100.0, unrealized_pnl_usd=10.0, leverage=2.0,
                               liquidation_price=15_500.0)
        store.record_position(pos, time=T0)
        row = store.record_position(ExchangePosition(**{**pos.__dict__, "size": -0.2,
                                                         "liquidation_price": None}),
                                    time=T0 + pd.Timedelta("1h"))
        assert (row.size, row.liquidation_price) == (-0.2, None)
        store.record_flat("ETH/USDT:USDT", time=T0)
        store.set_state("k", {"a": 1})
        store.set_state("k", {"a": 2})
        assert store.get_state("k") == {"a": 2}
        with store.transaction() as s:
            rows.append([s.execute(sa.text(sql)).all() for sql in (
                "SELECT exchange, time, equity_usd, wallet_usd, free_usd FROM equity "
                "ORDER BY time",
                "SELECT exchange, symbol, size, entry_price, mark_price, unrealized_pnl_usd, "
                "leverage, liquidation_price, source, updated_at FROM positions ORDER BY symbol",
                "SELECT key, value FROM kv WHERE key = 'k'")])
    assert rows[0] == rows[1]
    equity, positions, kv = rows[0]
    assert len(equity) == 2 and equity[0][2] == 1020.0
    assert [(p[1], p[2]) for p in positions] == [(SYMBOL, -0.2), ("ETH/USDT:USDT", 0.0)]
    assert len(kv) == 1


def test_only_checkpoint_wal_moves_the_log_into_the_database_file(tmp_path: Path) -> None:
    """No commit checkpoints on its own (SQLite's default does it in the commit that passes
    1,000 pages: 4–5 ms there, an order's write-ahead among them); ``checkpoint_wal`` does,
    at every ``every``-th call."""
    store = store_at(tmp_path / "wal.sqlite")
    db = Path(str(store.engine.url.database))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    size = db.stat().st_size
    for k in range(600):  # ≈ 6 MB through the log: past SQLite's 1,000-page default
        store.record_alert("bulk", f"{k} " + "x" * 10_000, level="info")
    assert Path(f"{db}-wal").stat().st_size > 4_000_000
    assert db.stat().st_size == size  # nothing copied by the commits
    assert [store.checkpoint_wal(every=3) for _ in range(3)] == [False, False, True]
    assert db.stat().st_size > size + 4_000_000
    assert count(store, Alert) == 600


def test_checkpoint_wal_is_a_no_op_off_sqlite_files() -> None:
    store = TradingStore.open("sqlite://", exchange="paper")
    assert not any(store.checkpoint_wal(every=1) for _ in range(3))
