"""The ccxt downloader: paging, resuming, retries and errors.

Integration tests run the real ccxt ``binanceusdm`` client against the local exchange on
127.0.0.1 (served from the real Binance files); unit tests use a scripted in-process client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ccxt
import pandas as pd
import pytest

from quantum_trading.data import download as download_module
from quantum_trading.data.download import DownloadReport, download, make_client, store_exchange_name
from quantum_trading.data.store import ParquetStore
from quantum_trading.errors import ConfigError, ExchangeError
from quantum_trading.execution.local_exchange import FaultPlan, create_app, serve_in_thread

BTC = "BTC/USDT:USDT"
STORE_KEY = {"exchange": "binance", "symbol": BTC, "market_type": "futures"}


# --------------------------------------------------------------------------- source data
def source(
    binance_dir: Path, kind: str, pair: str = "BTC_USDT_USDT", timeframe: str = "1h"
) -> pd.DataFrame:
    """The source feather file in canonical form (funding floored to the hour, rate from ``open``)."""
    name = {
        "ohlcv": f"{pair}-{timeframe}-futures",
        "funding": f"{pair}-8h-funding_rate",
        "mark": f"{pair}-8h-mark",
    }[kind]
    raw = pd.read_feather(binance_dir / f"{name}.feather")
    index = pd.DatetimeIndex(raw["date"], name="date").as_unit("ns")
    if kind == "funding":
        return pd.DataFrame(
            {"funding_rate": raw["open"].to_numpy("float64")}, index=index.floor("h")
        )
    columns = (
        ["open", "high", "low", "close", "volume"]
        if kind == "ohlcv"
        else ["open", "high", "low", "close"]
    )
    return pd.DataFrame({c: raw[c].to_numpy("float64") for c in columns}, index=index)


def stored(store: ParquetStore, kind: str, timeframe: str = "1h") -> pd.DataFrame:
    tf = timeframe if kind == "ohlcv" else "8h"
    return store.read(**STORE_KEY, timeframe=tf, kind=kind)


def assert_same_as_source(
    store: ParquetStore, binance_dir: Path, kinds=("ohlcv", "funding", "mark")
) -> None:
    for kind in kinds:
        pd.testing.assert_frame_equal(
            stored(store, kind), source(binance_dir, kind), check_freq=False
        )


# --------------------------------------------------------------------------- local exchange
@pytest.fixture(scope="module")
def local_exchange(binance_futures_dir: Path) -> Iterator[tuple[str, object]]:
    app = create_app(binance_futures_dir)
    with serve_in_thread(app) as base_url:
        yield base_url, app


@pytest.fixture
def exchange(local_exchange) -> Iterator[tuple[str, object]]:
    base_url, app = local_exchange
    app.state.faults.configure(FaultPlan())
    yield base_url, app
    app.state.faults.configure(FaultPlan())


@pytest.fixture
def client(exchange) -> ccxt.Exchange:
    base_url, _ = exchange
    client = make_client("binanceusdm", base_url=base_url)
    client.rateLimit = 2  # ms between requests: keep ccxt's throttle on, but fast for tests
    return client


@pytest.fixture
def store(tmp_path: Path) -> ParquetStore:
    return ParquetStore(tmp_path / "data")


def run(store: ParquetStore, client: ccxt.Exchange, **kwargs) -> DownloadReport:
    options = {
        "timeframe": "1h",
        "since": "2023-07-01",
        "store": store,
        "client": client,
        "page_limit": 50,
        "progress": False,
        "max_retries": 2,
        "backoff_base_s": 0.001,
    }
    options.update(kwargs)
    return download([BTC], **options)


pytestmark = pytest.mark.network_local


def test_download_through_local_exchange_equals_source(store, client, binance_futures_dir) -> None:
    report = run(store, client, progress=True)
    assert_same_as_source(store, binance_futures_dir)
    by_kind = {s.kind: s for s in report.series}
    assert by_kind["ohlcv"].rows == by_kind["ohlcv"].added == 1054
    assert by_kind["ohlcv"].pages == 23  # 22 pages of ≤ 50 bars and the final empty page
    assert (by_kind["funding"].added, by_kind["mark"].added) == (131, 131)
    assert by_kind["funding"].path == store.path(**STORE_KEY, timeframe="8h", kind="funding")
    assert report.retries == 0 and report.updated == 0
    assert list(report.to_frame()["kind"]) == ["ohlcv", "funding", "mark"]


@pytest.mark.parametrize("fail_after", [5, 25, 29], ids=["in-ohlcv", "in-funding", "in-mark"])
def test_interrupted_download_resumes_to_exactly_the_source(
    store, client, exchange, binance_futures_dir, fail_after
) -> None:
    _, app = exchange
    # fail max_retries + 1 requests in a row: the downloader gives up and raises
    app.state.faults.configure(FaultPlan(fail_after=fail_after, fail_count=3, status_code=503))
    with pytest.raises(ExchangeError) as caught:
        run(store, client, max_retries=2)
    message = str(caught.value)
    assert (
        "BTC/USDT:USDT" in message
        and "since 2023-" in message
        and "gave up after 3 attempts" in message
    )
    assert "ExchangeNotAvailable" in message
    ohlcv = stored(store, "ohlcv")
    if (
        fail_after == 5
    ):  # interrupted in the OHLCV pages: what is stored is a clean prefix of the source
        assert len(ohlcv) == 5 * 50
        assert "ohlcv" in message
        pd.testing.assert_frame_equal(ohlcv, source(binance_futures_dir, "ohlcv").iloc[:250])
    else:
        assert len(ohlcv) == 1054
        assert ("funding" if fail_after == 25 else "mark") in message

    report = run(store, client)  # a fresh call resumes from the last stored bars
    assert_same_as_source(store, binance_futures_dir)
    ohlcv_report = next(s for s in report.series if s.kind == "ohlcv")
    if fail_after == 5:
        assert ohlcv_report.added == 1054 - 250
    assert ohlcv_report.rows >= 1  # the last stored bar is fetched again


def test_transient_errors_are_retried(
    tmp_path, client, exchange, binance_futures_dir, monkeypatch
) -> None:
    _, app = exchange
    delays: list[float] = []
    monkeypatch.setattr(download_module, "_sleep", delays.append)
    for status in (429, 503, 504):  # rate limit, unavailable, gateway timeout
        store = ParquetStore(tmp_path / str(status))
        app.state.faults.configure(FaultPlan(fail_after=3, fail_count=2, status_code=status))
        report = run(store, client, max_retries=3, backoff_base_s=0.5, kinds=("ohlcv",))
        assert report.retries == 2
        assert_same_as_source(store, binance_futures_dir, kinds=("ohlcv",))
    assert len(delays) == 6
    assert all(0.5 <= d <= 0.75 for d in delays[0::2]) and all(
        1.0 <= d <= 1.5 for d in delays[1::2]
    )


def test_non_retryable_error_names_symbol_kind_and_since(store, client) -> None:
    # the local exchange has 8h mark candles only: 1h is refused with Binance's -1120
    with pytest.raises(
        ExchangeError, match=r"BTC/USDT:USDT mark 1h since 2023-07-01T00:00:00Z: BadRequest.*-1120"
    ):
        run(store, client, kinds=("mark",), mark_timeframe="1h")


def test_unknown_symbol(store, client) -> None:
    with pytest.raises(ExchangeError, match="has no market NOPE/USDT:USDT"):
        download(
            ["NOPE/USDT:USDT"],
            timeframe="1h",
            since="2023-07-01",
            store=store,
            client=client,
            progress=False,
        )


def test_open_bar_is_never_stored_and_is_fetched_later(
    store, client, binance_futures_dir, monkeypatch
) -> None:
    # the clock says 10:30 on the last day: the 10:00 bar is still open
    now = pd.Timestamp("2023-08-17 10:30", tz="UTC")
    monkeypatch.setattr(download_module, "_now_ms", lambda: int(now.value // 1_000_000))
    run(store, client, kinds=("ohlcv", "funding"))
    assert store.last_timestamp(**STORE_KEY, timeframe="1h", kind="ohlcv") == pd.Timestamp(
        "2023-08-17 09:00", tz="UTC"
    )
    src = source(binance_futures_dir, "ohlcv")
    pd.testing.assert_frame_equal(stored(store, "ohlcv"), src.iloc[:-1])

    now = pd.Timestamp("2023-08-17 11:00", tz="UTC")
    report = run(store, client, kinds=("ohlcv",))
    assert report.series[0].added == 1
    pd.testing.assert_frame_equal(stored(store, "ohlcv"), src)


def test_until_and_backfill_before_first_stored_bar(store, client, binance_futures_dir) -> None:
    src = source(binance_futures_dir, "ohlcv")
    run(store, client, since="2023-07-20", until="2023-08-01", kinds=("ohlcv",))
    part = stored(store, "ohlcv")
    assert part.index[0] == pd.Timestamp("2023-07-20", tz="UTC")
    assert part.index[-1] == pd.Timestamp("2023-07-31 23:00", tz="UTC")
    pd.testing.assert_frame_equal(part, src.loc["2023-07-20":"2023-07-31 23:00"])
    run(store, client, since="2023-07-01", kinds=("ohlcv",))  # fills the head and the tail
    pd.testing.assert_frame_equal(stored(store, "ohlcv"), src)


def test_resume_refetches_and_repairs_the_last_stored_bar(
    store, client, binance_futures_dir
) -> None:
    src = source(binance_futures_dir, "ohlcv")
    partial = src.iloc[:100].copy()
    partial.iloc[-1, 3] += 1.0  # the last bar was stored while incomplete
    store.merge(partial, **STORE_KEY, timeframe="1h", kind="ohlcv")
    report = run(store, client, kinds=("ohlcv",))
    assert (report.series[0].updated, report.series[0].added) == (1, 954)
    pd.testing.assert_frame_equal(stored(store, "ohlcv"), src)


# --------------------------------------------------------------------------- unit tests, no sockets
class ScriptedClient:
    """Just enough of a ccxt client: one perpetual, candles from a list, scripted failures."""

    id = "binanceusdm"

    def __init__(self, candles: list[list], failures: list[Exception] | None = None) -> None:
        self.candles = candles
        self.failures = list(failures or [])
        self.markets = None
        self.calls: list[int] = []

    def load_markets(self):
        self.markets = {BTC: {"symbol": BTC, "contract": True, "swap": True}}
        return self.markets

    def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None, params=None):
        self.calls.append(since)
        if self.failures:
            raise self.failures.pop(0)
        until = (params or {}).get("until", 2**62)
        return [c for c in self.candles if since <= c[0] <= until][:limit]


def hourly(n: int, start: str = "2023-07-04") -> list[list]:
    t0 = pd.Timestamp(start, tz="UTC").value // 1_000_000
    return [[t0 + i * 3_600_000, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 10.0] for i in range(n)]


def test_backoff_grows_exponentially_with_jitter(store, monkeypatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(download_module, "_sleep", delays.append)
    failures = [
        ccxt.RequestTimeout("t"),
        ccxt.DDoSProtection("429"),
        ccxt.ExchangeNotAvailable("503"),
    ]
    client = ScriptedClient(hourly(5), failures)
    report = download(
        [BTC],
        timeframe="1h",
        since="2023-07-04",
        until="2023-07-05",
        kinds=("ohlcv",),
        store=store,
        client=client,
        progress=False,
        backoff_base_s=1.0,
    )
    assert report.retries == 3 and report.series[0].added == 5
    assert 1.0 <= delays[0] <= 1.5 and 2.0 <= delays[1] <= 3.0 and 4.0 <= delays[2] <= 6.0


def test_retries_are_bounded(store, monkeypatch) -> None:
    monkeypatch.setattr(download_module, "_sleep", lambda s: None)
    client = ScriptedClient(hourly(5), [ccxt.NetworkError("down")] * 10)
    with pytest.raises(ExchangeError, match="gave up after 4 attempts: NetworkError: down"):
        download(
            [BTC],
            timeframe="1h",
            since="2023-07-04",
            until="2023-07-05",
            kinds=("ohlcv",),
            store=store,
            client=client,
            progress=False,
            max_retries=3,
        )
    assert len(client.calls) == 4


def test_non_network_errors_are_not_retried(store) -> None:
    client = ScriptedClient(hourly(5), [ccxt.BadRequest('binanceusdm {"code":-1130}')])
    with pytest.raises(
        ExchangeError,
        match=r"binanceusdm BTC/USDT:USDT ohlcv 1h since 2023-07-04T00:00:00Z: BadRequest",
    ):
        download(
            [BTC],
            timeframe="1h",
            since="2023-07-04",
            until="2023-07-05",
            kinds=("ohlcv",),
            store=store,
            client=client,
            progress=False,
        )
    assert len(client.calls) == 1


def test_each_page_is_stored_as_it_arrives(store) -> None:
    client = ScriptedClient(hourly(10), [])
    calls = 0
    original = client.fetch_ohlcv

    def flaky(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt  # the process is stopped during the third page
        return original(*args, **kwargs)

    client.fetch_ohlcv = flaky
    with pytest.raises(KeyboardInterrupt):
        download(
            [BTC],
            timeframe="1h",
            since="2023-07-04",
            kinds=("ohlcv",),
            store=store,
            client=client,
            progress=False,
            page_limit=4,
        )
    assert len(store.read(**STORE_KEY, timeframe="1h", kind="ohlcv")) == 8


def test_argument_checks(store) -> None:
    client = ScriptedClient(hourly(1))
    common = {"store": store, "client": client, "progress": False}
    with pytest.raises(ValueError, match="kinds"):
        download([BTC], timeframe="1h", since="2023-07-04", kinds=("trades",), **common)
    with pytest.raises(ValueError, match="timeframe"):
        download([BTC], timeframe="1 hour", since="2023-07-04", **common)
    with pytest.raises(ValueError, match="must be before until"):
        download([BTC], timeframe="1h", since="2023-07-05", until="2023-07-04", **common)
    with pytest.raises(ValueError, match="page_limit"):
        download([BTC], timeframe="1h", since="2023-07-04", page_limit=0, **common)
    with pytest.raises(ValueError, match="symbols is empty"):
        download([], timeframe="1h", since="2023-07-04", **common)


def test_make_client(monkeypatch) -> None:
    client = make_client("binanceusdm", base_url="http://127.0.0.1:8765/")
    assert client.enableRateLimit is True
    assert client.urls["api"]["fapiPublic"] == "http://127.0.0.1:8765/fapi/v1"
    assert client.urls["api"]["fapiPublicV2"] == "http://127.0.0.1:8765/fapi/v2"
    assert client.options["fetchCurrencies"] is False
    assert not client.apiKey
    monkeypatch.setenv("QT_TEST_KEY", "k3y")
    monkeypatch.setenv("QT_TEST_SECRET", "s3cret")
    keyed = make_client("binanceusdm", api_key_env="QT_TEST_KEY", secret_env="QT_TEST_SECRET")
    assert (keyed.apiKey, keyed.secret) == ("k3y", "s3cret")
    with pytest.raises(ConfigError, match="QT_TEST_MISSING") as caught:
        make_client("binanceusdm", api_key_env="QT_TEST_MISSING")
    assert "k3y" not in str(caught.value)
    with pytest.raises(ValueError, match="not a ccxt exchange"):
        make_client("nope")
    with pytest.raises(ValueError, match="base_url"):
        make_client("binanceusdm", base_url="127.0.0.1:8765")
    assert store_exchange_name("binanceusdm") == "binance"
    assert store_exchange_name("bybit") == "bybit"
