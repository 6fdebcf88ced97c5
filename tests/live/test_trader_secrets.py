"""API key and secret never appear in logs, the database or any written file: the trader and
the CLI run with fake credentials in the environment against the local exchange; a leak is
provoked on purpose (an error text and an alert quoting both); then the captured output, the
SQLite files' bytes and every file written are searched."""

from __future__ import annotations

import logging

import pytest

from quantum_trading.cli.main import main
from quantum_trading.execution.local_exchange import (
    Credentials,
    MarketData,
    TradingOptions,
    create_app,
    serve_in_thread,
)
from quantum_trading.live.store import TradingStore
from quantum_trading.sim import CostsConfig

pytestmark = pytest.mark.network_local

BTC = "BTC/USDT:USDT"
KEY = "FAKE-API-KEY-7c1e9a3b5d0f"
SECRET = "FAKE-API-SECRET-2f4a6c8e0b1d"


def test_credentials_never_reach_logs_database_or_files(tmp_path, binance_futures_dir,
                                                        monkeypatch, capfd) -> None:
    monkeypatch.setenv("QUANTUM_LOCAL_API_KEY", KEY)
    monkeypatch.setenv("QUANTUM_LOCAL_API_SECRET", SECRET)
    monkeypatch.setenv("QUANTUM_USER_DATA", str(tmp_path / "user_data"))
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'secrets.sqlite'}"
    app = create_app(MarketData(binance_futures_dir), trading=TradingOptions(
        Credentials(KEY, SECRET), timeframe="1h", symbols=(BTC,), warmup_bars=30,
        costs=CostsConfig(default_funding_rate=0.0)))
    with serve_in_thread(app) as url:
        assert main(["paper", "--exchange-url", url, "--symbol", BTC, "--timeframe", "1h",
                     "--strategy", "trend_following", "-p", "fast=5", "-p", "slow=20",
                     "-p", "direction=both", "-p", "stop_loss_pct=1", "--speed", "200",
                     "--bars", "30", "--warmup", "30", "--db", db, "--verbose"]) == 0
        # what a careless exchange error or adapter could say
        logging.getLogger("quantum_trading.live.trader").error(
            "exchange said: bad signature for key %s with secret %s", KEY, SECRET)
        store = TradingStore.open(db, exchange="local")
        store.record_alert("test:leak", f"request failed: X-MBX-APIKEY={KEY} secret={SECRET}")
        store.set_state("leak", {"text": f"{KEY}/{SECRET}"})
        for argv in (["orders", "--db", db], ["positions", "--db", db],
                     ["kill", "--db", db, "--exchange-url", url, "--wait", "1"]):
            assert main(argv) == 0
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert "paper trading BTC/USDT:USDT 1h" in text and "***" in text
    assert len(store.all_orders()) > 0
    assert store.alerts("test:leak")[0].message == "request failed: X-MBX-APIKEY=*** secret=***"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("secrets.sqlite") for p in files)
    for secret in (KEY, SECRET):
        assert secret not in text
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"{secret[:8]}… found in {path}"
