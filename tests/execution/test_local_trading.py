"""The local exchange as a trading venue for the real ccxt ``binanceusdm`` client: signed order,
position, balance and leverage routes backed by the paper exchange replaying real Binance bars;
signature checks; client order ids; each fault kind as ccxt sees it; the replay clock; paper
fills over HTTP equal to the backtest's."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

import ccxt
import httpx
import numpy as np
import pandas as pd
import pytest

from quantum_trading.cli.main import main
from quantum_trading.data.download import make_client
from quantum_trading.domain import Signals
from quantum_trading.execution.local_exchange import (
    Credentials,
    FaultPlan,
    MarketData,
    RandomFaults,
    TradingOptions,
    create_app,
    parse_fault_specs,
    serve_in_thread,
)
from quantum_trading.execution.local_exchange import server as server_module
from quantum_trading.execution.local_exchange.signing import sign_query
from quantum_trading.execution.local_exchange.trading import instruments_from_market_data
from quantum_trading.sim import AccountConfig, CostsConfig, simulate

# generous timeouts: the local exchange runs in this process's threads, slow when the
# machine is loaded (httpx's default 5 s timed out on a loaded 2-core machine)
http_get = functools.partial(httpx.get, timeout=60.0)
http_post = functools.partial(httpx.post, timeout=60.0)

pytestmark = pytest.mark.network_local

KEY, SECRET = "test-api-key", "test-api-secret"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
FILL_COLUMNS = [
    "side",
    "size",
    "price",
    "ref_price",
    "fee_usd",
    "spread_usd",
    "slippage_usd",
    "impact_usd",
    "realized_pnl_usd",
    "position_after",
    "cash_after_usd",
]


@pytest.fixture(scope="module")
def market_data(binance_futures_dir: Path) -> MarketData:
    return MarketData(binance_futures_dir)


def options(**kw) -> TradingOptions:
    kw.setdefault("timeframe", "1h")
    kw.setdefault("symbols", (BTC, ETH))
    kw.setdefault("warmup_bars", 30)
    return TradingOptions(Credentials(KEY, SECRET), **kw)


@pytest.fixture
def venue(market_data) -> Iterator[tuple[str, object]]:
    app = create_app(market_data, trading=options())
    with serve_in_thread(app) as url:
        yield url, app


def client_for(url: str, monkeypatch, *, key: str = KEY, secret: str = SECRET) -> ccxt.Exchange:
    monkeypatch.setenv("QT_TEST_KEY", key)
    monkeypatch.setenv("QT_TEST_SECRET", secret)
    client = make_client(
        "binanceusdm", base_url=url, api_key_env="QT_TEST_KEY", secret_env="QT_TEST_SECRET"
    )
    client.rateLimit = 1
    # ccxt picks Binance's USDⓈ-M error codes by the host name (fapi.binance.com); the local
    # exchange has another host, so point the lookup at that table
    client.get_exceptions_by_url = lambda url, kind: client.exceptions["linear"].get(kind, {})
    return client


def advance(url: str, bars: int = 1) -> dict:
    response = http_post(f"{url}/_local/advance", params={"bars": bars})
    assert response.status_code == 200
    return response.json()


def signed(
    url: str,
    method: str,
    path: str,
    params: dict,
    *,
    secret: str = SECRET,
    key: str | None = KEY,
    timestamp: int | None = None,
) -> httpx.Response:
    query = dict(params, timestamp=timestamp or int(time.time() * 1000))
    text = "&".join(f"{k}={v}" for k, v in query.items())
    text += "&signature=" + sign_query(text, secret)
    headers = {"X-MBX-APIKEY": key} if key else {}
    return httpx.request(method, f"{url}{path}?{text}", headers=headers)


# --------------------------------------------------------------------------- trading with ccxt
def test_trading_round_trip_with_ccxt(venue, monkeypatch) -> None:
    url, _ = venue
    client = client_for(url, monkeypatch)
    assert BTC in client.load_markets()
    assert client.set_leverage(5, BTC)["leverage"] == 5
    order = client.create_order(BTC, "market", "buy", 0.05, None, {"clientOrderId": "mkt-1"})
    assert (order["status"], order["clientOrderId"], order["filled"]) == ("open", "mkt-1", 0.0)
    clock = advance(url)
    assert clock["fills"] == 1
    order = client.fetch_order(None, BTC, {"clientOrderId": "mkt-1"})
    assert (order["status"], order["filled"], order["type"]) == ("closed", 0.05, "market")
    bar_open = client.fetch_ohlcv(BTC, "1h", limit=1)[-1]
    assert bar_open[0] == clock["time"] - 3_600_000  # the bar it filled in is the last closed
    assert order["average"] == pytest.approx(bar_open[1] * (1 + 1.5e-4))

    (position,) = client.fetch_positions()
    assert (position["symbol"], position["side"], position["contracts"]) == (BTC, "long", 0.05)
    assert position["entryPrice"] == pytest.approx(order["average"])
    balance = client.fetch_balance()["USDT"]
    assert balance["total"] == pytest.approx(balance["free"] + balance["used"])
    assert balance["used"] == pytest.approx(0.05 * bar_open[4] / 5, rel=1e-9)
    (trade,) = client.fetch_my_trades(BTC)
    assert (trade["order"], trade["amount"], trade["takerOrMaker"]) == (order["id"], 0.05, "taker")
    assert trade["fee"]["cost"] == pytest.approx(0.05 * order["average"] * 4e-4)

    limit = client.create_order(BTC, "limit", "buy", 0.01, 20_000, {"clientOrderId": "lim-1"})
    assert limit["status"] == "open" and limit["price"] == 20_000
    assert [o["clientOrderId"] for o in client.fetch_open_orders(BTC)] == ["lim-1"]
    assert client.cancel_order(None, BTC, {"clientOrderId": "lim-1"})["status"] == "canceled"
    assert client.fetch_open_orders(BTC) == []

    stop = client.create_order(
        BTC,
        "market",
        "sell",
        0.05,
        None,
        {"stopLossPrice": 20_000, "reduceOnly": True, "clientOrderId": "sl-1"},
    )
    assert (stop["status"], stop["triggerPrice"], stop["clientOrderId"]) == ("open", 20_000, "sl-1")
    algo = client.fetch_open_orders(BTC, params={"trigger": True})
    assert [o["clientOrderId"] for o in algo] == ["sl-1"]
    client.cancel_order(None, BTC, {"clientOrderId": "sl-1", "trigger": True})
    assert (
        client.fetch_order(None, BTC, {"clientOrderId": "sl-1", "trigger": True})["status"]
        == "canceled"
    )

    last = client.fetch_ticker(BTC)["last"]
    take = client.create_order(
        BTC,
        "market",
        "sell",
        0.05,
        None,
        {"takeProfitPrice": round(last * 0.999, 1), "reduceOnly": True, "clientOrderId": "tp-1"},
    )
    assert take["status"] == "open"
    advance(url)  # the bar opens above the level: it triggers at the open
    done = client.fetch_order(None, BTC, {"clientOrderId": "tp-1"})
    assert (done["status"], done["filled"]) == ("closed", 0.05)
    assert (
        client.fetch_order(None, BTC, {"clientOrderId": "tp-1", "trigger": True})["status"]
        == "closed"
    )
    assert client.fetch_positions() == []
    assert len(client.fetch_my_trades(BTC)) == 2

    book = client.fetch_order_book(BTC, 5)
    quotes = client.fetch_bids_asks([BTC])[BTC]
    assert book["bids"][0][0] == quotes["bid"] < quotes["ask"] == book["asks"][0][0]
    funding = client.fetch_funding_rate(BTC)
    assert funding["markPrice"] == client.fetch_ticker(BTC)["last"]
    assert funding["fundingTimestamp"] % (8 * 3_600_000) == 0


def test_paper_fills_over_http_equal_the_backtest(
    market_data, binance_futures_dir, monkeypatch
) -> None:
    """The key "one simulator" check end to end: ccxt market orders sent after bar t's close
    fill at bar t+1's open exactly as ``sim.simulate`` fills the same orders on the same bars."""
    bars = (
        pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather")
        .set_index("date")
        .iloc[:120]
    )
    funding = pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-8h-funding_rate.feather")
    funding = funding.set_index("date")["open"]
    marks = pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-8h-mark.feather")
    marks = marks.set_index("date")["open"]  # the server settles funding at the stored marks
    target = pd.Series(np.nan, index=bars.index, name=BTC)
    target.iloc[[3, 20, 41, 60, 85, 100]] = [1.0, -2.0, 0.5, 0.0, 2.5, -1.0]
    inst = instruments_from_market_data(market_data)[BTC]
    costs = CostsConfig(slippage_bps=2.0)
    res = simulate(
        bars,
        Signals(target),
        instruments=inst,
        costs=costs,
        account=AccountConfig(leverage=3.0),
        funding=funding,
        mark=marks,
    )
    orders = dict(zip(res.fills["time"], res.fills.to_dict("records"), strict=True))
    assert len(orders) == 6 and res.totals["funding_usd"] != 0.0

    app = create_app(market_data, trading=options(symbols=(BTC,), warmup_bars=1, costs=costs))
    with serve_in_thread(app) as url:
        client = client_for(url, monkeypatch)
        client.set_leverage(3, BTC)
        fed = 1  # the warm-up bar
        for when, fill in orders.items():  # each order after the close of the bar before
            at = bars.index.get_loc(when)
            advance(url, at - fed)
            fed = at
            side = "buy" if fill["side"] > 0 else "sell"
            client.create_order(
                BTC, "market", side, fill["size"], None, {"clientOrderId": f"bt-{at}"}
            )
        advance(url, len(bars) - fed)
        trades = client.fetch_my_trades(BTC)
    paper = app.state.trading.paper
    got = paper.fill_frame()
    np.testing.assert_array_equal(
        got[FILL_COLUMNS].to_numpy(float), res.fills[FILL_COLUMNS].to_numpy(float)
    )
    assert [t["price"] for t in trades] == res.fills["price"].tolist()
    assert [t["fee"]["cost"] for t in trades] == res.fills["fee_usd"].tolist()
    assert paper.margin_summary().equity_usd == res.equity.iloc[-1]


