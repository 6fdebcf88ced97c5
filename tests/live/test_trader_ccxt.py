"""The trader through the real ccxt client (``CcxtExchange``) against the local exchange:
fills equal to the backtest's, and crash recovery under SIGKILL.

Parity config: the trader sizes its orders from the ticker (the last close), as a live trader
does, while the backtest sizes them at the next open; so this test replays real BTC 1h bars
with each open set to the previous close (high / low widened to include it), written as a
freqtrade data folder that both the local exchange and the backtest read. Funding off
(``default_funding_rate=0``; no funding file), no intrabar stops, position monitor off. The
local exchange's clock is moved by the trader itself (lock-step, ``POST /_local/advance``)."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.backtest import Backtest
from quantum_trading.execution.ccxt_exchange import CcxtExchange
from quantum_trading.execution.local_exchange import (
    Credentials,
    MarketData,
    TradingOptions,
    create_app,
    serve_in_thread,
)
from quantum_trading.execution.local_exchange.trading import instruments_from_market_data
from quantum_trading.live.config import TraderConfig
from quantum_trading.live.feed import ExchangeFeed, LocalClockDriver
from quantum_trading.live.store import TradingStore
from quantum_trading.live.trader import Trader
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig

from ._trader_helpers import BTC, FILL_COLUMNS, run

pytestmark = pytest.mark.network_local

KEY, SECRET = "trader-ccxt-test-key", "trader-ccxt-test-secret"
KEY_ENV, SECRET_ENV = "QUANTUM_LOCAL_API_KEY", "QUANTUM_LOCAL_API_SECRET"


def _opens_at_previous_close(bars: pd.DataFrame) -> pd.DataFrame:
    out = bars[["open", "high", "low", "close", "volume"]].copy()
    out["open"] = out["close"].shift(1).fillna(out["open"])
    out["high"] = np.maximum(out["high"], out["open"])
    out["low"] = np.minimum(out["low"], out["open"])
    return out


def test_ccxt_trader_fills_equal_the_backtest(tmp_path, binance_futures_dir, monkeypatch) -> None:
    raw = pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather")
    bars = _opens_at_previous_close(raw.set_index("date").iloc[:200])
    folder = tmp_path / "data"
    folder.mkdir()
    bars.reset_index().to_feather(folder / "BTC_USDT_USDT-1h-futures.feather")
    market = MarketData(folder)
    instrument = instruments_from_market_data(market)[BTC]
    costs = CostsConfig(default_funding_rate=0.0)
    params = {"fast": 5, "slow": 20, "direction": "both"}
    expected = Backtest(bars, "trend_following", params=params, instrument=instrument,
                        costs=costs, account=AccountConfig(), risk=RiskConfig(),
                        benchmark=None).run().sim.fills
    app = create_app(market, trading=TradingOptions(Credentials(KEY, SECRET), timeframe="1h",
                                                    symbols=(BTC,), warmup_bars=1, costs=costs))
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with serve_in_thread(app) as url:
        exchange = CcxtExchange.create("binanceusdm", base_url=url, api_key_env=KEY_ENV,
                                       secret_env=SECRET_ENV, rate_limit_ms=1)
        feed = ExchangeFeed(exchange, [BTC], "1h", poll_s=0.01,
                            clock_driver=LocalClockDriver(url).advance)
        store = TradingStore.open(f"sqlite:///{tmp_path / 't.sqlite'}", exchange="local")
        cfg = TraderConfig(symbols=(BTC,), timeframe="1h", strategy="trend_following",
                           params=params, costs=costs, position_monitor=None, warmup_bars=1)
        summary = run(Trader(cfg, exchange=exchange, feed=feed, store=store).run())
    got = app.state.trading.paper.fill_frame()
    assert summary.rejected == 0 and summary.bars == len(bars) - 1
    assert len(got) == len(expected) >= 8
    assert (got["time"].to_numpy() == expected["time"].to_numpy()).all()
    np.testing.assert_array_equal(got[FILL_COLUMNS].to_numpy(float),
                                  expected[FILL_COLUMNS].to_numpy(float))
    assert sorted(f.fill_id for f in store.fills(BTC)) == sorted(got["fill_id"].astype(str))


# ------------------------------------------------------------------------------ crash recovery
def _trader_argv(url: str, db: str, *, bars: int | None = None) -> list[str]:
    argv = ["paper", "--exchange-url", url, "--symbol", BTC, "--timeframe", "1m",
            "--strategy", "trend_following", "-p", "fast=5", "-p", "slow=20",
            "-p", "direction=both", "-p", "stop_loss_pct=0.15", "--warmup", "30",
            "--poll-s", "0.02", "--db", db, "--keep-orders"]
    return argv + (["--bars", str(bars)] if bars is not None else [])


def _state(app, store: TradingStore) -> tuple[set, set, dict, dict]:
    paper = app.state.trading.paper
    exchange_open = {o.client_order_id for o in run(paper.open_orders())}
    db_open = {r.client_order_id for r in store.open_orders()}
    exchange_pos = {s: p.size for s, p in run(paper.positions()).items()}
    db_pos = {s: r.size for s, r in store.positions().items()}
    return exchange_open, db_open, exchange_pos, db_pos


def _wait_started(store: TradingStore, after_run: int, proc, timeout_s: float = 60.0,
                  log: Path | None = None) -> int:
    """Wait until a trader run newer than ``after_run`` has reconciled and started (it writes
    its first heartbeat then); returns its run id."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        beat = store.get_state("heartbeat") or {}
        if (beat.get("run_id") or 0) > after_run:
            return int(beat["run_id"])
        alive = proc.poll() is None if hasattr(proc, "poll") else proc.is_alive()
        if not alive:
            tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
            raise AssertionError(f"the trader died while starting:\n{tail}")
        time.sleep(0.02)
    raise AssertionError("the trader did not start in time")


