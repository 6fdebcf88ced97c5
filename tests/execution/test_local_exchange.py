"""The local exchange: Binance USDⓈ-M market-data endpoints from stored data, for the real ccxt client.

Everything runs on 127.0.0.1 against the real Binance files in the shared data folder.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import ccxt
import httpx
import numpy as np
import pandas as pd
import pytest

from quantum_trading.cli.main import main
from quantum_trading.data.download import make_client
from quantum_trading.data.store import ParquetStore
from quantum_trading.errors import DataError
from quantum_trading.execution.local_exchange import (
    FaultInjector,
    FaultPlan,
    MarketData,
    create_app,
    serve_in_thread,
)
from quantum_trading.execution.local_exchange import server as server_module

# generous timeouts: the local exchange runs in this process's threads, slow when the
# machine is loaded (httpx's default 5 s timed out on a loaded 2-core machine)
http_get = functools.partial(httpx.get, timeout=60.0)

pytestmark = pytest.mark.network_local

PAIRS = ["ADA", "BNB", "BTC", "DOGE", "ETH", "LTC", "SOL", "XRP"]


def ms(ts: str | pd.Timestamp) -> int:
    return (
        int(pd.Timestamp(ts, tz="UTC").value // 1_000_000)
        if isinstance(ts, str)
        else int(ts.value // 1_000_000)
    )


def feather(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_feather(folder / f"{name}.feather")


@pytest.fixture(scope="module")
def served(binance_futures_dir: Path) -> Iterator[tuple[str, object]]:
    app = create_app(binance_futures_dir)
    with serve_in_thread(app) as base_url:
        yield base_url, app


@pytest.fixture
def base_url(served) -> Iterator[str]:
    url, app = served
    app.state.faults.configure(FaultPlan())
    yield url
    app.state.faults.configure(FaultPlan())


@pytest.fixture
def app(served):
    return served[1]


@pytest.fixture
def client(base_url: str) -> ccxt.Exchange:
    client = make_client("binanceusdm", base_url=base_url)
    client.rateLimit = 2
    return client


# --------------------------------------------------------------------------- ccxt against the server
def test_load_markets_lists_the_stored_perpetuals(client, app) -> None:
    app.state.request_log.clear()
    markets = client.load_markets()
    assert sorted(markets) == [f"{p}/USDT:USDT" for p in PAIRS]
    # with no API keys, load_markets needs exactly one endpoint
    assert list(app.state.request_log) == [("GET", "/fapi/v1/exchangeInfo", 200)]
    btc = markets["BTC/USDT:USDT"]
    assert (btc["id"], btc["type"], btc["swap"], btc["linear"], btc["settle"], btc["active"]) == (
        "BTCUSDT",
        "swap",
        True,
        True,
        "USDT",
        True,
    )
    assert btc["precision"]["price"] == 0.1 and btc["precision"]["amount"] == 0.001
    assert btc["limits"]["cost"]["min"] == 5.0 and btc["limits"]["amount"]["min"] == 0.001
    assert btc["contractSize"] == 1.0 and btc["expiry"] is None
    assert markets["DOGE/USDT:USDT"]["precision"]["price"] == 1e-05
    assert btc["created"] == ms("2023-07-04 13:00")


def test_fetch_ohlcv_returns_the_stored_bars(client, binance_futures_dir) -> None:
    src = feather(binance_futures_dir, "BTC_USDT_USDT-1h-futures")
    rows: list[list] = []
    since = ms("2023-07-01")
    while True:
        page = client.fetch_ohlcv("BTC/USDT:USDT", "1h", since=since, limit=1000)
        if not page:
            break
        rows += page
        since = page[-1][0] + 3_600_000
    got = np.array(rows, dtype="float64")
    assert len(got) == 1054
    np.testing.assert_array_equal(got[:, 0], src["date"].astype("int64").to_numpy() // 1_000_000)
    np.testing.assert_array_equal(
        got[:, 1:], src[["open", "high", "low", "close", "volume"]].to_numpy()
    )


def test_fetch_funding_rate_history_returns_the_stored_rates(client, binance_futures_dir) -> None:
    src = feather(binance_futures_dir, "ETH_USDT_USDT-8h-funding_rate")
    got = client.fetch_funding_rate_history("ETH/USDT:USDT", since=0, limit=1000)
    assert len(got) == len(src) == 133
    times = src["date"].dt.as_unit("ms").astype("int64").to_numpy()
    assert [r["timestamp"] for r in got] == times.tolist()  # as stored, millisecond jitter included
    assert times[0] % 3_600_000 == 1
    assert [r["fundingRate"] for r in got] == src["open"].tolist()
    assert {r["symbol"] for r in got} == {"ETH/USDT:USDT"}
    assert got[1]["info"]["markPrice"] != ""


def test_mark_price_candles(client, binance_futures_dir) -> None:
    src = feather(binance_futures_dir, "SOL_USDT_USDT-8h-mark")
    got = np.array(
        client.fetch_ohlcv("SOL/USDT:USDT", "8h", since=0, limit=1000, params={"price": "mark"})
    )
    assert len(got) == 89
    np.testing.assert_array_equal(got[:, 1:5], src[["open", "high", "low", "close"]].to_numpy())
    np.testing.assert_array_equal(got[:, 5], 0.0)


def test_coarser_klines_are_aggregated_from_finer_files(client, binance_futures_dir) -> None:
    src = feather(binance_futures_dir, "BTC_USDT_USDT-1h-futures").set_index("date")
    expected = src.resample("4h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    counts = src["close"].resample("4h").count()
    expected = expected[counts == 4]
    got = np.array(client.fetch_ohlcv("BTC/USDT:USDT", "4h", since=0, limit=1000))
    assert got[0, 0] == ms("2023-07-04 16:00")  # 12:00 bin is incomplete (data start at 13:00)
    np.testing.assert_array_equal(got[:, 0], expected.index.as_unit("ms").asi8)
    np.testing.assert_allclose(got[:, 1:], expected.to_numpy(), rtol=1e-12)


# --------------------------------------------------------------------------- raw HTTP
def test_binance_formats(base_url) -> None:
    assert http_get(f"{base_url}/fapi/v1/ping").json() == {}
    server_time = http_get(f"{base_url}/fapi/v1/time").json()["serverTime"]
    assert abs(server_time - pd.Timestamp.now(tz="UTC").value // 1_000_000) < 60_000
    rows = http_get(
        f"{base_url}/fapi/v1/klines",
        params={"symbol": "BTCUSDT", "interval": "1h", "startTime": 0, "limit": 2},
    ).json()
    assert rows[0] == [
        1688475600000,
        "31031.9",
        "31047.6",
        "30959.9",
        "30989",
        "8189.637",
        1688479199999,
        "0",
        0,
        "0",
        "0",
        "0",
    ]
    default = http_get(
        f"{base_url}/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m"}
    ).json()
    assert len(default) == 500 and default[-1][0] == ms("2023-08-17 11:11")  # most recent bars
    before = http_get(
        f"{base_url}/fapi/v1/klines",
        params={"symbol": "BTCUSDT", "interval": "1h", "endTime": ms("2023-07-05"), "limit": 3},
    ).json()
    assert [r[0] for r in before] == [
        ms("2023-07-04 22:00"),
        ms("2023-07-04 23:00"),
        ms("2023-07-05"),
    ]
    funding = http_get(
        f"{base_url}/fapi/v1/fundingRate", params={"symbol": "DOGEUSDT", "limit": 2}
    ).json()
    assert (
        set(funding[0]) == {"symbol", "fundingTime", "fundingRate", "markPrice"}
        and len(funding) == 2
    )
    assert "e" not in funding[0]["fundingRate"]  # decimal text, never exponent form


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("klines", {"symbol": "FOOUSDT", "interval": "1h"}, -1121),
        ("klines", {"interval": "1h"}, -1102),
        ("klines", {"symbol": "BTCUSDT"}, -1102),
        ("klines", {"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        ("klines", {"symbol": "BTCUSDT", "interval": "1h", "limit": 1501}, -1130),
        ("klines", {"symbol": "BTCUSDT", "interval": "1h", "startTime": "abc"}, -1100),
        ("klines", {"symbol": "BTCUSDT", "interval": "1h", "startTime": 5, "endTime": 4}, -1023),
        ("markPriceKlines", {"symbol": "BTCUSDT", "interval": "1h"}, -1120),
        ("fundingRate", {"symbol": "FOOUSDT"}, -1121),
        ("fundingRate", {"symbol": "BTCUSDT", "limit": 1001}, -1130),
    ],
)
def test_errors_in_binance_format(base_url, path, params, code) -> None:
    response = http_get(f"{base_url}/fapi/v1/{path}", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and isinstance(body["msg"], str)
    if code == -1121:
        assert body == {"code": -1121, "msg": "Invalid symbol."}


def test_ccxt_maps_server_errors(client) -> None:
    with pytest.raises(ccxt.BadRequest, match="-1120"):
        client.fetch_ohlcv("BTC/USDT:USDT", "1h", since=0, params={"price": "mark"})


# --------------------------------------------------------------------------- fault injection
def test_fault_injection_fails_data_requests_only(base_url, app) -> None:
    app.state.faults.configure(FaultPlan(fail_after=2, fail_count=2, status_code=503))
    url = f"{base_url}/fapi/v1/klines"
    params = {"symbol": "BTCUSDT", "interval": "1h", "limit": 1}
    statuses = []
    for _ in range(5):
        statuses.append(http_get(url, params=params).status_code)
        assert http_get(f"{base_url}/fapi/v1/exchangeInfo").status_code == 200  # not counted
    assert statuses == [200, 200, 503, 503, 200]


def test_injected_faults_are_network_errors_for_ccxt(client, app) -> None:
    client.load_markets()
    app.state.faults.configure(FaultPlan(fail_after=0, fail_count=1, status_code=429))
    with pytest.raises(ccxt.DDoSProtection):  # binance maps 418/429 to DDoSProtection
        client.fetch_ohlcv("BTC/USDT:USDT", "1h", since=0, limit=1)
    app.state.faults.configure(FaultPlan(fail_after=0, fail_count=1, status_code=503))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_funding_rate_history("BTC/USDT:USDT", since=0, limit=1)
    assert len(client.fetch_ohlcv("BTC/USDT:USDT", "1h", since=0, limit=1)) == 1


def test_fault_plan_checks_and_counts() -> None:
    faults = FaultInjector(FaultPlan(fail_after=1))
    assert [faults.next_request() for _ in range(4)] == [None, 503, 503, 503]
    with pytest.raises(ValueError, match="fail_count"):
        FaultPlan(fail_after=1, fail_count=0)
    with pytest.raises(ValueError, match="status_code"):
        FaultPlan(fail_after=1, status_code=200)


# --------------------------------------------------------------------------- data folders, server, CLI
def test_serves_our_parquet_store_too(tmp_path, binance_futures_dir) -> None:
    src = feather(binance_futures_dir, "XRP_USDT_USDT-1h-futures").set_index("date")
    store = ParquetStore(tmp_path / "data")
    store.merge(
        src,
        exchange="binance",
        symbol="XRP/USDT:USDT",
        timeframe="1h",
        market_type="futures",
        kind="ohlcv",
    )
    data = MarketData(tmp_path / "data", exchange="binance")
    assert data.market_ids() == ["XRPUSDT"]
    with serve_in_thread(create_app(data)) as url:
        client = make_client("binanceusdm", base_url=url)
        assert list(client.load_markets()) == ["XRP/USDT:USDT"]
        got = np.array(client.fetch_ohlcv("XRP/USDT:USDT", "1h", since=0, limit=1000))
    np.testing.assert_array_equal(got[:, 1:], src.to_numpy())


def test_empty_or_missing_folder_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        MarketData(tmp_path / "nope")
    with pytest.raises(DataError, match="no perpetual-futures data files"):
        MarketData(tmp_path)


def test_serve_in_thread_stops_on_exit(binance_futures_dir) -> None:
    with serve_in_thread(create_app(binance_futures_dir)) as url:
        assert url.startswith("http://127.0.0.1:")
        assert http_get(f"{url}/fapi/v1/ping").status_code == 200
    with pytest.raises(httpx.ConnectError):
        http_get(f"{url}/fapi/v1/ping", timeout=2)


def test_cli_serve(monkeypatch, binance_futures_dir, tmp_path, capsys) -> None:
    seen = {}

    def fake_serve(app, host, port, **kwargs):
        seen.update(app=app, host=host, port=port)
        kwargs["on_listen"](f"http://{host}:{port}")

    monkeypatch.setattr(server_module, "serve", fake_serve)
    argv = [
        "exchange",
        "serve",
        "--data-dir",
        str(binance_futures_dir),
        "--port",
        "9999",
        "--fail-after",
        "3",
    ]
    assert main(argv) == 0
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 9999)
    assert seen["app"].state.faults.plan == FaultPlan(
        fail_after=3, fail_count=None, status_code=503
    )
    out = capsys.readouterr().out
    assert "8 symbols" in out and "http://127.0.0.1:9999" in out

    assert main(["exchange", "serve", "--data-dir", str(tmp_path / "missing")]) == 1
    assert "data folder does not exist" in capsys.readouterr().out
    assert (
        main(["exchange", "serve", "--data-dir", str(binance_futures_dir), "--fail-count", "2"])
        == 1
    )
    assert "--fail-count needs --fail-after" in capsys.readouterr().out