# --------------------------------------------------------------------------- signing and ids
def test_signature_and_key_checks(venue, monkeypatch) -> None:
    url, _ = venue
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        client_for(url, monkeypatch, secret="wrong-secret").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        client_for(url, monkeypatch, key="wrong-key").fetch_balance()
    bad = signed(url, "GET", "/fapi/v3/account", {}, secret="nope")
    assert (bad.status_code, bad.json()) == (
        400,
        {"code": -1022, "msg": "Signature for this request is not valid."},
    )
    assert signed(url, "GET", "/fapi/v3/account", {}, key="other").status_code == 401
    assert signed(url, "GET", "/fapi/v3/account", {}, key=None).json()["code"] == -2014
    stale = signed(url, "GET", "/fapi/v3/account", {}, timestamp=int(time.time() * 1000) - 60_000)
    assert stale.json()["code"] == -1021
    assert signed(url, "GET", "/fapi/v3/account", {}).status_code == 200
    unsigned = http_get(f"{url}/fapi/v3/account", headers={"X-MBX-APIKEY": KEY})
    assert unsigned.json()["code"] == -1022
    assert (
        http_get(f"{url}/fapi/v1/ticker/bookTicker", params={"symbol": "BTCUSDT"}).status_code
        == 200
    )


def test_client_order_ids_follow_binance(venue, monkeypatch) -> None:
    url, app = venue
    client = client_for(url, monkeypatch)
    client.load_markets()
    client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="-4116"):  # unique among open orders
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "dup-1"})
    assert len(app.state.trading.paper.all_orders(BTC)) == 1
    advance(url)
    again = client.create_order(BTC, "market", "buy", 0.02, None, {"clientOrderId": "dup-1"})
    assert again["status"] == "open" and again["amount"] == 0.02  # a finished id may be reused
    assert client.fetch_order(None, BTC, {"clientOrderId": "dup-1"})["id"] == again["id"]
    with pytest.raises(ccxt.BadRequest, match="-4015"):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "not valid!"})
    wrong_route = signed(
        url,
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "STOP_MARKET",
            "quantity": 0.01,
            "stopPrice": 20000,
        },
    )
    assert wrong_route.json()["code"] == -4120
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):
        client.create_order(ETH, "market", "buy", 0.001, None)  # about 2 USDT, under 5
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
        client.create_order(BTC, "market", "buy", 5.0, None)
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        client.create_order(ETH, "market", "sell", 0.01, None, {"reduceOnly": True})
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order(None, BTC, {"clientOrderId": "never-sent"})


