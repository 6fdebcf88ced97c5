"""``quantum paper | live | orders | positions | kill``: a paper replay whose fills are the
backtest's, reading the database, the live-trading refusal, and the kill switch with and
without a running trader."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from quantum_trading.backtest import Backtest
from quantum_trading.backtest.inputs import load_bars
from quantum_trading.cli.main import main
from quantum_trading.domain import Side
from quantum_trading.execution.local_exchange import (
    Credentials,
    MarketData,
    TradingOptions,
    create_app,
    serve_in_thread,
)
from quantum_trading.execution.models import LiveOrderType, OrderRequest
from quantum_trading.live.store import TradingStore
from quantum_trading.sim import CostsConfig

BTC = "BTC/USDT:USDT"
PARAMS = ["-p", "fast=10", "-p", "slow=30", "-p", "direction=both"]


@pytest.fixture
def btc_1h(binance_futures_dir):
    return str(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather")


def test_paper_replay_then_orders_and_positions(tmp_path, btc_1h, capsys) -> None:
    db = f"sqlite:///{tmp_path / 'q.sqlite'}"
    assert main(["paper", "--strategy", "trend_following", "--data", btc_1h, *PARAMS,
                 "--bars", "300", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "paper replay of BTC/USDT:USDT 1h (1,054 bars): stopped; 300 bar(s)" in out
    bars = load_bars(btc_1h).bars.iloc[:300]
    expected = Backtest(bars, "trend_following", params={"fast": 10, "slow": 30,
                                                          "direction": "both"},
                        benchmark=None).run().sim.fills
    store = TradingStore.open(db, exchange="paper")
    fills = store.fills(BTC)
    assert [f.price for f in fills] == expected["price"].tolist()
    assert [f.amount for f in fills] == expected["size"].tolist()
    assert main(["orders", "--db", db, "--last", "3"]) == 0
    table = capsys.readouterr().out
    assert f"3 of {len(store.all_orders())} orders (paper" in table
    assert store.all_orders()[-1].client_order_id in table
    assert main(["orders", "--db", db, "--open"]) == 0
    assert "0 of 0 open orders" in capsys.readouterr().out
    assert main(["positions", "--db", db]) == 0
    text = capsys.readouterr().out
    assert "open position(s) (paper)" in text and "equity" in text


def test_live_refuses_without_keys_and_confirmation(monkeypatch, capsys) -> None:
    monkeypatch.delenv("QUANTUM_API_KEY", raising=False)
    monkeypatch.delenv("QUANTUM_API_SECRET", raising=False)
    argv = ["live", "--strategy", "trend_following", "--exchange", "binanceusdm",
            "--symbol", BTC]
    assert main(argv) == 1
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and line.startswith("error: live trading refused:")
    assert "QUANTUM_API_KEY and QUANTUM_API_SECRET are not set" in line
    assert "--confirm-live was not given" in line
    monkeypatch.setenv("QUANTUM_API_KEY", "k-live-not-real-123")
    monkeypatch.setenv("QUANTUM_API_SECRET", "s-live-not-real-456")
    assert main(argv) == 1
    line = capsys.readouterr().out.strip()
    assert "--confirm-live was not given" in line and "not set" not in line
    assert "k-live-not-real-123" not in line and "s-live-not-real-456" not in line
    monkeypatch.delenv("QUANTUM_API_SECRET")
    assert main([*argv, "--confirm-live"]) == 1
    line = capsys.readouterr().out.strip()
    assert "environment variable QUANTUM_API_SECRET is not set" in line
    assert "confirm" not in line


def test_kill_without_a_trader_halts_and_reset_lifts(tmp_path, capsys) -> None:
    db = f"sqlite:///{tmp_path / 'k.sqlite'}"
    assert main(["kill", "--db", db]) == 0
    assert "no trader is running: kill flag and halt stored" in capsys.readouterr().out
    store = TradingStore.open(db)
    assert store.get_state("trading_state") == "halted"
    assert main(["positions", "--db", db]) == 0
    assert "trading is halted" in capsys.readouterr().out
    assert main(["kill", "--db", db, "--reset"]) == 0
    assert store.get_state("trading_state") == "active" and store.get_state("kill") is None


def test_kill_reaches_the_running_trader(tmp_path, btc_1h, capsys) -> None:
    """``quantum kill`` while ``quantum paper`` runs: the trader flattens and stops."""
    db = f"sqlite:///{tmp_path / 'run.sqlite'}"
    store = TradingStore.open(db, exchange="paper")
    result: dict[str, int] = {}

    def killer() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            beat = store.get_state("heartbeat")
            if beat and beat.get("bars", 0) >= 0 and store.fills(BTC):
                break
            time.sleep(0.05)
        result["code"] = main(["kill", "--db", db, "--wait", "30", "--reason", "test kill"])

    thread = threading.Thread(target=killer)
    thread.start()
    code = main(["paper", "--strategy", "buy_and_hold", "--data", btc_1h, "--speed", "40",
                 "--db", db])
    thread.join(60)
    out = capsys.readouterr().out
    assert code == 0 and result["code"] == 0
    assert "killed" in out and "kill switch done: flat" in out
    assert store.get_state("trading_state") == "halted"
    closes = [o for o in store.all_orders() if o.tag.startswith("flatten:")]
    assert len(closes) == 1 and closes[0].state == "filled"
    assert store.positions() == {}


@pytest.mark.network_local
def test_kill_acts_on_the_exchange_when_no_trader_runs(tmp_path, binance_futures_dir,
                                                       monkeypatch, capsys) -> None:
    monkeypatch.setenv("QUANTUM_LOCAL_API_KEY", "kill-test-key-1")
    monkeypatch.setenv("QUANTUM_LOCAL_API_SECRET", "kill-test-secret-1")
    app = create_app(MarketData(binance_futures_dir), trading=TradingOptions(
        Credentials("kill-test-key-1", "kill-test-secret-1"), timeframe="1h", symbols=(BTC,),
        warmup_bars=5, costs=CostsConfig(default_funding_rate=0.0), bars_per_second=20.0))
    paper = app.state.trading.paper
    db = f"sqlite:///{tmp_path / 'direct.sqlite'}"
    with serve_in_thread(app) as url:
        app.state.trading.stop()
        asyncio.run(paper.create_order(OrderRequest(BTC, Side.BUY, LiveOrderType.MARKET, 0.05,
                                                    client_order_id="open-long")))
        asyncio.run(paper.create_order(OrderRequest(BTC, Side.SELL, LiveOrderType.LIMIT, 0.05,
                                                    price=90_000.0, client_order_id="far")))
        app.state.trading.advance(1)
        assert asyncio.run(paper.positions())[BTC].size == 0.05
        app.state.trading.start()
        assert main(["kill", "--db", db, "--exchange-url", url, "--wait", "20"]) == 0
    out = capsys.readouterr().out
    assert "kill switch (no trader running): cancelled 1 order(s), closing 1 position(s); flat" in out
    assert asyncio.run(paper.positions()) == {}
    store = TradingStore.open(db, exchange="local")
    kills = [o for o in store.all_orders() if o.tag.startswith("kill:")]
    assert len(kills) == 1 and kills[0].reduce_only
    assert store.get_order("far").state == "cancelled"
