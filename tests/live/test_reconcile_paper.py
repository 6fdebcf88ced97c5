"""Restart reconciliation against the paper exchange (the simulator's fills): orders filled
at the next bars while the trader was down, an unknown order adopted, an unsent order marked,
positions and fills as the paper exchange has them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from quantum_trading.domain import Instrument, Side
from quantum_trading.execution.models import LiveOrderStatus
from quantum_trading.execution.order_manager import OrderManager
from quantum_trading.execution.order_state import ManagedOrder
from quantum_trading.execution.paper import PaperExchange
from quantum_trading.live.reconcile import reconcile
from quantum_trading.sim.config import CostsConfig

from ._helpers import SYMBOL, limit, market, run, store_at

T0 = pd.Timestamp("2024-01-01", tz="UTC")
HOUR = pd.Timedelta("1h")


def bar(o: float, h: float, lo: float, c: float) -> dict[str, float]:
    return {"open": o, "high": h, "low": lo, "close": c, "volume": 1_000.0}


def test_restart_on_the_paper_exchange(tmp_path: Path) -> None:
    inst = Instrument.generic(SYMBOL, lot_size=0.001, min_notional_usd=5.0, tick_size=0.1)
    paper = PaperExchange([inst], timeframe="1h", costs=CostsConfig(default_funding_rate=0.0))
    paper.process_bar(SYMBOL, bar(100.0, 101.0, 99.5, 100.0), time=T0)
    db = tmp_path / "q.sqlite"
    store = store_at(db, exchange="paper", clock=lambda: paper.now)

    async def trade() -> None:  # the first process: its order manager dies with it
        om = OrderManager(paper, clock=lambda: paper.now)
        await om.submit(market(Side.BUY, 1.0, "mkt-1"))  # fills at the next bar's open
        await om.submit(limit(Side.BUY, 1.0, 99.0, "lim-1"), on_stale="keep")
        store.drain_order_manager(om)
        await paper.create_order(limit(Side.SELL, 0.5, 120.0, "manual-1"))  # not ours
        store.record_order(ManagedOrder(request=market(Side.SELL, 1.0, "new-1"),
                                        created_at=paper.now))

    run(trade())
    assert [r.state for r in store.open_orders()] == ["open", "open", "new"]
    store.engine.dispose()
    # while the trader is down two bars pass: the market order fills at the open, the limit
    # order is traded through
    paper.process_bar(SYMBOL, bar(99.6, 99.8, 98.5, 99.0), time=T0 + HOUR)
    paper.process_bar(SYMBOL, bar(99.0, 99.5, 98.8, 99.2), time=T0 + 2 * HOUR)

    store = store_at(db, exchange="paper", clock=lambda: paper.now)
    report = run(reconcile(store, paper, unknown_orders="adopt"))
    assert report.ok
    assert sorted(d.kind for d in report.differences) == [
        "fills_missing", "fills_missing", "order_closed", "order_closed", "order_never_sent",
        "order_unknown", "position_mismatch"]
    theirs = {o.client_order_id: o for o in paper.all_orders()}
    for cid in ("mkt-1", "lim-1"):
        row = store.get_order(cid)
        assert theirs[cid].status is LiveOrderStatus.FILLED
        assert row is not None and row.state == "filled"
        assert row.average_price == pytest.approx(theirs[cid].average_price)
        assert row.fee_usd == pytest.approx(theirs[cid].fee_usd)
    assert store.get_order("lim-1").average_price == pytest.approx(99.0)  # maker, at its price
    assert store.get_order("manual-1").origin == "adopted"
    assert store.get_order("new-1").state == "rejected" and "new-1" not in theirs
    paper_fills = run(paper.fills(SYMBOL))
    assert sorted(f.fill_id for f in store.fills()) == sorted(f.id for f in paper_fills)
    positions = run(paper.positions())
    assert {s: p.size for s, p in store.positions().items()} == \
        {s: p.size for s, p in positions.items()} == {SYMBOL: pytest.approx(2.0)}
    assert report.open_orders == ("manual-1",)
    assert run(reconcile(store, paper, unknown_orders="adopt")).differences == ()