# --------------------------------------------------------------------------- faults
def test_each_fault_kind_as_ccxt_sees_it(venue, monkeypatch) -> None:
    url, app = venue
    client = client_for(url, monkeypatch)
    client.load_markets()
    faults = app.state.faults

    def only(group: str, **kw) -> None:
        faults.configure(FaultPlan(random={group: RandomFaults(**kw)}, seed=1))

    only("order", rate_limit=1.0)
    with pytest.raises(ccxt.DDoSProtection):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "f-429"})
    assert client.fetch_ticker(BTC)["last"] > 0  # other groups are untouched
    only("order", server_error=1.0)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "f-5xx"})
    only("order", reject=1.0)
    with pytest.raises(ccxt.InvalidOrder, match="-2010"):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "f-rej"})
    only("order", drop=1.0)
    with pytest.raises(ccxt.NetworkError):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "f-drop"})
    faults.configure(FaultPlan())
    for cid in ("f-429", "f-5xx", "f-rej"):  # refused before processing
        with pytest.raises(ccxt.OrderNotFound):
            client.fetch_order(None, BTC, {"clientOrderId": cid})
    # the dropped create was processed: the order exists though the client got no answer
    assert client.fetch_order(None, BTC, {"clientOrderId": "f-drop"})["status"] == "open"

    only("account", latency_ms=250.0)
    began = time.monotonic()
    client.fetch_balance()
    assert time.monotonic() - began >= 0.25
    began = time.monotonic()
    client.fetch_ticker(BTC)
    assert time.monotonic() - began < 0.25

    only("order", partial=1.0)
    client.create_order(ETH, "market", "buy", 1.0, None, {"clientOrderId": "f-part"})
    advance(url)
    part = client.fetch_order(None, ETH, {"clientOrderId": "f-part"})
    assert part["status"] == "open" and 0.0 < part["filled"] < 1.0
    assert part["info"]["status"] == "PARTIALLY_FILLED"
    faults.configure(FaultPlan())
    advance(url)
    assert client.fetch_order(None, ETH, {"clientOrderId": "f-part"})["filled"] == 1.0
    assert len(client.fetch_my_trades(ETH)) == 2


