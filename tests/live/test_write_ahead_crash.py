"""A trader that dies after sending an order written ahead only to the journal (before the
row reached the database): the next start stores it from the journal, reconcile finds it on
the exchange, and nothing is sent twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from quantum_trading.live.reconcile import reconcile
from quantum_trading.live.store import TradingStore

from ._trader_helpers import paper_trader, real_bars


class Died(BaseException):
    """Stands for the process being killed (not an Exception: nothing may catch it)."""


def test_orders_only_in_the_journal_are_recovered_and_found(real_data: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    url = f"sqlite:///{tmp_path / 'crash.sqlite'}"
    bars = real_bars(real_data / "binance" / "futures", "1h", 300)
    store = TradingStore.open(url, exchange="paper")
    trader, paper, store = paper_trader(bars, params={"fast": 5, "slow": 20,
                                                      "direction": "both"}, store=store)

    def die(self: TradingStore) -> int:
        raise Died

    async def no_shutdown(**_: object) -> None:  # a killed process runs no shutdown
        return None

    monkeypatch.setattr(TradingStore, "settle_write_ahead", die)  # killed right after sending
    monkeypatch.setattr(trader, "shutdown", no_shutdown)
    with pytest.raises(Died):
        asyncio.run(trader.run())
    monkeypatch.undo()
    sent = [o for o in trader.om.orders.values() if o.sent_at is not None]
    assert len(sent) == 1
    cid = sent[0].client_order_id
    assert store.get_order(cid) is None  # only in the journal
    assert cid in store._journal.path.read_text()

    restarted = TradingStore.open(url, exchange="paper")
    report = asyncio.run(reconcile(restarted, paper))
    assert report.ok
    row = restarted.get_order(cid)
    assert row is not None and row.state in ("open", "filled")
    assert [d.kind for d in report.differences if d.client_order_id == cid] == ["order_found"]
    assert restarted._journal.path.read_text() == ""
    live = [o.client_order_id for o in asyncio.run(paper.open_orders())]
    assert live.count(cid) <= 1 and row.exchange_order_id is not None
