"""Fault soak at the trader level: the whole :class:`Trader` (exchange feed → strategy → risk
engine → order manager → ``CcxtExchange`` with the real ccxt ``binanceusdm`` client) against
the local exchange replaying real BTC 1h bars, while the local exchange injects every fault it
knows on at least 5 % of the requests each (latency on all of them, answers dropped *after*
the request was processed, HTTP 429, HTTP 503, order rejects, partial fills).

When the storm is over the run must show: no duplicated order (each client order id at most
once on the exchange, each decision sent under one order chain), no lost order (the stored
orders are exactly the exchange's, in the same final state), the stored positions equal the
exchange's, and risk limits intact (every order that added risk was approved by the risk
engine for at least its size, every approved position within the caps, and no fill took a
position beyond what its order's risk decision approved)."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from quantum_trading.execution.ccxt_convert import RetryConfig
from quantum_trading.execution.ccxt_exchange import CcxtExchange
from quantum_trading.execution.local_exchange import (
    Credentials,
    FaultPlan,
    MarketData,
    RandomFaults,
    TradingOptions,
    create_app,
    serve_in_thread,
)
from quantum_trading.execution.local_exchange.app import FaultMiddleware
from quantum_trading.live.config import TraderConfig
from quantum_trading.live.feed import ExchangeFeed, LocalClockDriver
from quantum_trading.live.store import TradingStore
from quantum_trading.live.trader import Trader
from quantum_trading.sim import CostsConfig, RiskConfig

from ._trader_helpers import BTC, WAVES, run

pytestmark = [pytest.mark.network_local, pytest.mark.slow]

KEY, SECRET = "trader-soak-test-key", "trader-soak-test-secret"
KEY_ENV, SECRET_ENV = "QUANTUM_SOAK_API_KEY", "QUANTUM_SOAK_API_SECRET"
FAULTS = RandomFaults(latency_ms=1.0, drop=0.07, rate_limit=0.07, server_error=0.07,
                      reject=0.10, partial=0.35)
RETRY = RetryConfig(max_attempts=3, base_delay_s=0.001, max_delay_s=0.004, seed=7)
RISK = RiskConfig(max_position_frac=0.6, max_gross_exposure=0.6, max_trades_per_day=12)
BARS = 230  # bars handed to the trader (the 40 warm-up bars before them are not)


class _Counting(FaultMiddleware):
    """The app's fault middleware, counting the requests it sees (create requests apart)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app.fault_middleware.app, app.state.faults)
        app.fault_middleware = self
        self.requests = 0
        self.creates = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/fapi/"):
            self.requests += 1
            if scope["method"] == "POST" and scope["path"] in ("/fapi/v1/order",
                                                               "/fapi/v1/algoOrder"):
                self.creates += 1
        await super().__call__(scope, receive, send)


def _replay_positions(fills: list[Any]) -> list[tuple[Any, float, float]]:
    """(fill, position before, position after) for each exchange fill, in order."""
    out, pos = [], 0.0
    for f in fills:
        before = pos
        pos = before + int(f.side) * f.amount
        out.append((f, before, pos))
    return out