def test_random_faults_are_seeded_and_parsed() -> None:
    plan = parse_fault_specs(["drop=0.3", "order:429=0.2", "latency=5"])
    assert plan["order"] == RandomFaults(latency_ms=5.0, drop=0.3, rate_limit=0.2)
    assert plan["*"] == RandomFaults(latency_ms=5.0, drop=0.3)
    with pytest.raises(ValueError, match="unknown group"):
        parse_fault_specs(["orders:drop=0.1"])
    with pytest.raises(ValueError, match="kind"):
        parse_fault_specs(["boom=0.1"])
    from quantum_trading.execution.local_exchange import FaultInjector

    draws = []
    for _ in range(2):
        injector = FaultInjector(FaultPlan(random=plan, seed=7))
        draws.append([injector.decide("order", creates_order=True) for _ in range(50)])
    assert draws[0] == draws[1]
    assert 0 < sum(d.drop for d in draws[0]) < 50 and any(d.status == 429 for d in draws[0])
    assert injector.decide(None).status is None  # control routes are never faulted


# --------------------------------------------------------------------------- replay clock
def test_replay_clock_bounds_the_market_data(market_data, monkeypatch) -> None:
    app = create_app(market_data, trading=options(symbols=(BTC,), warmup_bars=10))
    with serve_in_thread(app) as url:
        client = client_for(url, monkeypatch)
        clock = http_get(f"{url}/_local/clock").json()
        bars = client.fetch_ohlcv(BTC, "1h", since=0, limit=1000)
        assert len(bars) == 10 and bars[-1][0] == clock["time"] - 3_600_000
        moved = advance(url, 5)
        assert moved["time"] == clock["time"] + 5 * 3_600_000
        assert len(client.fetch_ohlcv(BTC, "1h", since=0, limit=1000)) == 15
        four_hours = client.fetch_ohlcv(BTC, "4h", since=0, limit=100)  # aggregated from 1h
        assert four_hours and four_hours[-1][0] + 4 * 3_600_000 <= moved["time"]
        funding = client.fetch_funding_rate_history(BTC, since=0, limit=100)
        assert all(f["timestamp"] <= moved["time"] for f in funding)
    auto = create_app(market_data, trading=options(symbols=(BTC,), bars_per_second=100.0))
    with serve_in_thread(auto) as url:
        start = http_get(f"{url}/_local/clock").json()["time"]
        time.sleep(0.3)
        assert http_get(f"{url}/_local/clock").json()["time"] >= start + 10 * 3_600_000


def test_cli_serve_trading(monkeypatch, binance_futures_dir, capsys) -> None:
    seen = {}

    def fake_serve(app, host, port, **kwargs):
        seen.update(app=app)
        kwargs["on_listen"](f"http://{host}:{port}")

    monkeypatch.setattr(server_module, "serve", fake_serve)
    argv = [
        "exchange",
        "serve",
        "--data-dir",
        str(binance_futures_dir),
        "--trading",
        "--api-key-env",
        "QT_K",
        "--secret-env",
        "QT_S",
        "--timeframe",
        "1h",
        "--symbol",
        BTC,
        "--fault",
        "drop=0.05",
        "--fault",
        "order:429=0.1",
        "--fault-seed",
        "3",
    ]
    monkeypatch.delenv("QT_K", raising=False)
    assert main(argv) == 1
    assert "QT_K" in capsys.readouterr().out
    monkeypatch.setenv("QT_K", "k")
    monkeypatch.setenv("QT_S", "s")
    assert main(argv) == 0
    app = seen["app"]
    assert app.state.trading.paper.symbols == (BTC,)
    assert app.state.faults.plan.random["order"] == RandomFaults(drop=0.05, rate_limit=0.1)
    assert app.state.faults.plan.seed == 3
    out = capsys.readouterr().out
    assert "trading: paper exchange on 1 symbols" in out and "k" not in out.split("keys")[0][-3:]
    assert "$QT_K" in out and "'k'" not in out
