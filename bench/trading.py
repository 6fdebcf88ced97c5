"""Benchmark the trader: decision latency, paper-exchange order rate, and the plan's success
metrics measured on a replay. Prints one JSON object:

    .venv/bin/python bench/trading.py

Data: real Binance BTC/USDT:USDT bars from the shared data folder (``--bars`` 5m bars for the
latency, ``--metric-bars`` 1m bars for the metrics).

* **latency** — the :class:`~quantum_trading.live.trader.Trader` on a paper replay
  (``PaperExchange`` + ``ReplayFeed``, unpaced), SQLite file database in a temporary folder.
  Decision latency = wall time from the moment a closed bar is handed to the trader to the
  moment its last order has been handed to the exchange (``create_order`` returned), for the
  bars that sent orders; also the CPU time of the trader's thread over the same span (what
  the code costs, without the time the OS gave to other processes). Split into: account
  read + risk observation + exits, strategy (stepped by one bar, or recomputed on its
  window), sizing + risk checks, write-ahead (every order of the bar in one ``write`` to the
  journal beside the SQLite file), submit. Three runs: ``trend_following`` as is (an order
  on a cross; default risk limits: 10 % of equity a position); with ``rebalance=
  "every_bar"`` and a 1.5× position cap (the position is re-sized to the target almost
  every bar: many samples); and that again with the rule recomputed on its whole window
  each bar instead of stepped (``window_bars`` = every bar of the run: the same decisions,
  the cost of a strategy that cannot be stepped).
* **orders_per_s** — the paper exchange alone: resting limit orders created (up to 1,000
  open: each create reads the margin reserved by every open order, so the rate falls as the
  book grows); create + cancel pairs; market orders created and filled by the next bar
  (10 a bar); and create + cancel pairs through the order manager (its state machine and
  events included).
* **metrics** — a replay of 1m bars with ticks every second of replay time (the order
  manager and the position monitor poll each tick): passive limit entries (stale after 30 s,
  re-priced 3 times, then market), stop-losses by the position monitor, a 1 h time stop.
  Reported: the longest a limit order stayed open (replay seconds), the wall-clock delay from
  the bar that crossed a stop to the stop's market order reaching the exchange, and positions'
  holding times against the 1 h limit (exit sent; exit filled at the next bar's open).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest.inputs import load_bars
from quantum_trading.domain import Side, default_instrument
from quantum_trading.execution.config import OrderManagerConfig, PositionMonitorConfig
from quantum_trading.execution.models import LiveOrderType, OrderRequest
from quantum_trading.execution.order_manager import OrderManager
from quantum_trading.execution.paper import PaperExchange
from quantum_trading.live.config import TraderConfig
from quantum_trading.live.feed import ReplayFeed
from quantum_trading.live.store import TradingStore
from quantum_trading.live.trader import Trader
from quantum_trading.paths import real_data_dir
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig

BTC = "BTC/USDT:USDT"
STAGES = ("account_risk_exits", "strategy", "sizing_risk", "write_ahead", "submit")


def _pct(values: list[float], scale: float = 1e-3) -> dict[str, float]:
    a = np.asarray(values, dtype=float) * scale
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "max": round(float(a.max()), 3)}


def _bars(timeframe: str, n: int) -> pd.DataFrame:
    folder = real_data_dir() / "binance" / "futures"
    return load_bars(folder / f"BTC_USDT_USDT-{timeframe}-futures.feather").bars.iloc[:n]


def _trader(bars: pd.DataFrame, db: str, timeframe: str, *, account: AccountConfig,
            tick_s: float | None = None, **config: Any) -> tuple[Trader, PaperExchange]:
    paper = PaperExchange([default_instrument(BTC)], account=account, timeframe=timeframe)
    feed = ReplayFeed(paper, {BTC: bars}, tick_s=tick_s)
    store = TradingStore.open(db, exchange="paper", clock=feed.now)
    cfg = TraderConfig(symbols=(BTC,), timeframe=timeframe, strategy="trend_following",
                       account=account, **config)
    return Trader(cfg, exchange=paper, feed=feed, store=store), paper


def latency(n_bars: int, folder: Path) -> dict[str, Any]:
    """Decision latency of two runs (see the module docstring), in milliseconds."""
    bars = _bars("5m", n_bars)
    out: dict[str, Any] = {}
    every_bar = AccountConfig(rebalance="every_bar"), RiskConfig(max_position_frac=1.5)
    for name, (account, risk), window in (
            ("on_change", (AccountConfig(), RiskConfig()), None),
            ("every_bar", every_bar, None),
            ("every_bar_recomputed", every_bar, n_bars)):
        trader, _ = _trader(bars, f"sqlite:///{folder / f'lat-{name}.sqlite'}", "5m",
                            account=account, params={"fast": 10, "slow": 30, "direction": "both"},
                            position_monitor=None, risk=risk, window_bars=window)
        t0 = time.perf_counter()
        summary = asyncio.run(trader.run())
        wall = time.perf_counter() - t0
        stages = np.asarray(summary.stages_us)
        out[name] = {
            "bars": summary.bars, "orders": summary.orders_sent, "run_s": round(wall, 2),
            "bar_in_to_order_out_ms": _pct(summary.latencies_us),
            "cpu_bar_in_to_order_out_ms": _pct(summary.cpu_us),
            "without_strategy_ms": _pct(list(np.asarray(summary.latencies_us) - stages[:, 1])),
            "stages_ms": {k: _pct(list(stages[:, i])) for i, k in enumerate(STAGES)},
        }
    return out


def orders_per_s(n: int) -> dict[str, float]:
    """Orders per second the paper exchange sustains (see the module docstring)."""
    t0 = pd.Timestamp("2023-07-04 12:00", tz="UTC")
    bar = {"open": 30_000.0, "high": 30_100.0, "low": 29_900.0, "close": 30_000.0,
           "volume": 1e6}

    def fresh() -> PaperExchange:
        paper = PaperExchange([default_instrument(BTC)], timeframe="1m",
                              account=AccountConfig(initial_cash_usd=1e9, leverage=10.0),
                              costs=CostsConfig(default_funding_rate=0.0))
        paper.process_bar(BTC, bar, time=t0)
        return paper

    def limit(k: int, side: Side = Side.BUY) -> OrderRequest:
        return OrderRequest(BTC, side, LiveOrderType.LIMIT, 0.01, price=20_000.0,
                            client_order_id=f"b{k}")

    async def resting() -> float:  # the book grows: each create scans the open orders
        paper, m = fresh(), min(n, 1000)
        s = time.perf_counter()
        for k in range(m):
            await paper.create_order(limit(k))
        return m / (time.perf_counter() - s)

    async def create_cancel() -> float:
        paper = fresh()
        s = time.perf_counter()
        for k in range(n):
            await paper.create_order(limit(k))
            await paper.cancel_order(BTC, client_order_id=f"b{k}")
        return n / (time.perf_counter() - s)

    async def market_filled() -> float:
        paper = fresh()
        s = time.perf_counter()
        for k in range(n // 10):
            for j in range(10):
                side = Side.BUY if (k + j) % 2 == 0 else Side.SELL
                await paper.create_order(OrderRequest(BTC, side, LiveOrderType.MARKET, 0.01,
                                                      client_order_id=f"m{k}-{j}"))
            paper.process_bar(BTC, bar, time=t0 + pd.Timedelta(minutes=k + 1))
        return (n // 10) * 10 / (time.perf_counter() - s)

    async def through_manager() -> float:
        paper = fresh()
        om = OrderManager(paper, clock=lambda: t0, config=OrderManagerConfig())
        s = time.perf_counter()
        for k in range(n):
            await om.submit(limit(k))
            await om.cancel(f"b{k}")
        return n / (time.perf_counter() - s)

    return {name: round(asyncio.run(fn()), 0) for name, fn in (
        ("limit_resting_up_to_1000_open", resting), ("create_and_cancel_pairs", create_cancel),
        ("market_created_and_filled", market_filled), ("create_and_cancel_via_order_manager",
                                                       through_manager))}


class _Timed:
    """Wraps an exchange: wall time of each create_order and the bar event it belongs to."""

    def __init__(self, inner: PaperExchange, trader_ref: list[Trader]) -> None:
        self._inner, self._ref = inner, trader_ref
        self.created: dict[str, tuple[float, float]] = {}
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create_order(self, request: OrderRequest) -> Any:
        snap = await self._inner.create_order(request)
        received = getattr(self._ref[0], "_event_received", 0.0)
        self.created.setdefault(request.client_order_id, (time.perf_counter(), received))
        return snap


def metrics(n_bars: int, folder: Path, max_age_s: float = 3600.0) -> dict[str, Any]:
    """The plan's success metrics on a 1m replay with 1 s ticks (see the module docstring)."""
    bars = _bars("1m", n_bars)
    trader, paper = _trader(bars, f"sqlite:///{folder / 'metrics.sqlite'}", "1m",
                            account=AccountConfig(), tick_s=1.0,
                            params={"fast": 5, "slow": 20, "direction": "both",
                                    "stop_loss_pct": 0.15},
                            entry_order="limit", stop_mode="monitor", poll_s=1.0,
                            position_monitor=PositionMonitorConfig(max_position_age_s=max_age_s,
                                                                   max_loss_pct=None))
    ref = [trader]
    timed = _Timed(paper, ref)
    trader.exchange = timed
    trader.om.exchange = timed  # the order manager sends through the same wrapper
    on_bar = trader.on_bar

    async def stamped(event: Any) -> None:
        trader._event_received = event.received  # type: ignore[attr-defined]
        await on_bar(event)

    trader.on_bar = stamped  # type: ignore[method-assign]
    t0 = time.perf_counter()
    summary = asyncio.run(trader.run())
    wall = time.perf_counter() - t0
    limits = []
    for o in trader.om.orders.values():
        if o.request.order_type is LiveOrderType.LIMIT and o.sent_at is not None:
            end = o.history[-1][0] if o.is_terminal else trader.clock()
            limits.append((end - o.sent_at).total_seconds())
    stop_ms = [1e3 * (timed.created[a.client_order_id][0] - timed.created[a.client_order_id][1])
               for a in trader.monitor.actions if a.trigger.value == "stop_loss"
               and a.client_order_id in timed.created]
    age_exits = [a.age_s for a in trader.monitor.actions if a.trigger.value == "max_age"]
    fills = paper.fill_frame()
    held, opened, prev = [], None, 0.0
    for t, after in zip(fills["time"], fills["position_after"], strict=True):
        if opened is not None and (after == 0.0 or np.sign(after) != np.sign(prev)):
            held.append((t - opened).total_seconds())  # closed (or flipped) here
            opened = None
        if opened is None and after != 0.0:
            opened = t
        prev = after
    tick = 1.0
    return {
        "bars": summary.bars, "ticks": summary.ticks, "orders": summary.orders_sent,
        "run_s": round(wall, 1),
        "limit_orders": {"n": len(limits), "max_open_s": round(max(limits), 1) if limits else None,
                         "over_60s": sum(x > 60.0 for x in limits)},
        "stop_loss_exits": {"n": len(stop_ms),
                            "trigger_to_sent_ms": _pct(stop_ms, 1.0) if stop_ms else None,
                            "over_1s": sum(x > 1000.0 for x in stop_ms)},
        "time_stop": {"limit_s": max_age_s, "exits": len(age_exits),
                      "max_age_at_exit_sent_s": max(age_exits) if age_exits else None,
                      "exits_sent_late": sum(a > max_age_s + tick for a in age_exits),
                      "positions": len(held), "max_held_until_fill_s": max(held) if held else None,
                      "held_past_limit_plus_one_bar": sum(h > max_age_s + 60.0 for h in held)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=3000, help="5m bars for the latency runs")
    parser.add_argument("--orders", type=int, default=20_000, help="orders per rate test")
    parser.add_argument("--metric-bars", type=int, default=1440, help="1m bars for metrics")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result = {
            "benchmark": "trading",
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "platform": platform.platform()},
            "latency": latency(args.bars, folder),
            "orders_per_s": orders_per_s(args.orders),
            "metrics": metrics(args.metric_bars, folder),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