@pytest.mark.slow
def test_sigkill_at_random_points_never_doubles_an_order(tmp_path, binance_futures_dir,
                                                         monkeypatch) -> None:
    """The trader (``quantum paper --exchange-url``) is killed with SIGKILL 20 times at random
    moments (seeded) while the local exchange replays real 1m bars at 100 bars/s (the
    trader decides on the newest bar when it falls behind). The replay
    clock is paused while the trader is down and restarts; once the restarted trader has
    reconciled (its first heartbeat), the database and the exchange agree on open orders and
    positions. In the end no client order id reached the exchange twice and the stored fills
    are exactly the exchange's.

    The first run is ``python -m quantum_trading.cli.main``; the others are forked from a
    forkserver that imported the package once (the same entry point, ``main(argv)``), to keep
    the test within a minute."""
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    rng = random.Random(20261121)
    db = f"sqlite:///{tmp_path / 'crash.sqlite'}"
    app = create_app(MarketData(binance_futures_dir), trading=TradingOptions(
        Credentials(KEY, SECRET), timeframe="1m", symbols=(BTC,), warmup_bars=40,
        costs=CostsConfig(default_funding_rate=0.0), bars_per_second=100.0))
    session = app.state.trading
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([
        "quantum_trading.cli.main", "quantum_trading.cli.trade", "quantum_trading.live.trader",
        "quantum_trading.live.feed", "quantum_trading.execution.ccxt_exchange",
        "live._warm_trader", "ccxt.async_support", "alembic.command", "alembic.script",
        "alembic.runtime.migration", "sqlalchemy.dialects.sqlite"])
    from quantum_trading.cli.main import main

    checks, run_id = 0, 0
    with serve_in_thread(app) as url:
        session.stop()  # the replay clock runs only while a started trader trades
        store = TradingStore.open(db, exchange="local")
        for k in range(21):
            if k == 0:
                log_file = open(tmp_path / "trader-0.log", "wb")
                proc: object = subprocess.Popen(
                    [sys.executable, "-m", "quantum_trading.cli.main", *_trader_argv(url, db)],
                    stdout=log_file, stderr=subprocess.STDOUT, env=os.environ.copy())
            else:
                proc = ctx.Process(target=main, args=(_trader_argv(url, db),), daemon=True)
                proc.start()
            run_id = _wait_started(store, run_id, proc, log=tmp_path / "trader-0.log")
            if k > 0:  # restarted after a SIGKILL: reconciled before trading
                ex_open, db_open, ex_pos, db_pos = _state(app, store)
                assert ex_open == db_open, f"after kill {k}: open orders differ"
                assert ex_pos == db_pos, f"after kill {k}: positions differ"
                checks += 1
            session.start()
            time.sleep(rng.uniform(0.3, 1.3))
            pid = proc.pid
            os.kill(pid, signal.SIGKILL)
            session.stop()
            if k == 0:
                proc.wait(10)  # type: ignore[attr-defined]
            else:
                proc.join(10)  # type: ignore[attr-defined]
                assert proc.exitcode == -signal.SIGKILL  # type: ignore[attr-defined]
        final = ctx.Process(target=main, args=(_trader_argv(url, db, bars=0),), daemon=True)
        final.start()
        final.join(30)
        assert final.exitcode == 0
        ex_open, db_open, ex_pos, db_pos = _state(app, store)
        assert (ex_open, ex_pos) == (db_open, db_pos)
    paper = session.paper
    ids = Counter(o.client_order_id for o in paper.all_orders())
    assert ids and max(ids.values()) == 1, "a client order id reached the exchange twice"
    ours = {r.client_order_id for r in store.all_orders() if r.origin == "ours"}
    assert {c for c in ids if not c.startswith("autoclose")} <= ours
    exchange_fills = {(f.id, f.client_order_id, f.amount, f.price) for f in run(paper.fills(BTC))}
    stored = [(f.fill_id, f.client_order_id, f.amount, f.price) for f in store.fills(BTC)]
    assert len(stored) == len(set(stored)) and set(stored) == exchange_fills
    repaired = Counter(a.kind for a in store.alerts() if a.kind.startswith("reconcile:"))
    assert checks == 20 and len(exchange_fills) >= 10, (checks, len(exchange_fills), repaired)
    assert repaired, "the kills should have left something for reconcile to repair"