def test_trader_fault_soak(tmp_path, binance_futures_dir, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    costs = CostsConfig(default_funding_rate=0.0)
    app = create_app(MarketData(binance_futures_dir), trading=TradingOptions(
        Credentials(KEY, SECRET), timeframe="1h", symbols=(BTC,), warmup_bars=40, costs=costs,
        end="2023-07-16 13:00"))
    counter = _Counting(app)
    paper = app.state.trading.paper
    faults = app.state.faults
    db = f"sqlite:///{tmp_path / 'soak.sqlite'}"
    began = time.monotonic()
    with serve_in_thread(app) as url:
        driver = LocalClockDriver(url)
        calm: dict[str, Any] = {}
        storm: list[bool] = []
        base = [0, 0]

        async def advance() -> dict:
            if not storm:  # the trader has reconciled and started: the storm begins
                storm.append(True)
                base[:] = [counter.requests, counter.creates]
                faults.configure(FaultPlan(random={"*": FAULTS}, seed=20261121))
            answer = await driver.advance()
            if answer.get("done") and not calm:  # the replay is over: the storm too
                calm.update(injected=dict(faults.counts), requests=counter.requests - base[0],
                            creates=counter.creates - base[1])
                faults.configure(FaultPlan())
            return answer

        exchange = CcxtExchange.create("binanceusdm", base_url=url, api_key_env=KEY_ENV,
                                       secret_env=SECRET_ENV, rate_limit_ms=1, retry=RETRY,
                                       timeout_ms=5_000)
        feed = ExchangeFeed(exchange, [BTC], "1h", poll_s=0.01, clock_driver=advance)
        store = TradingStore.open(db, exchange="local")
        cfg = TraderConfig(symbols=(BTC,), timeframe="1h", strategy=WAVES.name,
                           params={"amp": 1.5}, costs=costs, risk=RISK, position_monitor=None,
                           warmup_bars=30, stall_timeout_s=120.0)
        trader = Trader(cfg, exchange=exchange, feed=feed, store=store, strategy=WAVES)
        summary = run(trader.run())
        assert calm, "the replay did not reach its end"
        # a restart in calm weather: reconcile settles what the storm left in flight
        exchange = CcxtExchange.create("binanceusdm", base_url=url, api_key_env=KEY_ENV,
                                       secret_env=SECRET_ENV, rate_limit_ms=1)
        feed = ExchangeFeed(exchange, [BTC], "1h", poll_s=0.01, clock_driver=driver.advance)
        again = Trader(cfg, exchange=exchange, feed=feed, store=TradingStore.open(
            db, exchange="local"), strategy=WAVES)
        run(again.run(max_bars=0))
    elapsed = time.monotonic() - began
    injected, requests, creates = calm["injected"], calm["requests"], calm["creates"]
    ex_orders = {o.client_order_id: o for o in paper.all_orders()}
    ex_fills = run(paper.fills(BTC))
    rates = {"drop": injected.get("drop", 0) / requests,
             "rate_limit": injected.get("rate_limit", 0) / requests,
             "server_error": injected.get("server_error", 0) / requests,
             "reject": injected.get("reject", 0) / creates,
             "partial": injected.get("partial", 0) / max(len(ex_fills), 1)}
    print(f"\ntrader soak: {summary.bars} bars, {summary.orders_sent} orders sent "
          f"({summary.rejected} rejected), {requests} requests, {creates} creates; injected "
          f"{injected} (+ {FAULTS.latency_ms} ms latency on every request); rates "
          f"{ {k: round(v, 3) for k, v in rates.items()} }; {len(ex_orders)} orders and "
          f"{len(ex_fills)} fills on the exchange; {len(summary.alerts)} alerts; {elapsed:.1f} s")
    assert summary.status == "stopped" and summary.bars >= BARS - 5  # (+ the ones seen late)
    assert all(rate >= 0.05 for rate in rates.values()), rates
    assert len(ex_fills) >= 40 and summary.orders_sent >= 60

    # no duplicated order: one order per client id on the exchange (the exchange refuses a
    # second anyway: the ids the trader sent are unique), one order chain per decision
    per_cid = Counter(o.client_order_id for o in paper.all_orders())
    assert max(per_cid.values()) == 1
    stored = {r.client_order_id: r for r in store.all_orders()}
    chains: dict[str, set[str]] = defaultdict(set)
    for row in stored.values():
        if (row.tag or "").startswith(("target:", "flatten:", "exit:")):
            chains[row.tag].add(row.root_id or row.client_order_id)
    doubled = {tag: roots for tag, roots in chains.items() if len(roots) > 1}
    assert doubled == {}, doubled

    # no lost order: the database knows every exchange order and the exchange every stored
    # order that was not refused before it got there; their final states agree
    assert set(ex_orders) <= set(stored)
    never_there = {c for c, r in stored.items() if c not in ex_orders}
    assert all(stored[c].state == "rejected" for c in never_there), \
        {c: stored[c].state for c in never_there}
    for cid, order in ex_orders.items():
        row = stored[cid]
        assert row.state == order.status.value, (cid, row.state, order.status.value)
        assert math.isclose(row.filled or 0.0, order.filled, abs_tol=1e-9), cid
    assert {r.client_order_id for r in store.open_orders()} == {
        o.client_order_id for o in run(paper.open_orders())}
    # fills: the stored ones are the exchange's
    assert sorted((f.fill_id, f.amount) for f in store.fills(BTC)) == sorted(
        (f.id, f.amount) for f in ex_fills)

    # positions: the database's (and the trader's last view) are the exchange's
    ex_pos = {s: p.size for s, p in run(paper.positions()).items() if p.size}
    db_pos = {s: r.size for s, r in store.positions().items()}
    assert db_pos == pytest.approx(ex_pos, abs=1e-12)
    assert sum(int(f.side) * f.amount for f in ex_fills) == pytest.approx(ex_pos.get(BTC, 0.0),
                                                                           abs=1e-9)

    # risk limits intact
    decisions = {d.client_order_id: d for d in store.risk_decisions() if d.client_order_id}
    adding = [r for r in stored.values() if r.origin == "ours" and not r.reduce_only
              and r.client_order_id in ex_orders]
    assert adding
    for row in adding:
        d = decisions.get(row.root_id or row.client_order_id)
        assert d is not None, f"{row.client_order_id} reached the exchange without a decision"
        assert d.action in ("approve", "resize") and d.approved_size != 0.0, (row.tag, d.text)
        assert row.amount <= abs(d.approved_size) + 1e-12, (row.client_order_id, d.text)
    for d in store.risk_decisions():
        if d.action == "reject" or d.reason in ("reduces_risk", "drawdown_flatten"):
            continue
        after = abs(d.position_before + d.approved_size) * d.price
        assert after <= RISK.max_position_frac * d.equity_usd * (1 + 1e-9), d.text
    # no fill took the position beyond what the risk engine approved for an order in flight
    # then: each order is in flight from its decision's reference instant (bar + 1 h) to
    # its last fill (orders sent on stale views of one another may fill in any order)
    allowed = {cid: abs(d.position_before + d.approved_size) for cid, d in decisions.items()}
    sent_at: dict[str, int] = {}
    last_fill: dict[str, Any] = {}
    for f in ex_fills:
        last_fill[f.client_order_id] = f.time
    for cid, row in stored.items():
        root = row.root_id or cid
        if (row.tag or "").startswith("target:") and root in allowed:
            sent_at[cid] = int(row.tag.rsplit("@", 1)[1]) + 3_600_000_000_000
    for f, before, after in _replay_positions(ex_fills):
        if abs(after) <= abs(before) + 1e-12 and before * after >= 0.0:
            continue  # the fill reduced the position
        row = stored.get(f.client_order_id)
        assert row is not None and f.client_order_id in sent_at, (f.client_order_id,
                                                                   row.tag if row else None)
        t = f.time.value
        bound = max(allowed[stored[c].root_id or c] for c in sent_at
                    if c in last_fill and sent_at[c] <= t <= last_fill[c].value)
        assert abs(after) <= bound * (1 + 1e-9) + 1e-9, (
            f"fill {f.id} of {row.client_order_id} ({row.tag}) took the position to {after} "
            f"beyond the {bound} the risk engine approved for the orders in flight")
    per_day = Counter(d.time.date() for d in store.risk_decisions()
                      if d.action != "reject" and d.reason not in ("reduces_risk",
                                                                   "drawdown_flatten"))
    assert max(per_day.values()) <= RISK.max_trades_per_day
    assert elapsed < 90.0
